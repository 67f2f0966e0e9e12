"""Header-only model files written without torch: a safetensors header and a sparse file of
the size the tensors need (the data is never read by what these tests check)."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

SIZES = {"F16": 2, "BF16": 2, "F32": 4, "I64": 8}

#: A few names and shapes of each family's original layout: enough to tell them apart.
LANDMARKS: dict[str, dict[str, tuple[int, ...]]] = {
    "sd1": {
        "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (
            320,
            768,
        ),
        "first_stage_model.encoder.conv_in.weight": (128, 3, 3, 3),
        "cond_stage_model.transformer.text_model.final_layer_norm.weight": (768,),
    },
    "sd2": {
        "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (
            320,
            1024,
        ),
        "first_stage_model.encoder.conv_in.weight": (128, 3, 3, 3),
        "cond_stage_model.model.ln_final.weight": (1024,),
    },
    "sdxl": {
        "model.diffusion_model.input_blocks.0.0.weight": (320, 4, 3, 3),
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (
            640,
            2048,
        ),
        "model.diffusion_model.label_emb.0.0.weight": (1280, 2816),
        "first_stage_model.encoder.conv_in.weight": (128, 3, 3, 3),
        "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": (768,),
        "conditioner.embedders.1.model.ln_final.weight": (1280,),
    },
}

HeaderFile = Callable[..., Path]


def write_header_file(
    path: Path,
    tensors: Mapping[str, tuple[int, ...]],
    metadata: Mapping[str, str] | None = None,
    dtype: str = "F16",
    dtypes: Mapping[str, str] | None = None,
) -> Path:
    table: dict[str, Any] = {}
    if metadata:
        table["__metadata__"] = dict(metadata)
    offset = 0
    for name, shape in tensors.items():
        kind = (dtypes or {}).get(name, dtype)
        count = 1
        for dim in shape:
            count *= dim
        size = count * SIZES[kind]
        table[name] = {"dtype": kind, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    header = json.dumps(table).encode()
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(header)))
        handle.write(header)
        handle.truncate(8 + len(header) + offset)  # sparse: no disk space for the data
    return path


@pytest.fixture()
def header_file(tmp_path: Path) -> HeaderFile:
    def make(
        name: str,
        tensors: Mapping[str, Any] | str,
        metadata: Mapping[str, str] | None = None,
        dtype: str = "F16",
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        table = dict(LANDMARKS[tensors]) if isinstance(tensors, str) else dict(tensors)
        table.update(extra or {})
        return write_header_file(tmp_path / name, table, metadata, dtype)

    return make
