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

The string rules themselves (``kohya_name``, ``sgm_prefixes``) live in the torch-free
``tuilora.lorafile.names``, which ``tuilora tools`` shares; this module applies them to
module trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

# Re-exported: the engine imports these names from here.
from tuilora.lorafile.names import TEXT_ENCODER_PREFIX as TEXT_ENCODER_PREFIX
from tuilora.lorafile.names import UNET_PREFIX as UNET_PREFIX
from tuilora.lorafile.names import kohya_name as kohya_name
from tuilora.lorafile.names import sgm_prefixes as sgm_prefixes


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


SD1_NAMING = ModelNaming(text_encoder_count=1)


def naming_for(family: str, unet: Any, text_encoder_count: int) -> ModelNaming:
    """The naming sd-scripts uses for this family (SGM UNet names for SDXL only)."""
    if family == "sdxl":
        return SgmNaming(text_encoder_count=text_encoder_count, prefixes=sgm_prefixes(unet.config))
    return ModelNaming(text_encoder_count=text_encoder_count)
