"""What a LoRA's ``ss_*`` metadata says about its training, as sd-scripts writes it.

sd-scripts' ``train_network.py`` stores ``str(value)`` of each setting (``"None"`` when
unset), JSON for ``ss_network_args``, ``ss_dataset_dirs`` ({folder: {n_repeats,
img_count}}) and ``ss_tag_frequency`` ({folder: {tag: images captioned with it}}).
``tuilora diagnose --lora`` turns the same values into a config (advisor.lora_metadata);
here they are only read and shown.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tuilora.parsing import loads_json

#: (label, metadata keys shown together), in the order ``inspect`` prints them.
SUMMARY_FIELDS: Final = (
    ("network module", ("ss_network_module",)),
    ("network dim / alpha", ("ss_network_dim", "ss_network_alpha")),
    ("network args", ("ss_network_args",)),
    ("base model", ("ss_sd_model_name",)),
    ("base model version", ("ss_base_model_version",)),
    ("base model hash", ("ss_new_sd_model_hash",)),
    ("optimizer", ("ss_optimizer",)),
    ("learning rate", ("ss_learning_rate",)),
    ("unet lr / te lr", ("ss_unet_lr", "ss_text_encoder_lr")),
    ("scheduler", ("ss_lr_scheduler",)),
    ("epochs (saved at / planned)", ("ss_epoch", "ss_num_epochs")),
    ("steps (saved at / planned)", ("ss_steps", "ss_max_train_steps")),
    ("batch size", ("ss_batch_size_per_device",)),
    ("resolution", ("ss_resolution",)),
    ("buckets", ("ss_enable_bucket",)),
    ("images / reg images", ("ss_num_train_images", "ss_num_reg_images")),
    ("clip skip", ("ss_clip_skip",)),
    ("noise offset", ("ss_noise_offset",)),
    ("min snr gamma", ("ss_min_snr_gamma",)),
    ("mixed precision", ("ss_mixed_precision",)),
    ("seed", ("ss_seed",)),
    ("output name", ("ss_output_name",)),
    ("comment", ("ss_training_comment",)),
    ("trained with", ("ss_sd_scripts_commit_hash",)),
)
_UNSET: Final = ("", "None", "null")


@dataclass(frozen=True)
class DatasetFolder:
    name: str
    images: int
    repeats: int


def training_summary(meta: Mapping[str, str]) -> list[tuple[str, str]]:
    """(label, value) for each training fact the metadata records; unset ones left out."""
    rows: list[tuple[str, str]] = []
    for label, keys in SUMMARY_FIELDS:
        values = [meta.get(key, "") for key in keys]
        if all(value in _UNSET for value in values):
            continue
        rows.append((label, " / ".join(value if value not in _UNSET else "-" for value in values)))
    started, finished = (
        _number(meta.get("ss_training_started_at")),
        _number(meta.get("ss_training_finished_at")),
    )
    if started is not None and finished is not None and finished >= started:
        rows.append(("training time", _duration(finished - started)))
    return rows


def metadata_family(meta: Mapping[str, str]) -> tuple[str | None, str]:
    """The family sd-scripts' metadata records: ss_base_model_version, ss_v2, modelspec."""
    version = meta.get("ss_base_model_version", "")
    if version:
        if version.startswith("sdxl"):
            return "sdxl", f"ss_base_model_version {version}"
        if version.startswith("sd_v2"):
            return "sd2", f"ss_base_model_version {version}"
        if version.startswith("sd_v1"):
            return "sd1", f"ss_base_model_version {version}"
    architecture = meta.get("modelspec.architecture", "")
    for marker, family in (("-xl-", "sdxl"), ("-v2", "sd2"), ("-v1", "sd1")):
        if marker in architecture:
            return family, f"modelspec.architecture {architecture}"
    if meta.get("ss_v2") == "True":
        return "sd2", "ss_v2 True"
    return None, ""


def tag_counts(meta: Mapping[str, str]) -> Counter[str]:
    """ss_tag_frequency summed over the training folders: tag -> images captioned with it."""
    counts: Counter[str] = Counter()
    for folder in json_table(meta.get("ss_tag_frequency")).values():
        if isinstance(folder, dict):
            for tag, count in folder.items():
                counts[str(tag)] += _count(count)
    return counts


def dataset_folders(meta: Mapping[str, str]) -> list[DatasetFolder]:
    """The training folders from ss_dataset_dirs with their image counts and repeats."""
    folders = []
    for name, info in json_table(meta.get("ss_dataset_dirs")).items():
        if isinstance(info, dict):
            images = _count(info.get("img_count", 0))
            repeats = _count(info.get("n_repeats", 1)) or 1
            folders.append(DatasetFolder(str(name), images, repeats))
    return folders


def json_table(text: str | None) -> dict[str, Any]:
    """A JSON object from a metadata value; {} when absent or not an object."""
    if not text:
        return {}
    try:
        value = loads_json(text)  # nesting-limited: a hostile header cannot recurse deeply
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    """A count written by another tool: a whole number >= 0, else 0 (a hand-edited or
    damaged header must not stop the reading)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0
    number = _number(str(value))
    return int(number) if number is not None and 0 <= number < 2**53 else 0


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
