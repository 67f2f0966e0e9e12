"""Write a diffusers SD1.x pipeline as one original-layout (LDM) ``.safetensors`` file.

This is the layout sd-webui users have (``model.diffusion_model.…``,
``first_stage_model.…``, ``cond_stage_model.transformer.text_model.…``), and what
``tuilora train`` loads through diffusers' ``from_single_file``. It is the reverse of
diffusers' ``convert_ldm_unet_checkpoint`` / ``convert_ldm_vae_checkpoint`` /
``convert_ldm_clip_checkpoint``; the block numbering comes from each model's config
(levels, ``layers_per_block``) and which blocks have attention comes from the weights, so the
same code serves the tiny test pipeline and the real SD1.5 layout. Every weight must find an
LDM name: an unknown key is an error, never silently dropped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."

# Whole diffusers names → LDM names (weight and bias alike).
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    # SD2-upscale / SDXL conditioning: both live in LDM's ``label_emb``.
    "class_embedding.linear_1": "label_emb.0.0",
    "class_embedding.linear_2": "label_emb.0.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "class_embedding": "label_emb",  # an embedding table (num_class_embeds)
}
# Inside a UNet resnet: diffusers' layer names → LDM ``ResBlock`` ones.
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
_VAE_TOP = {
    "conv_norm_out": "norm_out",
}
# The VAE's mid-block attention: LDM's ``AttnBlock`` uses 1x1 convs where diffusers has linears.
_VAE_ATTENTION = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}
_VAE_CONV_1X1 = ("q", "k", "v", "proj_out")

_UNET_BLOCK = re.compile(
    r"^(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)$"
)
_UNET_MID = re.compile(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")
_VAE_BLOCK = re.compile(
    r"^(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.+)$"
)
_VAE_MID = re.compile(r"^(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")


class ConversionError(ValueError):
    """A weight with no place in the LDM layout (an architecture this converter does not know)."""


def _split_param(name: str) -> tuple[str, str]:
    """``a.b.weight`` → (``a.b``, ``weight``)."""
    module, _, param = name.rpartition(".")
    return module, param


def _resnet_inner(rest: str) -> str:
    module, param = _split_param(rest)
    return f"{_UNET_RESNET.get(module, module)}.{param}"


def _unet_key(key: str, layers: int, up_attention: set[int]) -> str:
    module, param = _split_param(key)
    if module in _UNET_TOP:
        return f"{_UNET_TOP[module]}.{param}"
    if match := _UNET_BLOCK.match(key):
        side, block, kind, index, rest = match.groups()
        # LDM numbers the blocks of each side flat: input_blocks.0 is conv_in, then every
        # level has ``layers`` resnets (+ attention) and one downsampler; the up side has
        # ``layers + 1`` resnets per level, its upsampler sitting after the attention if any.
        per_level = layers + 1
        if side == "down":
            base = 1 + int(block) * per_level
            if kind == "resnets":
                return f"input_blocks.{base + int(index)}.0.{_resnet_inner(rest)}"
            if kind == "attentions":
                return f"input_blocks.{base + int(index)}.1.{rest}"
            if kind == "downsamplers":
                return f"input_blocks.{base + layers}.0.op.{rest.removeprefix('conv.')}"
        else:
            base = int(block) * per_level
            if kind == "resnets":
                return f"output_blocks.{base + int(index)}.0.{_resnet_inner(rest)}"
            if kind == "attentions":
                return f"output_blocks.{base + int(index)}.1.{rest}"
            if kind == "upsamplers":
                slot = 2 if int(block) in up_attention else 1
                return f"output_blocks.{base + layers}.{slot}.{rest}"
    if match := _UNET_MID.match(key):
        kind, index, rest = match.groups()
        # resnet, attention, resnet → middle_block.0, .1, .2
        if kind == "resnets":
            return f"middle_block.{2 * int(index)}.{_resnet_inner(rest)}"
        return f"middle_block.{2 * int(index) + 1}.{rest}"
    raise ConversionError(f"UNet weight {key} has no place in the LDM layout")


def unet_to_ldm(
    state: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """A diffusers ``UNet2DConditionModel`` state dict under LDM names (no prefix)."""
    layers = config.get("layers_per_block", 2)
    if not isinstance(layers, int):
        # diffusers' LDM loader reads one ``layers_per_block`` for every level.
        raise ConversionError(f"layers_per_block {layers!r}: the LDM layout needs one number")
    up_attention = {
        int(match.group(2))
        for key in state
        if (match := _UNET_BLOCK.match(key))
        and match.group(1) == "up"
        and match.group(3) == "attentions"
    }
    return {_unet_key(key, layers, up_attention): value for key, value in state.items()}


def _vae_key(key: str, levels: int) -> str:
    module, param = _split_param(key)
    if match := _VAE_BLOCK.match(key):
        coder, _side, block, kind, index, rest = match.groups()
        # The decoder's up blocks run from the deepest level: diffusers' up_blocks.0 is
        # LDM's up.<levels - 1>.
        level = int(block) if coder == "encoder" else levels - 1 - int(block)
        side = "down" if coder == "encoder" else "up"
        if kind == "resnets":
            inner, inner_param = _split_param(rest)
            inner = "nin_shortcut" if inner == "conv_shortcut" else inner
            return f"{coder}.{side}.{level}.block.{index}.{inner}.{inner_param}"
        sampler = "downsample" if kind == "downsamplers" else "upsample"
        return f"{coder}.{side}.{level}.{sampler}.{rest}"
    if match := _VAE_MID.match(key):
        coder, kind, index, rest = match.groups()
        if kind == "resnets":
            inner, inner_param = _split_param(rest)
            inner = "nin_shortcut" if inner == "conv_shortcut" else inner
            return f"{coder}.mid.block_{int(index) + 1}.{inner}.{inner_param}"
        inner, inner_param = _split_param(rest)
        if inner not in _VAE_ATTENTION:
            raise ConversionError(f"VAE weight {key} has no place in the LDM layout")
        return f"{coder}.mid.attn_{int(index) + 1}.{_VAE_ATTENTION[inner]}.{inner_param}"
    coder, _, local = module.partition(".")
    if coder in ("encoder", "decoder") and local in ("conv_in", "conv_out", "conv_norm_out"):
        return f"{coder}.{_VAE_TOP.get(local, local)}.{param}"
    if module in ("quant_conv", "post_quant_conv"):
        return key
    raise ConversionError(f"VAE weight {key} has no place in the LDM layout")


def vae_to_ldm(
    state: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """A diffusers ``AutoencoderKL`` state dict under LDM names (no prefix), the mid-block
    attention's linear weights reshaped to the 1x1 convs of LDM's ``AttnBlock``."""
    levels = len(config["block_out_channels"])
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = _vae_key(key, levels)
        module, param = _split_param(name)
        is_attention = ".mid.attn_" in module and module.endswith(_VAE_CONV_1X1)
        if is_attention and param == "weight" and value.ndim == 2:
            value = value[:, :, None, None]
        converted[name] = value
    return converted


def text_encoder_to_ldm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CLIP text encoder state dict under ``text_model.…`` (LDM's ``FrozenCLIPEmbedder``
    wraps the Hugging Face model as it is). transformers ≥ 5.6 saves CLIPTextModel without
    the ``text_model.`` level; the original layout always has it."""
    return {
        key if key.startswith("text_model.") else f"text_model.{key}": value
        for key, value in state.items()
    }


def pipeline_to_ldm(
    unet: Mapping[str, torch.Tensor],
    unet_config: Mapping[str, Any],
    vae: Mapping[str, torch.Tensor],
    vae_config: Mapping[str, Any],
    text_encoder: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """The three state dicts as one original SD1.x checkpoint."""
    checkpoint: dict[str, torch.Tensor] = {}
    for prefix, part in (
        (UNET_PREFIX, unet_to_ldm(unet, unet_config)),
        (VAE_PREFIX, vae_to_ldm(vae, vae_config)),
        (CLIP_PREFIX, text_encoder_to_ldm(text_encoder)),
    ):
        checkpoint.update({prefix + key: value for key, value in part.items()})
    return checkpoint


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


def save_ldm_checkpoint(pipeline_dir: Path, out_file: Path) -> Path:
    """Write the SD1.x diffusers pipeline at ``pipeline_dir`` as one LDM ``.safetensors``."""
    from safetensors.torch import save_file

    pipeline_dir = Path(pipeline_dir)
    index = json.loads((pipeline_dir / "model_index.json").read_text(encoding="utf-8"))
    if "text_encoder_2" in index:
        raise ConversionError(f"{pipeline_dir}: SDXL pipelines are not converted, only SD1.x")
    text_encoder, text_config = _read_component(pipeline_dir / "text_encoder")
    if text_config.get("hidden_act") == "gelu":
        # SD2's original layout stores OpenCLIP (``cond_stage_model.model.…``, fused q/k/v).
        raise ConversionError(f"{pipeline_dir}: SD2 text encoders are not converted, only SD1.x")
    unet, unet_config = _read_component(pipeline_dir / "unet")
    vae, vae_config = _read_component(pipeline_dir / "vae")
    checkpoint = pipeline_to_ldm(unet, unet_config, vae, vae_config, text_encoder)
    tensors = {key: value.contiguous() for key, value in checkpoint.items()}
    out_file = Path(out_file)
    # Streamed to a temporary file and renamed: a real checkpoint is gigabytes, so it is not
    # serialized in memory first (as fileio.write_atomic would), and never left half written.
    partial = out_file.with_name(f".{out_file.name}.partial")
    try:
        save_file(tensors, str(partial), metadata={"format": "pt"})
        os.replace(partial, out_file)
    finally:
        partial.unlink(missing_ok=True)
    return out_file
