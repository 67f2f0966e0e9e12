"""TrainingConfig: one dataclass with sd-scripts option names, TOML in and out, validation.

Field names are kohya-ss/sd-scripts names wherever sd-scripts has one, so a user's
``train_network.py`` TOML and tuilora's own TOML describe the same thing (DESIGN §4). Defaults
are sd-scripts' own defaults, so a key missing from a TOML means what it means to sd-scripts;
the advisor always writes the keys it decides explicitly. tuilora's own fields (``base_type``,
``network_type``) live in a ``[tuilora]`` table that sd-scripts never reads.

Validation names the key and the allowed range (one field: ``config_fields.py``; several:
``config_rules.py``). Reading accepts sd-scripts TOML quirks (``resolution = "512,512"``,
tables flattened one level, ``text_encoder_lr`` as a one-element list). Every sd-scripts
option is in ``kohya_options.OPTIONS``: implemented ones are fields here; a refused one set to
anything but its default stops the run; a notice-only one is reported once. A key neither
knows is an error with a did-you-mean.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from tuilora.config_fields import check_field, coerce, normalize_resolution, unknown_key_message
from tuilora.config_fields import opt as opt
from tuilora.config_fields import parse_key_value as parse_key_value
from tuilora.errors import UserError
from tuilora.kohya_options import ALIASES, OPTIONS, asks_for_something
from tuilora.optimizers import canonical_optimizer as canonical_optimizer
from tuilora.optimizers import optimizer_spec
from tuilora.parsing import loads_toml

BASE_TYPES: Final = ("sd15", "nai", "sd2", "sdxl")
NETWORK_TYPES: Final = ("lora", "locon", "loha", "lokr", "ia3")
LOSS_TYPES: Final = ("l1", "l2", "huber", "smooth_l1")
HUBER_SCHEDULES: Final = ("constant", "exponential", "snr")
#: sd-scripts' ``resize_interpolation`` names (``lanczos4`` and ``linear`` / ``cubic`` alias).
INTERPOLATIONS: Final = (
    "lanczos",
    "nearest",
    "bilinear",
    "linear",
    "bicubic",
    "cubic",
    "area",
    "box",
)
SAMPLE_SAMPLERS: Final = (
    "ddim",
    "pndm",
    "lms",
    "euler",
    "euler_a",
    "heun",
    "dpm_2",
    "dpm_2_a",
    "dpmsolver",
    "dpmsolver++",
    "dpmsingle",
    "k_lms",
    "k_euler",
    "k_euler_a",
    "k_dpm_2",
    "k_dpm_2_a",
)

#: The sections tuilora writes its own TOML in (sd-scripts flattens tables one level, so a
#: sectioned file is still a valid ``--config_file``).
SECTIONS: Final = (
    "tuilora",
    "model",
    "network",
    "optimizer",
    "dataset",
    "training",
    "saving",
    "sampling",
    "logging",
)


@dataclass
class TrainingConfig:
    """Everything a training run needs, in sd-scripts' vocabulary."""

    # tuilora's own (no sd-scripts equivalent)
    base_type: str = opt(
        "sd15", "tuilora", "base model family: sd15, nai, sd2, sdxl", choices=BASE_TYPES
    )
    network_type: str = opt(
        "lora", "tuilora", "lora (LierLa), locon (C3Lier), loha, lokr, ia3", choices=NETWORK_TYPES
    )

    model_config: str | None = opt(
        None,
        "tuilora",
        "a diffusers folder with the configs of a single-file base model (offline loading)",
    )
    save_state_every_n_minutes: float = opt(
        10.0,
        "tuilora",
        "also save resumable state every N minutes of training (0 = off); the last two are kept",
        min=0,
    )

    # model
    pretrained_model_name_or_path: str | None = opt(
        None, "model", "base model: a diffusers folder or a .safetensors file"
    )
    vae: str | None = opt(None, "model", "a separate VAE to use instead of the model's")
    v2: bool = opt(False, "model", "the base is Stable Diffusion 2.x")
    v_parameterization: bool = opt(False, "model", "train with v-prediction (SD2 768-v)")
    no_half_vae: bool = opt(False, "model", "keep the VAE in fp32 (SDXL's fp16 NaN guard)")

    # network
    network_module: str = opt("networks.lora", "network", "networks.lora or lycoris.kohya")
    network_dim: int = opt(4, "network", "rank: the LoRA's capacity", min=1, max=100000)
    network_alpha: float = opt(1.0, "network", "damper: weights scale by alpha / rank", min=0)
    network_args: list[str] = opt([], "network", 'extra network options, "key=value" strings')
    network_dropout: float | None = opt(None, "network", "dropout on LoRA outputs", min=0, max=1)
    network_weights: str | None = opt(None, "network", "continue training from this LoRA file")
    dim_from_weights: bool = opt(False, "network", "take ranks and alphas from network_weights")
    base_weights: list[str] = opt([], "network", "LoRA files merged into the model first")
    base_weights_multiplier: list[float] = opt([], "network", "strength of each base_weights")
    network_train_unet_only: bool = opt(False, "network", "train only the UNet's LoRA")
    network_train_text_encoder_only: bool = opt(
        False, "network", "train only the text encoder's LoRA"
    )
    scale_weight_norms: float | None = opt(
        None, "network", "max-norm limit on LoRA weights", min=0, min_exclusive=True
    )

    # optimizer
    optimizer_type: str = opt("AdamW", "optimizer", "sd-scripts optimizer name")
    optimizer_args: list[str] = opt([], "optimizer", 'optimizer options, "key=value" strings')
    learning_rate: float = opt(2e-6, "optimizer", "master learning rate", min=0)
    unet_lr: float | None = opt(None, "optimizer", "UNet learning rate", min=0)
    text_encoder_lr: float | None = opt(None, "optimizer", "text encoder learning rate", min=0)
    lr_scheduler: str = opt("constant", "optimizer", "scheduler name (sd-scripts' names)")
    lr_scheduler_type: str = opt("", "optimizer", "a torch.optim.lr_scheduler class instead")
    lr_warmup_steps: int | float = opt(
        0, "optimizer", "warmup steps (an integer) or a fraction of the steps (< 1)", min=0
    )
    lr_decay_steps: int | float = opt(
        0, "optimizer", "decay steps of warmup_stable_decay, or a fraction (< 1)", min=0
    )
    lr_scheduler_num_cycles: int = opt(1, "optimizer", "restarts for cosine_with_restarts", min=1)
    lr_scheduler_power: float = opt(1.0, "optimizer", "power for polynomial", min=0)
    lr_scheduler_timescale: int | None = opt(None, "optimizer", "inverse_sqrt timescale", min=1)
    lr_scheduler_min_lr_ratio: float | None = opt(
        None, "optimizer", "lowest LR as a ratio (cosine_with_min_lr, wsd)", min=0, max=1
    )
    lr_scheduler_args: list[str] = opt([], "optimizer", 'scheduler options, "key=value"')
    max_grad_norm: float = opt(1.0, "optimizer", "gradient clipping (0 = off)", min=0)

    # dataset
    train_data_dir: str | None = opt(None, "dataset", "folder holding <repeats>_<name>/ folders")
    reg_data_dir: str | None = opt(None, "dataset", "regularization images, same layout")
    resolution: int | str = opt(512, "dataset", 'training resolution: 512 or "W,H"')
    enable_bucket: bool = opt(False, "dataset", "aspect-ratio buckets")
    min_bucket_reso: int = opt(256, "dataset", "smallest bucket side", min=16, max=8192)
    max_bucket_reso: int = opt(1024, "dataset", "largest bucket side", min=16, max=8192)
    bucket_reso_steps: int = opt(64, "dataset", "bucket side step", min=8, max=512)
    bucket_no_upscale: bool = opt(False, "dataset", "never upscale images into a bucket")
    caption_extension: str = opt(".caption", "dataset", "caption file extension")
    caption_prefix: str | None = opt(None, "dataset", "text put before every caption")
    caption_suffix: str | None = opt(None, "dataset", "text put after every caption")
    caption_separator: str = opt(",", "dataset", "what separates tags in a caption")
    secondary_separator: str | None = opt(None, "dataset", "joins tags that move together")
    enable_wildcard: bool = opt(False, "dataset", "{a|b} choices and one random line")
    shuffle_caption: bool = opt(False, "dataset", "shuffle comma-separated tags")
    keep_tokens: int = opt(0, "dataset", "leading tags kept in place when shuffling", min=0)
    keep_tokens_separator: str = opt("", "dataset", "tags before it (and after a 2nd) stay")
    token_warmup_min: int = opt(1, "dataset", "tags shown at the first step", min=0)
    token_warmup_step: float = opt(
        0.0, "dataset", "steps (or a fraction < 1) until all tags are shown", min=0
    )
    caption_dropout_rate: float = opt(0.0, "dataset", "drop the whole caption", min=0, max=1)
    caption_dropout_every_n_epochs: int = opt(
        0, "dataset", "drop all captions every N epochs", min=0
    )
    caption_tag_dropout_rate: float = opt(0.0, "dataset", "drop single tags", min=0, max=1)
    flip_aug: bool = opt(False, "dataset", "random horizontal flips")
    color_aug: bool = opt(False, "dataset", "random hue shifts (disables latent caching)")
    random_crop: bool = opt(False, "dataset", "random crops (disables latent caching)")
    face_crop_aug_range: str | None = opt(None, "dataset", '"min,max" face zoom range')
    resize_interpolation: str | None = opt(
        None, "dataset", "resize filter (default: area down, lanczos up)", choices=INTERPOLATIONS
    )
    cache_latents: bool = opt(False, "dataset", "encode images once, keep latents in memory")
    cache_latents_to_disk: bool = opt(False, "dataset", "keep cached latents on disk")
    max_token_length: int = opt(
        75, "dataset", "caption token limit: 75, 150 or 225", choices=(75, 150, 225)
    )

    # training
    train_batch_size: int = opt(1, "training", "images per step", min=1, max=1024)
    max_train_steps: int = opt(1600, "training", "total steps (max_train_epochs wins)", min=1)
    max_train_epochs: int | None = opt(None, "training", "total epochs", min=1, max=100000)
    gradient_accumulation_steps: int = opt(1, "training", "steps per optimizer update", min=1)
    seed: int | None = opt(None, "training", "random seed", min=0)
    mixed_precision: str = opt("no", "training", "no, fp16 or bf16", choices=("no", "fp16", "bf16"))
    full_fp16: bool = opt(False, "training", "fp16 weights and gradients (experimental)")
    full_bf16: bool = opt(False, "training", "bf16 weights and gradients (experimental)")
    gradient_checkpointing: bool = opt(False, "training", "trade compute for memory")
    cache_text_encoder_outputs: bool = opt(
        False, "training", "SDXL: encode captions once when the TE is not trained"
    )
    min_snr_gamma: float | None = opt(
        None,
        "training",
        "Min-SNR loss weighting (1 strong .. 20 barely)",
        min=0,
        max=20,
        min_exclusive=True,
    )
    noise_offset: float | None = opt(None, "training", "noise offset (0.06-0.1)", min=0, max=1)
    noise_offset_random_strength: bool = opt(False, "training", "offset scaled by U(0, 1)")
    adaptive_noise_scale: float | None = opt(None, "training", "offset grows with latent mean")
    multires_noise_iterations: int | None = opt(
        None, "training", "pyramid noise levels (6-10)", min=1, max=64
    )
    multires_noise_discount: float = opt(0.3, "training", "pyramid level weight", min=0, max=1)
    ip_noise_gamma: float | None = opt(None, "training", "input perturbation (0.1)", min=0)
    ip_noise_gamma_random_strength: bool = opt(False, "training", "perturbation x U(0, 1)")
    zero_terminal_snr: bool = opt(False, "training", "rescale betas to zero terminal SNR")
    min_timestep: int | None = opt(None, "training", "lowest timestep drawn", min=0, max=1000)
    max_timestep: int | None = opt(None, "training", "timesteps drawn below it", min=0, max=1000)
    loss_type: str = opt("l2", "training", "l1, l2, huber, smooth_l1", choices=LOSS_TYPES)
    huber_schedule: str = opt(
        "snr", "training", "constant, exponential, snr", choices=HUBER_SCHEDULES
    )
    huber_c: float = opt(0.1, "training", "Huber threshold", min=0, max=1, min_exclusive=True)
    huber_scale: float = opt(1.0, "training", "Huber threshold scale", min=0, min_exclusive=True)
    scale_v_pred_loss_like_noise_pred: bool = opt(False, "training", "v loss x SNR/(SNR+1)")
    v_pred_like_loss: float | None = opt(None, "training", "add a v-like loss x this", min=0)
    debiased_estimation_loss: bool = opt(False, "training", "weight the loss by 1/sqrt(SNR)")
    clip_skip: int | None = opt(None, "training", "use the N-th last CLIP layer", min=1, max=12)
    prior_loss_weight: float = opt(1.0, "training", "weight of regularization images", min=0)

    # saving
    output_dir: str | None = opt(None, "saving", "where the LoRA files go")
    output_name: str | None = opt(None, "saving", "file name of the LoRA, without extension")
    save_every_n_epochs: int | None = opt(None, "saving", "snapshot every N epochs", min=1)
    save_every_n_steps: int | None = opt(None, "saving", "snapshot every N steps", min=1)
    save_n_epoch_ratio: int | None = opt(None, "saving", "about N epoch snapshots in all", min=1)
    save_last_n_epochs: int | None = opt(None, "saving", "keep the last N epoch snapshots", min=1)
    save_last_n_steps: int | None = opt(None, "saving", "keep step snapshots this recent", min=1)
    save_precision: str | None = opt(
        None, "saving", "float, fp16 or bf16", choices=("float", "fp16", "bf16")
    )
    save_model_as: str = opt(
        "safetensors",
        "saving",
        "file format (tuilora writes safetensors)",
        choices=("safetensors",),
    )
    save_state: bool = opt(False, "saving", "also save resumable training state")
    save_state_on_train_end: bool = opt(False, "saving", "save the state when training ends")
    training_comment: str | None = opt(None, "saving", "stored in the file's metadata")
    no_metadata: bool = opt(False, "saving", "write only the minimum ss_* metadata")
    metadata_title: str | None = opt(None, "saving", "modelspec title (default output_name)")
    metadata_author: str | None = opt(None, "saving", "modelspec author")
    metadata_description: str | None = opt(None, "saving", "modelspec description")
    metadata_license: str | None = opt(None, "saving", "modelspec license")
    metadata_tags: str | None = opt(None, "saving", "modelspec tags, comma-separated")
    metadata_usage_hint: str | None = opt(None, "saving", "modelspec usage hint")
    metadata_thumbnail: str | None = opt(None, "saving", "modelspec thumbnail (image file)")
    metadata_merged_from: str | None = opt(None, "saving", "modelspec merged_from")
    metadata_trigger_phrase: str | None = opt(None, "saving", "modelspec trigger phrase")
    metadata_preprocessor: str | None = opt(None, "saving", "modelspec preprocessor")
    metadata_is_negative_embedding: str | None = opt(
        None, "saving", "modelspec is_negative_embedding"
    )

    # sampling
    sample_prompts: str | None = opt(None, "sampling", "prompt file (sd-scripts syntax)")
    sample_every_n_epochs: int | None = opt(None, "sampling", "sample every N epochs", min=1)
    sample_every_n_steps: int | None = opt(None, "sampling", "sample every N steps", min=1)
    sample_sampler: str = opt("ddim", "sampling", "sampler for samples", choices=SAMPLE_SAMPLERS)

    # ----------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise UserError naming the first bad key and what it allows."""
        from tuilora.config_rules import check_combinations

        for spec in fields(self):
            setattr(self, spec.name, _checked_field(spec, getattr(self, spec.name)))
        check_combinations(self)

    def resolution_wh(self) -> tuple[int, int]:
        """The training resolution as (width, height)."""
        res = normalize_resolution(self.resolution)
        if isinstance(res, int):
            return res, res
        width, height = (int(part) for part in res.split(","))
        return width, height

    def is_adaptive(self) -> bool:
        """Prodigy and the D-Adaptation family pick their own step size (G-LR-ADAPTIVE)."""
        return optimizer_spec(self.optimizer_type).adaptive

    # ----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config") -> TrainingConfig:
        """Build and validate from flat values; unknown keys are errors naming ``source``."""
        values = resolve_aliases(values)
        known = {spec.name for spec in fields(cls)}
        unknown = [key for key in values if key not in known]
        if unknown:
            raise UserError(unknown_key_message(unknown[0], known, source))
        config = cls(**{key: coerce(key, value) for key, value in values.items()})
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainingConfig:
        new = dataclasses.replace(self, **{k: coerce(k, v) for k, v in changes.items()})
        new.validate()
        return new


def _checked_field(spec: dataclasses.Field[Any], value: Any) -> Any:
    """``value`` checked as the field ``spec`` allows, in its normal form."""
    check_field(spec, value)
    if spec.name == "optimizer_type":
        return canonical_optimizer(value)
    if spec.name == "resolution":
        return normalize_resolution(value)
    if spec.name == "output_name" and value is not None:
        problem = output_name_problem(value)
        if problem:
            raise UserError(f"output_name {value!r}: {problem}")
    return value


def check_one_field(key: str, value: Any) -> Any:
    """One field's value on its own — a pinned ``advise --set`` or a wizard edit — before
    anything computes with it: its type, range and choices, its normal form, the names it
    must be (optimizer, scheduler, LoRA name) and the ``key=value`` form of the ``*_args``
    lists. Returns the value as the config holds it; the UserError names the key (issue 17:
    a list or text where the advisor's rules compare numbers ended in a traceback). The
    checks across fields run on the whole config."""
    from tuilora.config_rules import check_scheduler_name

    spec = next((spec for spec in fields(TrainingConfig) if spec.name == key), None)
    if spec is None:
        raise UserError(f"{key}: not a config field")
    value = _checked_field(spec, coerce(key, value))
    if value is None:
        return value
    if key == "lr_scheduler":
        check_scheduler_name(value)
    elif key.endswith("_args"):
        for entry in value:
            parse_key_value(entry, key)
    return value


# ------------------------------------------------------------------------------------------
# sd-scripts' aliases

#: Characters that make a name a pattern (glob) or a path on some system; a LoRA name is
#: one file name in ``output_dir`` (issue: a name like ``*`` or ``../x`` reached other files).
_NAME_FORBIDDEN: Final = frozenset("/\\*?[]") | {chr(c) for c in range(32)} | {chr(127)}


def output_name_problem(name: str) -> str:
    """Why ``name`` cannot be a LoRA's ``output_name`` ("" when it can): it must be a plain
    file name — no folder part, no glob characters, not ``.``/``..``, not hidden, not empty.
    ``train``, ``advise --name`` and the wizard's name field all ask this one function."""
    if not name.strip():
        return "a LoRA name cannot be empty"
    if name != name.strip():
        return "a LoRA name cannot start or end with spaces"
    bad = sorted({ch for ch in name if ch in _NAME_FORBIDDEN})
    if bad:
        shown = " ".join(ch if ch.isprintable() else "control characters" for ch in bad)
        return f"a LoRA name is a file name, without {shown} (put the folder in output_dir)"
    if name.startswith(".") or ".." in name:
        return "a LoRA name cannot start with '.' or contain '..' (put the folder in output_dir)"
    if len(name.encode("utf-8")) > 200:
        return "a LoRA name is at most 200 bytes (its files add a suffix)"
    return ""


def resolve_aliases(values: Mapping[str, Any]) -> dict[str, Any]:
    """sd-scripts' other spellings, as it resolves them: ``caption_extention`` is
    ``caption_extension``; ``use_8bit_adam`` / ``use_lion_optimizer`` choose AdamW8bit /
    Lion (an error beside an ``optimizer_type``); ``cache_latents_to_disk`` turns latent
    caching on and ``cache_text_encoder_outputs_to_disk`` text-encoder caching (tuilora keeps
    those in memory)."""
    out = dict(values)
    old = out.pop("caption_extention", None)
    if old is not None:
        out.setdefault("caption_extension", old)
    for flag, optimizer in (("use_8bit_adam", "AdamW8bit"), ("use_lion_optimizer", "Lion")):
        if out.pop(flag, False):
            if out.get("optimizer_type"):
                raise UserError(
                    f"{flag} and optimizer_type are both set: keep one (optimizer_type ="
                    f' "{optimizer}" means the same)'
                )
            out["optimizer_type"] = optimizer
    if out.get("cache_latents_to_disk"):
        out["cache_latents"] = True
    if out.pop("cache_text_encoder_outputs_to_disk", False):
        out["cache_text_encoder_outputs"] = True
    return out


# ------------------------------------------------------------------------------------------
# TOML


@dataclass(frozen=True)
class LoadedConfig:
    config: TrainingConfig
    #: notice-only sd-scripts keys set in the file (they cannot change the trained file).
    ignored: tuple[str, ...]
    #: True when the file used only sd-scripts keys (no [tuilora] table).
    kohya: bool
    #: one line per ignored key: what tuilora does instead (shown once).
    notices: tuple[str, ...] = ()


def load_toml(path: str | Path) -> LoadedConfig:
    """Read a tuilora or sd-scripts TOML file; errors name the file and the key."""
    path = Path(path)
    try:
        raw = loads_toml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a .toml config file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    return config_from_toml_dict(raw, source=str(path))


def config_from_toml_dict(raw: Mapping[str, Any], *, source: str) -> LoadedConfig:
    flat: dict[str, Any] = {}
    # sd-scripts flattens tables one level; tuilora's sections are such tables.
    for key, value in raw.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    own = {spec.name for spec in fields(TrainingConfig)}
    ignored: list[str] = []
    used: dict[str, Any] = {}
    for key, value in flat.items():
        option = OPTIONS.get(key)
        if key in own or key in ALIASES:
            used[key] = value
        elif option is None:
            raise UserError(unknown_key_message(key, own | set(OPTIONS), source))
        elif not asks_for_something(key, value):
            continue  # sd-scripts' default: it asks for nothing
        elif option.status == "refused":
            raise UserError(f"{source}: {key} = {value!r}: {option.note}")
        else:
            ignored.append(key)
    try:
        config = TrainingConfig.from_dict(used, source=source)
    except UserError as exc:
        message = str(exc)
        raise UserError(message if message.startswith(source) else f"{source}: {message}") from None
    notices = tuple(f"{key}: {OPTIONS[key].note} (ignored)" for key in ignored)
    return LoadedConfig(config, tuple(ignored), kohya="tuilora" not in raw, notices=notices)


def to_toml_dict(config: TrainingConfig) -> dict[str, dict[str, Any]]:
    """tuilora's own TOML: every set field, grouped into sections."""
    out: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for spec in fields(config):
        value = getattr(config, spec.name)
        if value is None:
            continue  # TOML has no null; a missing key means the default
        out[spec.metadata["section"]][spec.name] = value
    return {section: values for section, values in out.items() if values}


def field_help(name: str) -> str:
    for spec in fields(TrainingConfig):
        if spec.name == name:
            return str(spec.metadata["help"])
    raise KeyError(name)


def config_field_names() -> tuple[str, ...]:
    return tuple(spec.name for spec in fields(TrainingConfig))
