"""Write diffusers models as one original-layout (LDM / SGM) checkpoint, as model sites have.

The layout is the one sd-webui users have: ``model.diffusion_model.…``,
``first_stage_model.…``, and the text encoders under ``cond_stage_model.transformer.…``
(SD1.x), ``cond_stage_model.model.…`` (SD2.x, OpenCLIP) or ``conditioner.embedders.0/1.…``
(SDXL). The names come from ``tuilora.modelfile.ldm_names``, the same table the loader reads
files with, so writing and loading cannot drift; OpenCLIP's q/k/v are fused into one
``in_proj`` and its ``text_projection`` stored as ``P`` (a Linear's weight is ``P.T``), the
VAE's mid attention as 1x1 convs. Used by the tests (tiny pipelines round-tripped through a
file) and the load benchmark (full-size files with random weights, streamed to disk).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from tuilora.modelfile.ldm_names import LAYOUTS, ConversionError, LdmName, ldm_names

__all__ = [
    "ConversionError",
    "component_to_ldm",
    "ldm_shapes",
    "save_ldm_checkpoint",
    "write_safetensors",
]

SAFETENSORS_DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
}


def _to_file_shape(name: LdmName, shape: tuple[int, ...], style: str) -> tuple[int, ...]:
    if name.part is not None:
        return (shape[0] * 3, *shape[1:])
    if name.transpose:
        return tuple(reversed(shape))
    if style == "vae" and ".mid.attn_" in name.key and len(shape) == 2:
        return (*shape, 1, 1)  # LDM's AttnBlock: 1x1 convs
    return shape


def component_to_ldm(
    style: str, state: Mapping[str, torch.Tensor], config: Mapping[str, Any], prefix: str
) -> dict[str, torch.Tensor]:
    """One component's diffusers state dict under its original-layout names."""
    names = ldm_names(style, state.keys(), config, prefix)
    out: dict[str, torch.Tensor] = {}
    fused: dict[str, list[torch.Tensor | None]] = {}
    for key, value in state.items():
        name = names[key]
        if name.part is not None:
            fused.setdefault(name.key, [None, None, None])[name.part] = value
            continue
        value = value.T if name.transpose else value
        out[name.key] = value.reshape(_to_file_shape(name, tuple(value.shape), style))
    for key, parts in fused.items():
        if any(part is None for part in parts):
            raise ConversionError(f"{key}: q, k and v are not all there")
        out[key] = torch.cat([part for part in parts if part is not None], dim=0)
    return out


def ldm_shapes(family: str, configs: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape of ``family``'s original-layout file, from the configs,
    with the modules built on the meta device (no memory)."""
    from tuilora.engine.single_file import build_empty

    shapes: dict[str, tuple[int, ...]] = {}
    for component, prefix, style in LAYOUTS[family]:
        module = build_empty(component, configs[component])
        params = {key: tuple(p.shape) for key, p in module.named_parameters()}
        for key, name in ldm_names(style, params, configs[component], prefix).items():
            shapes[name.key] = _to_file_shape(name, params[key], style)
    return shapes


def _read_component(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights and config of one component folder of a diffusers pipeline."""
    from safetensors.torch import load_file

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    single = [folder / "diffusion_pytorch_model.safetensors", folder / "model.safetensors"]
    files = [path for path in single if path.is_file()]
    if not files:
        # Sharded weights: the index lists the shard files.
        for index in sorted(folder.glob("*.safetensors.index.json")):
            shards = json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()
            files = [folder / name for name in dict.fromkeys(shards)]
            break
    if not files:
        raise FileNotFoundError(f"{folder}: no .safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(load_file(str(path)))
    return state, config


def _family_of_folder(pipeline_dir: Path) -> str:
    index = json.loads((pipeline_dir / "model_index.json").read_text(encoding="utf-8"))
    if "text_encoder_2" in index:
        return "sdxl"
    text = json.loads((pipeline_dir / "text_encoder" / "config.json").read_text("utf-8"))
    return "sd2" if text.get("hidden_act") == "gelu" else "sd1"


def save_ldm_checkpoint(pipeline_dir: Path, out_file: Path) -> Path:
    """Write the diffusers pipeline at ``pipeline_dir`` (SD1.x, SD2.x or SDXL) as one
    original-layout ``.safetensors``."""
    from safetensors.torch import save_file

    pipeline_dir = Path(pipeline_dir)
    family = _family_of_folder(pipeline_dir)
    checkpoint: dict[str, torch.Tensor] = {}
    for component, prefix, style in LAYOUTS[family]:
        state, config = _read_component(pipeline_dir / component)
        checkpoint.update(component_to_ldm(style, state, config, prefix))
    tensors = {key: value.contiguous() for key, value in checkpoint.items()}
    out_file = Path(out_file)
    partial = out_file.with_name(f".{out_file.name}.partial")
    try:
        save_file(tensors, str(partial), metadata={"format": "pt"})
        os.replace(partial, out_file)
    finally:
        partial.unlink(missing_ok=True)
    return out_file


def write_safetensors(
    out_file: Path,
    entries: Iterable[tuple[str, torch.dtype, tuple[int, ...]]],
    make: Callable[[str, torch.dtype, tuple[int, ...]], torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Stream a ``.safetensors`` file tensor by tensor: ``make(name, dtype, shape)`` is called
    for each entry in turn and its bytes written at once, so a 7 GB file never sits in
    memory. Written to a temporary name and renamed, never left half written (the one
    streaming writer, ``lorafile.safetensors_write``)."""
    from tuilora.lorafile.safetensors_write import PlannedTensor
    from tuilora.lorafile.safetensors_write import write_safetensors as write_planned

    def producer(name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> Callable[[], Any]:
        def produce() -> Any:
            tensor = make(name, dtype, shape).to(dtype).contiguous()
            if tuple(tensor.shape) != tuple(shape):
                raise ValueError(f"{name}: made {list(tensor.shape)}, wanted {list(shape)}")
            return tensor.reshape(-1).view(torch.uint8).numpy()

        return produce

    planned = [
        PlannedTensor(name, SAFETENSORS_DTYPES[dtype], tuple(shape), producer(name, dtype, shape))
        for name, dtype, shape in entries
    ]
    return write_planned(out_file, planned, dict(metadata or {"format": "pt"}), overwrite=True)
