"""The training settings sd-scripts stores in a LoRA file (``ss_*`` metadata), as a config.

A ``.safetensors`` file's JSON header has a ``__metadata__`` table of strings (read by
``tuilora.lorafile``, which ``tuilora tools inspect`` shares); sd-scripts'
``train_network.py`` writes ``str(value)`` of each training argument there (``"None"`` for
unset, ``"True"``, a tuple's repr for ``ss_resolution``, JSON for ``ss_network_args`` and
``ss_tag_frequency``, and ``ss_optimizer`` as ``module.Class(key=value,...)``). Only the
header is read: no tensor data, no safetensors package, no torch.

Values that do not fit tuilora's config (an unknown optimizer class, a scheduler tuilora does
not know) are dropped with a note rather than refusing the file: the rest still diagnoses.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tuilora.config import TrainingConfig, canonical_optimizer
from tuilora.errors import UserError
from tuilora.lorafile.safetensors_io import read_metadata
from tuilora.lorafile.training import dataset_folders, json_table, metadata_family, tag_counts

_FLOATS: Final = {
    "ss_learning_rate": "learning_rate",
    "ss_unet_lr": "unet_lr",
    "ss_text_encoder_lr": "text_encoder_lr",
    "ss_network_alpha": "network_alpha",
    "ss_min_snr_gamma": "min_snr_gamma",
    "ss_noise_offset": "noise_offset",
    "ss_scale_weight_norms": "scale_weight_norms",
    "ss_prior_loss_weight": "prior_loss_weight",
    "ss_network_dropout": "network_dropout",
    "ss_caption_dropout_rate": "caption_dropout_rate",
    "ss_caption_tag_dropout_rate": "caption_tag_dropout_rate",
    "ss_max_grad_norm": "max_grad_norm",
}
_INTS: Final = {
    "ss_network_dim": "network_dim",
    "ss_num_epochs": "max_train_epochs",
    "ss_max_train_steps": "max_train_steps",
    "ss_batch_size_per_device": "train_batch_size",
    "ss_clip_skip": "clip_skip",
    "ss_max_token_length": "max_token_length",
    "ss_seed": "seed",
    "ss_keep_tokens": "keep_tokens",
    "ss_min_bucket_reso": "min_bucket_reso",
    "ss_max_bucket_reso": "max_bucket_reso",
    "ss_gradient_accumulation_steps": "gradient_accumulation_steps",
    "ss_lr_warmup_steps": "lr_warmup_steps",
}
_BOOLS: Final = {
    "ss_flip_aug": "flip_aug",
    "ss_color_aug": "color_aug",
    "ss_random_crop": "random_crop",
    "ss_shuffle_caption": "shuffle_caption",
    "ss_enable_bucket": "enable_bucket",
    "ss_bucket_no_upscale": "bucket_no_upscale",
    "ss_cache_latents": "cache_latents",
    "ss_gradient_checkpointing": "gradient_checkpointing",
    "ss_v2": "v2",
}
_STRINGS: Final = {
    "ss_network_module": "network_module",
    "ss_lr_scheduler": "lr_scheduler",
    "ss_mixed_precision": "mixed_precision",
    "ss_output_name": "output_name",
    "ss_face_crop_aug_range": "face_crop_aug_range",
}
#: sd-scripts logs the optimizer's class; these class names differ from its option names.
_OPTIMIZER_CLASSES: Final = {
    "SGD": "SGDNesterov",
    "SGD8bit": "SGDNesterov8bit",
    "DAdaptAdamPreprint": "DAdaptation",
}


@dataclass(frozen=True)
class LoraTraining:
    """What a LoRA file says about how it was trained."""

    config: TrainingConfig
    metadata: Mapping[str, str]
    #: Values that could not be used, one line each.
    notes: tuple[str, ...]
    #: ss_tag_frequency summed over folders: tag -> images captioned with it.
    tags: Mapping[str, int]
    #: Images x repeats per epoch, from ss_dataset_dirs (0 when unknown).
    images: int
    #: Images (each captioned once), from ss_dataset_dirs (0 when unknown).
    image_count: int
    steps_per_epoch: int | None


def lora_training(path: str | Path) -> LoraTraining:
    """The training config a LoRA file records; UserError when it records none."""
    meta = read_metadata(path)
    if not any(key.startswith("ss_") for key in meta):
        raise UserError(
            f"{path}: has no sd-scripts training metadata (ss_*); pass the training config"
            " with --config instead"
        )
    values, notes = metadata_values(meta)
    config, dropped = _validated(values)
    folders = dataset_folders(meta)
    images = sum(folder.images * folder.repeats for folder in folders)
    image_count = sum(folder.images for folder in folders)
    tags = dict(tag_counts(meta))
    batches = _number(meta.get("ss_num_batches_per_epoch"))
    return LoraTraining(
        config=config,
        metadata=meta,
        notes=(*notes, *dropped),
        tags=tags,
        images=images,
        image_count=image_count,
        steps_per_epoch=int(batches) if batches else None,
    )


def metadata_values(meta: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Config values from ``ss_*`` metadata, and notes about what could not be read."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    for key, name in _FLOATS.items():
        number = _number(meta.get(key))
        if number is not None:
            values[name] = float(number)
    for key, name in _INTS.items():
        number = _number(meta.get(key))
        if number is not None and float(number).is_integer():
            values[name] = int(number)
    for key, name in _BOOLS.items():
        if meta.get(key) in ("True", "False"):
            values[name] = meta[key] == "True"
    for key, name in _STRINGS.items():
        if meta.get(key) not in (None, "", "None"):
            values[name] = meta[key]
    resolution = _literal(meta.get("ss_resolution"))
    if isinstance(resolution, tuple | list) and len(resolution) == 2:
        values["resolution"] = f"{int(resolution[0])},{int(resolution[1])}"
    family, _ = metadata_family(meta)
    if family in ("sdxl", "sd2"):  # sd1 is the default base_type
        values["base_type"] = family
    args = json_table(meta.get("ss_network_args"))
    values["network_args"] = [
        f"{k}={v}" for k, v in args.items() if v is not None and k != "dropout"
    ]
    values["network_type"] = _network_type(values.get("network_module", ""), args)
    optimizer = meta.get("ss_optimizer")
    if optimizer:
        name, optimizer_args = parse_optimizer(optimizer)
        try:
            values["optimizer_type"] = canonical_optimizer(name)
            values["optimizer_args"] = optimizer_args
        except UserError:
            notes.append(f"ss_optimizer {optimizer!r}: not an optimizer tuilora knows; left out")
    return values, notes


def parse_optimizer(text: str) -> tuple[str, list[str]]:
    """``"prodigyopt.prodigy.Prodigy(decouple=True,betas=(0.9, 0.999))"`` -> name and args."""
    head, paren, rest = text.partition("(")
    class_name = head.strip().rsplit(".", 1)[-1]
    name = _OPTIMIZER_CLASSES.get(class_name, class_name)
    if not paren:
        return name, []
    body = rest[: rest.rfind(")")] if ")" in rest else rest
    args = []
    for part in _split_top_level(body):
        key, sep, value = part.partition("=")
        if not sep:
            continue
        parsed = _literal(value.strip())
        if isinstance(parsed, tuple | list):
            value = ",".join(_plain(v) for v in parsed)  # sd-scripts' "betas=0.9,0.999" form
        args.append(f"{key.strip()}={value.strip()}")
    return name, args


def _split_top_level(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if "".join(current).strip():
        parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _network_type(module: str, args: Mapping[str, Any]) -> str:
    if module.startswith("lycoris"):
        algo = str(args.get("algo", "lora")).lower()
        return {
            "lora": "locon",
            "locon": "locon",
            "loha": "loha",
            "lokr": "lokr",
            "ia3": "ia3",
        }.get(algo, "locon")
    return "locon" if "conv_dim" in args else "lora"


def _validated(values: dict[str, Any]) -> tuple[TrainingConfig, list[str]]:
    """Keep every value that validates on its own; name the ones that do not."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in values.items():
        try:
            TrainingConfig.from_dict({**kept, key: value}, source="metadata")
        except UserError as exc:
            dropped.append(f"{key} = {value!r} left out: {exc}")
            continue
        kept[key] = value
    return TrainingConfig.from_dict(kept, source="metadata"), dropped


def _number(text: str | None) -> float | None:
    value = _literal(text)
    if isinstance(value, list | tuple) and value:
        value = value[0]  # text_encoder_lr may be a one-element list
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _literal(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _plain(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
