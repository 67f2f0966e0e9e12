"""sd-scripts' LoRA module names, from the module paths of the models tuilora loads.

sd-scripts names a module ``prefix + "." + path`` with dots turned into underscores:
``lora_unet_down_blocks_0_attentions_0_proj_in``, ``lora_te_text_model_encoder_layers_0_
self_attn_q_proj``. sd-webui, ComfyUI and diffusers' kohya loader expect exactly these.

Two differences between tuilora's module trees and sd-scripts' are bridged here:
- transformers 5's ``CLIPTextModel`` has no ``text_model`` submodule (its paths start at
  ``encoder.``) while the file format keeps the segment (DESIGN §11): it is put back.
- sd-scripts trains SDXL on its own UNet, whose modules carry the SGM (original
  Stability) names: ``input_blocks.4.1.transformer_blocks.0.attn1.to_q`` where diffusers
  says ``down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q``. ``SgmNaming`` maps
  diffusers paths to those, with the block layout read from the UNet's own config (the
  same walk sd-scripts' ``make_unet_conversion_map`` spells out for SDXL's three levels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

UNET_PREFIX = "lora_unet"
TEXT_ENCODER_PREFIX = "lora_te"

#: Inside a ResNet block: diffusers' names → SGM's (``ResBlock`` of the original code).
SGM_RESNET_PARTS = (
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("time_emb_proj.", "emb_layers.1."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("conv_shortcut.", "skip_connection."),
)


def kohya_name(prefix: str, path: str) -> str:
    return f"{prefix}.{path}".replace(".", "_")


def text_model_path(path: str, encoder: nn.Module) -> str:
    """The module path as sd-scripts' CLIP tree spells it (always under ``text_model.``)."""
    if hasattr(encoder, "text_model") or path.startswith("text_model."):
        return path
    return f"text_model.{path}"


@dataclass(frozen=True)
class ModelNaming:
    """Names for one model family: how many text encoders and how the UNet is spelled."""

    text_encoder_count: int = 1

    def unet_path(self, path: str) -> str:
        """The UNet module path as the file spells it (diffusers' own for SD1/SD2)."""
        return path

    def unet_name(self, path: str) -> str:
        return kohya_name(UNET_PREFIX, self.unet_path(path))

    def text_encoder_prefix(self, index: int) -> str:
        if self.text_encoder_count == 1:
            return TEXT_ENCODER_PREFIX
        return f"{TEXT_ENCODER_PREFIX}{index + 1}"

    def text_encoder_name(self, index: int, path: str, encoder: nn.Module) -> str:
        return kohya_name(self.text_encoder_prefix(index), text_model_path(path, encoder))


@dataclass(frozen=True)
class SgmNaming(ModelNaming):
    """SDXL: two text encoders (``lora_te1_``, ``lora_te2_``) and SGM UNet names.

    ``prefixes`` holds (diffusers prefix, SGM prefix) pairs, longest first, each ending
    with a dot; a path takes the first that matches (``sgm_prefixes`` builds them).
    """

    prefixes: tuple[tuple[str, str], ...] = ()

    def unet_path(self, path: str) -> str:
        dotted = path + "."
        for diffusers, sgm in self.prefixes:
            if dotted.startswith(diffusers):
                return (sgm + dotted[len(diffusers) :]).rstrip(".")
        return path


def _per_block(value: int | Sequence[int], blocks: int) -> list[int]:
    return [int(value)] * blocks if isinstance(value, int) else [int(v) for v in value]


def sgm_prefixes(config: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(diffusers, SGM) path prefixes for a UNet2DConditionModel config, longest first.

    The SGM UNet numbers its blocks flat: ``input_blocks.0`` is ``conv_in``; each down
    level adds one input block per ResNet (the ResNet at ``.0``, its transformer at ``.1``)
    and one for the downsampler (``.0.op``) unless it is the last level; the middle block
    is ResNet, transformer, ResNet; each up level adds ``layers + 1`` output blocks, the
    last of which also holds the upsampler after the ResNet and transformer.
    """
    down_types = list(config["down_block_types"])
    up_types = list(config["up_block_types"])
    layers = _per_block(config["layers_per_block"], len(down_types))
    blocks: list[tuple[str, str]] = [
        ("conv_in.", "input_blocks.0.0."),
        ("time_embedding.linear_1.", "time_embed.0."),
        ("time_embedding.linear_2.", "time_embed.2."),
        ("add_embedding.linear_1.", "label_emb.0.0."),
        ("add_embedding.linear_2.", "label_emb.0.2."),
        ("conv_norm_out.", "out.0."),
        ("conv_out.", "out.2."),
        ("mid_block.resnets.0.", "middle_block.0."),
        ("mid_block.attentions.0.", "middle_block.1."),
        ("mid_block.resnets.1.", "middle_block.2."),
    ]
    index = 1
    for level, kind in enumerate(down_types):
        attention = "CrossAttn" in kind
        for j in range(layers[level]):
            blocks.append((f"down_blocks.{level}.resnets.{j}.", f"input_blocks.{index}.0."))
            if attention:
                blocks.append((f"down_blocks.{level}.attentions.{j}.", f"input_blocks.{index}.1."))
            index += 1
        if level < len(down_types) - 1:
            down = f"down_blocks.{level}.downsamplers.0.conv."
            blocks.append((down, f"input_blocks.{index}.0.op."))
            index += 1
    index = 0
    up_layers = list(reversed(layers))
    for level, kind in enumerate(up_types):
        attention = "CrossAttn" in kind
        count = up_layers[level] + 1
        for j in range(count):
            blocks.append((f"up_blocks.{level}.resnets.{j}.", f"output_blocks.{index}.0."))
            if attention:
                blocks.append((f"up_blocks.{level}.attentions.{j}.", f"output_blocks.{index}.1."))
            if j == count - 1 and level < len(up_types) - 1:
                slot = 2 if attention else 1  # after the ResNet (and the transformer)
                up = f"up_blocks.{level}.upsamplers.0."
                blocks.append((up, f"output_blocks.{index}.{slot}."))
            index += 1
    pairs: list[tuple[str, str]] = []
    for diffusers, sgm in blocks:
        if ".resnets." in diffusers:
            pairs.extend((diffusers + d, sgm + s) for d, s in SGM_RESNET_PARTS)
        else:
            pairs.append((diffusers, sgm))
    return tuple(sorted(pairs, key=lambda pair: len(pair[0]), reverse=True))


SD1_NAMING = ModelNaming(text_encoder_count=1)


def naming_for(family: str, unet: Any, text_encoder_count: int) -> ModelNaming:
    """The naming sd-scripts uses for this family (SGM UNet names for SDXL only)."""
    if family == "sdxl":
        return SgmNaming(text_encoder_count=text_encoder_count, prefixes=sgm_prefixes(unet.config))
    return ModelNaming(text_encoder_count=text_encoder_count)
