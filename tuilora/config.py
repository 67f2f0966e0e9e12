"""TrainingConfig: one dataclass with sd-scripts option names, TOML in and out, validation.

Field names are kohya-ss/sd-scripts names wherever sd-scripts has one, so a user's
``train_network.py`` TOML and tuilora's own TOML describe the same thing (DESIGN §4). Defaults
are sd-scripts' own defaults, so a key missing from a TOML means what it means to sd-scripts;
the advisor always writes the keys it decides explicitly. tuilora's own fields (``base_type``,
``network_type``) live in a ``[tuilora]`` table that sd-scripts never reads.

Validation names the key and the allowed range. Reading accepts sd-scripts TOML quirks
(``resolution = "512,512"``, tables flattened one level, ``text_encoder_lr`` as a one-element
list); keys sd-scripts defines but tuilora does not use are reported once as ignored, and a
key neither knows is an error with a did-you-mean.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

from tuilora.errors import UserError
from tuilora.kohya_options import KOHYA_OPTIONS

BASE_TYPES: Final = ("sd15", "nai", "sd2", "sdxl")
NETWORK_TYPES: Final = ("lora", "locon", "loha", "lokr", "ia3")

#: sd-scripts optimizer names in their canonical spelling; sd-scripts compares them
#: case-insensitively, and so does tuilora (the stored value is the canonical spelling).
OPTIMIZER_TYPES: Final = (
    "AdamW",
    "AdamW8bit",
    "PagedAdamW",
    "PagedAdamW8bit",
    "PagedAdamW32bit",
    "Lion",
    "Lion8bit",
    "PagedLion8bit",
    "SGDNesterov",
    "SGDNesterov8bit",
    "DAdaptation",
    "DAdaptAdam",
    "DAdaptAdaGrad",
    "DAdaptAdan",
    "DAdaptAdanIP",
    "DAdaptLion",
    "DAdaptSGD",
    "AdaFactor",
    "Prodigy",
)
ADAPTIVE_OPTIMIZERS: Final = frozenset(
    {"DAdaptation", "DAdaptAdam", "DAdaptAdaGrad", "DAdaptAdan", "DAdaptAdanIP", "DAdaptLion"}
    | {"DAdaptSGD", "Prodigy"}
)

#: Scheduler names sd-scripts accepts (transformers' / diffusers' SchedulerType values plus
#: sd-scripts' own ``adafactor``).
LR_SCHEDULERS: Final = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "warmup_stable_decay",
    "piecewise_constant",
    "adafactor",
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


def _opt(
    default: Any,
    section: str,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A config field with the metadata validation, TOML sections and help text read."""
    meta = {
        "section": section,
        "help": help,
        "min": min,
        "max": max,
        "min_exclusive": min_exclusive,
        "choices": choices,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainingConfig:
    """Everything a training run needs, in sd-scripts' vocabulary."""

    # tuilora's own (no sd-scripts equivalent)
    base_type: str = _opt(
        "sd15", "tuilora", "base model family: sd15, nai, sd2, sdxl", choices=BASE_TYPES
    )
    network_type: str = _opt(
        "lora", "tuilora", "lora (LierLa), locon (C3Lier), loha, lokr, ia3", choices=NETWORK_TYPES
    )

    model_config: str | None = _opt(
        None,
        "tuilora",
        "a diffusers folder with the configs of a single-file base model (offline loading)",
    )

    # model
    pretrained_model_name_or_path: str | None = _opt(
        None, "model", "base model: a diffusers folder or a .safetensors file"
    )
    vae: str | None = _opt(None, "model", "a separate VAE to use instead of the model's")
    v2: bool = _opt(False, "model", "the base is Stable Diffusion 2.x")
    v_parameterization: bool = _opt(False, "model", "train with v-prediction (SD2 768-v)")
    no_half_vae: bool = _opt(False, "model", "keep the VAE in fp32 (SDXL's fp16 NaN guard)")

    # network
    network_module: str = _opt("networks.lora", "network", "networks.lora or lycoris.kohya")
    network_dim: int = _opt(4, "network", "rank: the LoRA's capacity", min=1, max=100000)
    network_alpha: float = _opt(1.0, "network", "damper: weights scale by alpha / rank", min=0)
    network_args: list[str] = _opt([], "network", 'extra network options, "key=value" strings')
    network_dropout: float | None = _opt(None, "network", "dropout on LoRA outputs", min=0, max=1)
    network_weights: str | None = _opt(None, "network", "continue training from this LoRA file")
    network_train_unet_only: bool = _opt(False, "network", "train only the UNet's LoRA")
    network_train_text_encoder_only: bool = _opt(
        False, "network", "train only the text encoder's LoRA"
    )
    scale_weight_norms: float | None = _opt(
        None, "network", "max-norm limit on LoRA weights", min=0, min_exclusive=True
    )

    # optimizer
    optimizer_type: str = _opt("AdamW", "optimizer", "sd-scripts optimizer name")
    optimizer_args: list[str] = _opt([], "optimizer", 'optimizer options, "key=value" strings')
    learning_rate: float = _opt(2e-6, "optimizer", "master learning rate", min=0)
    unet_lr: float | None = _opt(None, "optimizer", "UNet learning rate", min=0)
    text_encoder_lr: float | None = _opt(None, "optimizer", "text encoder learning rate", min=0)
    lr_scheduler: str = _opt("constant", "optimizer", "scheduler name", choices=LR_SCHEDULERS)
    lr_warmup_steps: int | float = _opt(
        0, "optimizer", "warmup steps (an integer) or a fraction of the steps (< 1)", min=0
    )
    lr_scheduler_num_cycles: int = _opt(1, "optimizer", "restarts for cosine_with_restarts", min=1)
    lr_scheduler_power: float = _opt(1.0, "optimizer", "power for polynomial", min=0)
    lr_scheduler_args: list[str] = _opt([], "optimizer", 'scheduler options, "key=value"')
    max_grad_norm: float = _opt(1.0, "optimizer", "gradient clipping (0 = off)", min=0)

    # dataset
    train_data_dir: str | None = _opt(None, "dataset", "folder holding <repeats>_<name>/ folders")
    reg_data_dir: str | None = _opt(None, "dataset", "regularization images, same layout")
    resolution: int | str = _opt(512, "dataset", 'training resolution: 512 or "W,H"')
    enable_bucket: bool = _opt(False, "dataset", "aspect-ratio buckets")
    min_bucket_reso: int = _opt(256, "dataset", "smallest bucket side", min=16, max=8192)
    max_bucket_reso: int = _opt(1024, "dataset", "largest bucket side", min=16, max=8192)
    bucket_reso_steps: int = _opt(64, "dataset", "bucket side step", min=8, max=512)
    bucket_no_upscale: bool = _opt(False, "dataset", "never upscale images into a bucket")
    caption_extension: str = _opt(".caption", "dataset", "caption file extension")
    shuffle_caption: bool = _opt(False, "dataset", "shuffle comma-separated tags")
    keep_tokens: int = _opt(0, "dataset", "leading tags kept in place when shuffling", min=0)
    caption_dropout_rate: float = _opt(0.0, "dataset", "drop the whole caption", min=0, max=1)
    caption_dropout_every_n_epochs: int = _opt(
        0, "dataset", "drop all captions every N epochs", min=0
    )
    caption_tag_dropout_rate: float = _opt(0.0, "dataset", "drop single tags", min=0, max=1)
    flip_aug: bool = _opt(False, "dataset", "random horizontal flips")
    color_aug: bool = _opt(False, "dataset", "random hue shifts (disables latent caching)")
    random_crop: bool = _opt(False, "dataset", "random crops (disables latent caching)")
    face_crop_aug_range: str | None = _opt(None, "dataset", '"min,max" face zoom range')
    cache_latents: bool = _opt(False, "dataset", "encode images once, keep latents in memory")
    cache_latents_to_disk: bool = _opt(False, "dataset", "keep cached latents on disk")
    max_token_length: int = _opt(
        75, "dataset", "caption token limit: 75, 150 or 225", choices=(75, 150, 225)
    )

    # training
    train_batch_size: int = _opt(1, "training", "images per step", min=1, max=1024)
    max_train_steps: int = _opt(1600, "training", "total steps (max_train_epochs wins)", min=1)
    max_train_epochs: int | None = _opt(None, "training", "total epochs", min=1, max=100000)
    gradient_accumulation_steps: int = _opt(1, "training", "steps per optimizer update", min=1)
    seed: int | None = _opt(None, "training", "random seed", min=0)
    mixed_precision: str = _opt(
        "no", "training", "no, fp16 or bf16", choices=("no", "fp16", "bf16")
    )
    full_fp16: bool = _opt(False, "training", "fp16 weights and gradients (experimental)")
    full_bf16: bool = _opt(False, "training", "bf16 weights and gradients (experimental)")
    gradient_checkpointing: bool = _opt(False, "training", "trade compute for memory")
    cache_text_encoder_outputs: bool = _opt(
        False, "training", "SDXL: encode captions once when the TE is not trained"
    )
    min_snr_gamma: float | None = _opt(
        None,
        "training",
        "Min-SNR loss weighting (1 strong .. 20 barely)",
        min=0,
        max=20,
        min_exclusive=True,
    )
    noise_offset: float | None = _opt(None, "training", "noise offset (0.06-0.1)", min=0, max=1)
    clip_skip: int | None = _opt(None, "training", "use the N-th last CLIP layer", min=1, max=12)
    prior_loss_weight: float = _opt(1.0, "training", "weight of regularization images", min=0)

    # saving
    output_dir: str | None = _opt(None, "saving", "where the LoRA files go")
    output_name: str | None = _opt(None, "saving", "file name of the LoRA, without extension")
    save_every_n_epochs: int | None = _opt(None, "saving", "snapshot every N epochs", min=1)
    save_every_n_steps: int | None = _opt(None, "saving", "snapshot every N steps", min=1)
    save_last_n_epochs: int | None = _opt(None, "saving", "keep only the last N snapshots", min=1)
    save_precision: str | None = _opt(
        None, "saving", "float, fp16 or bf16", choices=("float", "fp16", "bf16")
    )
    save_model_as: str = _opt(
        "safetensors",
        "saving",
        "file format (tuilora writes safetensors)",
        choices=("safetensors",),
    )
    save_state: bool = _opt(False, "saving", "also save resumable training state")
    training_comment: str | None = _opt(None, "saving", "stored in the file's metadata")

    # sampling
    sample_prompts: str | None = _opt(None, "sampling", "prompt file (sd-scripts syntax)")
    sample_every_n_epochs: int | None = _opt(None, "sampling", "sample every N epochs", min=1)
    sample_every_n_steps: int | None = _opt(None, "sampling", "sample every N steps", min=1)
    sample_sampler: str = _opt("ddim", "sampling", "sampler for samples", choices=SAMPLE_SAMPLERS)

    # logging
    logging_dir: str | None = _opt(None, "logging", "TensorBoard folder")

    # ----------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise UserError naming the first bad key and what it allows."""
        for spec in fields(self):
            _check_field(spec, getattr(self, spec.name))
        self.optimizer_type = canonical_optimizer(self.optimizer_type)
        self.resolution = normalize_resolution(self.resolution)
        if self.output_name is not None:
            problem = output_name_problem(self.output_name)
            if problem:
                raise UserError(f"output_name {self.output_name!r}: {problem}")
        if self.network_train_unet_only and self.network_train_text_encoder_only:
            raise UserError(
                "network_train_unet_only and network_train_text_encoder_only are both set:"
                " choose one (or neither to train both)"
            )
        if self.enable_bucket and self.min_bucket_reso > self.max_bucket_reso:
            raise UserError(
                f"min_bucket_reso {self.min_bucket_reso} is above max_bucket_reso"
                f" {self.max_bucket_reso}: the smallest bucket side must not exceed the largest"
            )
        if self.network_module == "networks.lora" and self.network_dim > 768:
            raise UserError(
                f"network_dim {self.network_dim} is out of range: LoRA ranks go from 1 to 768"
                " (beyond that training may break, G-RANK)"
            )
        if isinstance(self.lr_warmup_steps, float) and self.lr_warmup_steps >= 1:
            raise UserError(
                f"lr_warmup_steps {self.lr_warmup_steps} is out of range: give an integer step"
                " count or a fraction below 1"
            )
        for key in ("network_args", "optimizer_args", "lr_scheduler_args"):
            for entry in getattr(self, key):
                parse_key_value(entry, key)

    def resolution_wh(self) -> tuple[int, int]:
        """The training resolution as (width, height)."""
        res = normalize_resolution(self.resolution)
        if isinstance(res, int):
            return res, res
        width, height = (int(part) for part in res.split(","))
        return width, height

    def is_adaptive(self) -> bool:
        """Prodigy and the D-Adaptation family pick their own step size (G-LR-ADAPTIVE)."""
        return canonical_optimizer(self.optimizer_type) in ADAPTIVE_OPTIMIZERS

    # ----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config") -> TrainingConfig:
        """Build and validate from flat values; unknown keys are errors naming ``source``."""
        known = {spec.name for spec in fields(cls)}
        unknown = [key for key in values if key not in known]
        if unknown:
            raise UserError(_unknown_key_message(unknown[0], known, source))
        config = cls(**{key: _coerce(key, value) for key, value in values.items()})
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainingConfig:
        new = dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items()})
        new.validate()
        return new


# ------------------------------------------------------------------------------------------
# field checks

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


def _check_field(spec: dataclasses.Field[Any], value: Any) -> None:
    name, meta = spec.name, spec.metadata
    expected = _expected_kind(spec)
    if value is None:
        if "None" not in str(spec.type):
            raise UserError(f"{name} must be set ({meta['help']})")
        return
    if not _is_kind(value, expected):
        raise UserError(f"{name} must be {_kind_phrase(expected)}, got {value!r}")
    if expected in ("int", "float", "number"):
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{name} must be a finite number, got {value!r}")
        low, high = meta["min"], meta["max"]
        too_low = low is not None and (value <= low if meta["min_exclusive"] else value < low)
        if too_low or (high is not None and value > high):
            raise UserError(f"{name} {value!r} is out of range: allowed {_range_phrase(meta)}")
    choices = meta["choices"]
    if choices is not None and value not in choices:
        allowed = ", ".join(str(c) for c in choices)
        raise UserError(f"{name} {value!r} is not allowed: choose one of {allowed}")
    if name == "optimizer_type":
        canonical_optimizer(value)


def _expected_kind(spec: dataclasses.Field[Any]) -> str:
    text = str(spec.type)
    if text.startswith("list"):
        return "list"
    if text.startswith("bool"):
        return "bool"
    if text.startswith("int | float"):
        return "number"
    if text.startswith("int | str"):
        return "resolution"
    if text.startswith("int"):
        return "int"
    if text.startswith("float"):
        return "float"
    return "str"


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind in ("float", "number"):
        return isinstance(value, int | float)
    if kind == "list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "resolution":
        return isinstance(value, int | str)
    return isinstance(value, str)


def _kind_phrase(kind: str) -> str:
    return {
        "bool": "true or false",
        "int": "a whole number",
        "float": "a number",
        "number": "a number",
        "list": 'a list of "key=value" strings',
        "resolution": 'a whole number or "W,H"',
        "str": "text",
    }[kind]


def _range_phrase(meta: Mapping[str, Any]) -> str:
    low, high = meta["min"], meta["max"]
    op = ">" if meta["min_exclusive"] else ">="
    if low is not None and high is not None:
        return f"{op} {low:g} and <= {high:g}"
    if low is not None:
        return f"{op} {low:g}"
    return f"<= {high:g}"


def _coerce(key: str, value: Any) -> Any:
    """Accept the harmless spellings sd-scripts users write; keep everything else as given."""
    if (
        key in ("learning_rate", "unet_lr", "text_encoder_lr", "network_alpha")
        and isinstance(value, int)
        and not isinstance(value, bool)
    ):
        return float(value)
    if key == "text_encoder_lr" and isinstance(value, list):
        # sd-scripts takes a list (one LR per text encoder); tuilora trains them alike.
        if len(value) == 0:
            return None
        if len(set(value)) == 1:
            return _coerce(key, value[0])
        raise UserError(
            f"text_encoder_lr {value!r}: tuilora uses one learning rate for all text encoders;"
            " give a single number"
        )
    if key == "max_token_length" and value is None:
        return 75
    return value


def normalize_resolution(value: int | str) -> int | str:
    """512, "512" and "512,512" become 512; "512,768" stays a "W,H" string."""
    if isinstance(value, int) and not isinstance(value, bool):
        sides = [value]
    else:
        parts = str(value).replace("x", ",").split(",")
        try:
            sides = [int(part.strip()) for part in parts]
        except ValueError:
            raise UserError(
                f'resolution {value!r} is not a resolution: write 512 or "512,768"'
            ) from None
        if len(sides) not in (1, 2):
            raise UserError(f'resolution {value!r} is not a resolution: write 512 or "512,768"')
    for side in sides:
        if not 64 <= side <= 8192:
            raise UserError(f"resolution {value!r} is out of range: each side 64 to 8192")
    if len(sides) == 1 or sides[0] == sides[1]:
        return sides[0]
    return f"{sides[0]},{sides[1]}"


def canonical_optimizer(name: str) -> str:
    """sd-scripts' spelling of an optimizer name (it compares names case-insensitively)."""
    for known in OPTIMIZER_TYPES:
        if known.lower() == name.lower():
            return known
    if "." in name:  # sd-scripts also takes a full class path, e.g. "torch.optim.RAdam"
        return name
    close = difflib.get_close_matches(name, OPTIMIZER_TYPES, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise UserError(
        f"optimizer_type {name!r} is unknown{hint}: use an sd-scripts optimizer name such as"
        " AdamW8bit, Prodigy, DAdaptAdam, AdaFactor, Lion"
    )


def parse_key_value(entry: str, key: str = "optimizer_args") -> tuple[str, str]:
    """Split one sd-scripts "key=value" entry the way sd-scripts does (once, on '=')."""
    name, sep, value = entry.partition("=")
    if not sep or not name or not value or name != name.strip() or value != value.strip():
        raise UserError(
            f'{key} entry {entry!r} is not "key=value": write e.g. "weight_decay=0.01"'
            " (no spaces around =)"
        )
    if "=" in value:
        raise UserError(f"{key} entry {entry!r} has a second '=': one key=value per entry")
    return name, value


def _unknown_key_message(key: str, known: Iterable[str], source: str) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{source}: unknown key {key!r}{hint}"


# ------------------------------------------------------------------------------------------
# TOML


@dataclass(frozen=True)
class LoadedConfig:
    config: TrainingConfig
    #: sd-scripts keys present in the file that tuilora does not use (reported once).
    ignored: tuple[str, ...]
    #: True when the file used only sd-scripts keys (no [tuilora] table).
    kohya: bool


def load_toml(path: str | Path) -> LoadedConfig:
    """Read a tuilora or sd-scripts TOML file; errors name the file and the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
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
        if key in own:
            used[key] = value
        elif key in KOHYA_OPTIONS:
            ignored.append(key)
        else:
            raise UserError(_unknown_key_message(key, own | set(KOHYA_OPTIONS), source))
    try:
        config = TrainingConfig.from_dict(used, source=source)
    except UserError as exc:
        message = str(exc)
        raise UserError(message if message.startswith(source) else f"{source}: {message}") from None
    return LoadedConfig(config=config, ignored=tuple(ignored), kohya="tuilora" not in raw)


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
