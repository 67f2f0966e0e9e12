"""Model files for tests that never load weights: a safetensors header with the tensor names
and shapes of a real checkpoint over sparse data, so tuilora's torch-free checks
(``tuilora.modelfile``) recognise the family and nothing is read but the header."""

from __future__ import annotations

import json
import struct
from pathlib import Path

#: A few tensors of each original-layout (LDM) checkpoint, enough for family detection.
FAMILIES: dict[str, dict[str, list[int]]] = {
    "sd15": {
        "model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [
            320,
            768,
        ],
        "first_stage_model.encoder.conv_in.weight": [128, 3, 3, 3],
        "cond_stage_model.transformer.text_model.final_layer_norm.weight": [768],
    },
    "sdxl": {
        "model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
        "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": [
            640,
            2048,
        ],
        "first_stage_model.encoder.conv_in.weight": [128, 3, 3, 3],
        "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight": [768],
        "conditioner.embedders.1.model.ln_final.weight": [1280],
    },
}


def header_only_model(path: Path, family: str = "sd15") -> Path:
    """Write ``path``: a ``family`` checkpoint's header over sparse (unwritten) fp16 data."""
    table, offset = {}, 0
    for name, shape in FAMILIES[family].items():
        size = 2
        for dim in shape:
            size *= dim
        table[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    header = json.dumps(table).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + offset)
    return path
