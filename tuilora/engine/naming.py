"""sd-scripts' LoRA module names, from the module paths of the models tuilora loads.

sd-scripts names a module ``prefix + "." + path`` with dots turned into underscores:
``lora_unet_down_blocks_0_attentions_0_proj_in``, ``lora_te_text_model_encoder_layers_0_
self_attn_q_proj``. sd-webui, ComfyUI and diffusers' kohya loader expect exactly these.

Two differences between tuilora's module trees and sd-scripts' are bridged here:
- transformers 5's ``CLIPTextModel`` has no ``text_model`` submodule (its paths start at
  ``encoder.``) while the file format keeps the segment (DESIGN §11): it is put back.
- SDXL files name the UNet in SGM style (``input_blocks_4_1_...``); the SDXL naming maps
  diffusers paths to those (added with SDXL support).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

UNET_PREFIX = "lora_unet"
TEXT_ENCODER_PREFIX = "lora_te"


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

    def unet_name(self, path: str) -> str:
        return kohya_name(UNET_PREFIX, path)

    def text_encoder_prefix(self, index: int) -> str:
        if self.text_encoder_count == 1:
            return TEXT_ENCODER_PREFIX
        return f"{TEXT_ENCODER_PREFIX}{index + 1}"

    def text_encoder_name(self, index: int, path: str, encoder: nn.Module) -> str:
        return kohya_name(self.text_encoder_prefix(index), text_model_path(path, encoder))


SD1_NAMING = ModelNaming(text_encoder_count=1)
