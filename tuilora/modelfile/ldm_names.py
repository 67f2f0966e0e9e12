"""diffusers / transformers parameter names ↔ the original (LDM / SGM) checkpoint layout.

One table serves both directions: the engine loads a single file by looking up, for every
parameter of a diffusers module, where it lives in the file; the checkpoint writer (tests,
benchmarks) goes the other way. The UNet's block numbering comes from its config (levels,
``layers_per_block``) and which up blocks have attention from its parameter names, so the
same code serves the tiny test models and the real SD1.5 / SD2 / SDXL layouts. OpenCLIP
(SD2's encoder, SDXL's second) fuses q/k/v into one ``in_proj`` and applies
``text_projection`` as ``x @ P``: such names carry ``part`` and ``transpose``. A parameter
with no place in the layout is an error, never silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

#: Per family: (component, prefix in the file, naming style), in the pipeline's order.
LAYOUTS: Final = {
    "sd1": (
        ("unet", "model.diffusion_model.", "unet"),
        ("vae", "first_stage_model.", "vae"),
        ("text_encoder", "cond_stage_model.transformer.", "clip"),
    ),
    "sd2": (
        ("unet", "model.diffusion_model.", "unet"),
        ("vae", "first_stage_model.", "vae"),
        ("text_encoder", "cond_stage_model.model.", "open_clip"),
    ),
    "sdxl": (
        ("unet", "model.diffusion_model.", "unet"),
        ("vae", "first_stage_model.", "vae"),
        ("text_encoder", "conditioner.embedders.0.transformer.", "clip"),
        ("text_encoder_2", "conditioner.embedders.1.model.", "open_clip"),
    ),
}


class ConversionError(ValueError):
    """A parameter with no place in the original layout (an architecture not known here)."""


@dataclass(frozen=True)
class LdmName:
    """Where one diffusers parameter lives in an original-layout file."""

    key: str
    #: q, k or v (0, 1, 2) of OpenCLIP's fused ``in_proj`` (split along the first dim).
    part: int | None = None
    #: OpenCLIP's ``text_projection`` is ``x @ P``; a Linear's weight is ``P.T``.
    transpose: bool = False


# Whole diffusers names → LDM names (weight and bias alike).
_UNET_TOP: Final = {
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
_UNET_RESNET: Final = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}
# The VAE's mid-block attention: LDM's ``AttnBlock`` (1x1 convs where diffusers has linears).
_VAE_ATTENTION: Final = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
}
# Inside an OpenCLIP residual block.
_OPEN_CLIP_LAYER: Final = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}
_OPEN_CLIP_TOP: Final = {
    "embeddings.token_embedding.weight": "token_embedding.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
    "final_layer_norm.weight": "ln_final.weight",
    "final_layer_norm.bias": "ln_final.bias",
}
_QKV: Final = {"q_proj": 0, "k_proj": 1, "v_proj": 2}

_UNET_BLOCK = re.compile(
    r"^(down|up)_blocks\.(\d+)\.(resnets|attentions|downsamplers|upsamplers)\.(\d+)\.(.+)$"
)
_UNET_MID = re.compile(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")
_VAE_BLOCK = re.compile(
    r"^(encoder|decoder)\.(down|up)_blocks\.(\d+)\.(resnets|downsamplers|upsamplers)\.(\d+)\.(.+)$"
)
_VAE_MID = re.compile(r"^(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.+)$")
_CLIP_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")


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
    raise ConversionError(f"UNet weight {key} has no place in the original layout")


def _unet_names(keys: list[str], config: Mapping[str, Any]) -> dict[str, LdmName]:
    layers = config.get("layers_per_block", 2)
    if not isinstance(layers, int):
        # The original layout numbers blocks with one ``layers_per_block`` for every level.
        raise ConversionError(f"layers_per_block {layers!r}: the LDM layout needs one number")
    up_attention = {
        int(match.group(2))
        for key in keys
        if (match := _UNET_BLOCK.match(key))
        and match.group(1) == "up"
        and match.group(3) == "attentions"
    }
    return {key: LdmName(_unet_key(key, layers, up_attention)) for key in keys}


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
        inner, inner_param = _split_param(rest)
        if kind == "resnets":
            inner = "nin_shortcut" if inner == "conv_shortcut" else inner
            return f"{coder}.mid.block_{int(index) + 1}.{inner}.{inner_param}"
        if inner not in _VAE_ATTENTION:
            raise ConversionError(f"VAE weight {key} has no place in the original layout")
        return f"{coder}.mid.attn_{int(index) + 1}.{_VAE_ATTENTION[inner]}.{inner_param}"
    coder, _, local = module.partition(".")
    if coder in ("encoder", "decoder") and local in ("conv_in", "conv_out", "conv_norm_out"):
        local = "norm_out" if local == "conv_norm_out" else local
        return f"{coder}.{local}.{param}"
    if module in ("quant_conv", "post_quant_conv"):
        return key
    raise ConversionError(f"VAE weight {key} has no place in the original layout")


def _clip_name(key: str) -> LdmName:
    # LDM's FrozenCLIPEmbedder wraps the Hugging Face model as it is; transformers ≥ 5.6
    # dropped the ``text_model`` level from CLIPTextModel, the original layout keeps it.
    return LdmName(key if key.startswith("text_model.") else f"text_model.{key}")


def _open_clip_name(key: str) -> LdmName:
    local = key.removeprefix("text_model.")
    if local == "text_projection.weight":
        return LdmName("text_projection", transpose=True)
    if local in _OPEN_CLIP_TOP:
        return LdmName(_OPEN_CLIP_TOP[local])
    if match := _CLIP_LAYER.match(local):
        layer, module, param = match.groups()
        block = f"transformer.resblocks.{layer}"
        attention, _, projection = module.partition(".")
        if attention == "self_attn" and projection in _QKV:
            return LdmName(f"{block}.attn.in_proj_{param}", part=_QKV[projection])
        if module in _OPEN_CLIP_LAYER:
            return LdmName(f"{block}.{_OPEN_CLIP_LAYER[module]}.{param}")
    raise ConversionError(f"text encoder weight {key} has no place in OpenCLIP's layout")


def ldm_names(
    style: str, keys: Iterable[str], config: Mapping[str, Any], prefix: str = ""
) -> dict[str, LdmName]:
    """Each diffusers parameter name of one component → its name in the file (with
    ``prefix``). ``style`` is ``unet``, ``vae``, ``clip`` (Hugging Face CLIP, as SD1.x and
    SDXL's first encoder are stored) or ``open_clip``."""
    keys = list(keys)
    if style == "unet":
        names = _unet_names(keys, config)
    elif style == "vae":
        levels = len(config["block_out_channels"])
        names = {key: LdmName(_vae_key(key, levels)) for key in keys}
    elif style == "clip":
        names = {key: _clip_name(key) for key in keys}
    elif style == "open_clip":
        names = {key: _open_clip_name(key) for key in keys}
    else:
        raise ValueError(f"unknown naming style {style!r}")
    return {
        key: LdmName(prefix + name.key, name.part, name.transpose) for key, name in names.items()
    }


def legacy_aliases(key: str) -> tuple[str, ...]:
    """Other names the same tensor has in older files: CLIP saved without ``text_model.``
    (transformers < 4.?) inside ``cond_stage_model.transformer.``."""
    if ".transformer.text_model." in key:
        return (key.replace(".transformer.text_model.", ".transformer.", 1),)
    return ()
