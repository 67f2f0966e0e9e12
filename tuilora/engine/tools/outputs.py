"""What the tools write: output checks before any work, the minimal sd-scripts metadata of
a tool-made LoRA, and the LoRA file itself (hashes, atomic write via ``engine.save``)."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tuilora import __version__
from tuilora.engine.metadata import (
    STABILITY_AI,
    legacy_model_hash,
    model_version,
    modelspec_architecture,
)
from tuilora.engine.save import save_lora
from tuilora.errors import UserError

#: The base resolution of each family (ModelSpec's resolution for a LoRA no run made).
RESOLUTIONS = {"sd1": "512x512", "sd2": "512x512", "sdxl": "1024x1024"}


def check_output(path: str | Path, *, force: bool, folder: bool = False) -> Path:
    """Refuse before any work: an existing output without ``--force``, a missing parent
    folder, or (for a file) a name that is not .safetensors."""
    out = Path(path)
    if out.exists() and not force:
        raise UserError(f"--out {out} already exists; pass --force to overwrite it")
    if not folder and out.suffix.lower() != ".safetensors":
        raise UserError(f"--out {out}: tuilora writes .safetensors files; name it NAME.safetensors")
    if not folder and out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"--out {out}: the folder {parent} does not exist")
    return out


def describe_source(path: Path) -> str:
    name = path.name
    if path.is_dir():
        return name
    return f"{name} (hash {legacy_model_hash(str(path))})"


def lora_metadata(
    family: str,
    *,
    dim: str,
    alpha: str,
    title: str,
    network_args: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """sd-scripts' minimum network metadata (``build_minimum_network_metadata``) and the
    ModelSpec keys its tools add, plus tuilora's own ``extra`` keys."""
    metadata = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": dim,
        "ss_network_alpha": alpha,
        "ss_v2": str(family == "sd2"),
        "ss_base_model_version": model_version(family, v_prediction=False),
        "ss_sd_scripts_commit_hash": f"(tuilora {__version__})",
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": f"{modelspec_architecture(family, v_prediction=False)}/lora",
        "modelspec.implementation": STABILITY_AI if family == "sdxl" else "diffusers",
        "modelspec.title": title,
        "modelspec.date": datetime.datetime.fromtimestamp(int(time.time())).isoformat(),
        "modelspec.resolution": RESOLUTIONS[family],
    }
    if network_args:
        metadata["ss_network_args"] = json.dumps(dict(network_args))
    for key, value in (extra or {}).items():
        metadata[key] = value if isinstance(value, str) else json.dumps(value)
    return metadata


def save_lora_file(
    path: Path,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str],
    save_precision: str | None,
) -> Path:
    """Hashes as sd-scripts precalculates them, written atomically (the --force check was
    made before the work started)."""
    if save_precision not in (None, "float", "fp16", "bf16"):
        raise UserError(f"--save-precision {save_precision!r} is not one of: float, fp16, bf16")
    return save_lora(path, tensors, metadata, save_precision)
