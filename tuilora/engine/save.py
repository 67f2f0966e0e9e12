"""Write LoRA files as sd-scripts does: safetensors with ``ss_*`` metadata and the hashes
sd-webui's additional-networks reads, atomically (temp file, fsync, rename)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch
from safetensors.torch import save

from tuilora.fileio import write_atomic

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "float": torch.float32}


def cast_for_saving(
    tensors: dict[str, torch.Tensor], save_precision: str | None
) -> dict[str, torch.Tensor]:
    """Every tensor in ``save_precision``, ``.alpha`` included, as sd-scripts'
    ``save_weights`` casts the whole state dict (fp32 when unset; LyCORIS' flags stay)."""
    dtype = DTYPES.get(save_precision or "float", torch.float32)
    return {
        key: (value.to(dtype) if value.is_floating_point() else value).detach().cpu().contiguous()
        for key, value in tensors.items()
    }


def model_hashes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> tuple[str, str]:
    """(sshs_model_hash, sshs_legacy_hash) as sd-scripts precalculates them: over the file
    serialized with only the ``ss_*`` metadata, so later user metadata does not change them."""
    training_only = {k: v for k, v in metadata.items() if k.startswith("ss_")}
    data = save(tensors, training_only)
    header = int.from_bytes(data[:8], "little")
    model_hash = hashlib.sha256(data[8 + header :]).hexdigest()
    legacy = hashlib.sha256(io.BytesIO(data).getbuffer()[0x100000 : 0x100000 + 0x10000]).hexdigest()
    return model_hash, legacy[:8]


def save_lora(
    path: Path,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str],
    save_precision: str | None,
) -> Path:
    """Write ``tensors`` + metadata (with the hashes) to ``path`` atomically."""
    weights = cast_for_saving(tensors, save_precision)
    full = dict(metadata)
    full["sshs_model_hash"], full["sshs_legacy_hash"] = model_hashes(weights, full)
    write_atomic(path, save(weights, full), overwrite=True)
    return path
