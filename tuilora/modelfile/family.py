"""Which Stable Diffusion a checkpoint is, from its tensor names (and shapes when known).

The original (LDM / SGM) layout puts each component under its own prefix, and the text
encoders differ by family: SD1.x keeps OpenAI's CLIP in Hugging Face layout
(``cond_stage_model.transformer.``), SD2.x OpenCLIP (``cond_stage_model.model.``), SDXL both
(``conditioner.embedders.0.transformer.`` and ``conditioner.embedders.1.model.``). Where the
text encoder is missing the UNet's cross-attention width decides (768, 1024, 2048). SDXL's
derived families (Pony, Illustrious, NoobAI) are SDXL by architecture; NoobAI's v-prediction
releases carry an empty ``v_pred`` marker tensor (and ``ztsnr``), as ComfyUI reads them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Final

from tuilora.errors import UserError

UNET_PREFIX: Final = "model.diffusion_model."
VAE_PREFIX: Final = "first_stage_model."
#: Text-encoder prefixes per family, in the order the model's encoders are used.
TEXT_PREFIXES: Final = {
    "sd1": ("cond_stage_model.transformer.",),
    "sd2": ("cond_stage_model.model.",),
    "sdxl": ("conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."),
}
FAMILIES: Final = ("sd1", "sd2", "sdxl")
#: How people name them.
FAMILY_NAMES: Final = {"sd1": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL"}
#: UNet cross-attention width → family, for files without their text encoders.
CONTEXT_WIDTHS: Final = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
_CROSS_ATTENTION_KEY = re.compile(r"\.attn2\.to_k\.weight$")
#: Names of other model kinds, for a useful refusal.
_OTHER_ARCHITECTURES: Final = (
    ("joint_blocks.", "Stable Diffusion 3"),
    ("double_blocks.", "FLUX"),
    ("single_transformer_blocks.", "FLUX"),
    ("transformer_blocks.0.attn.add_q_proj", "a DiT model (SD3 / FLUX)"),
)

ShapeOf = Callable[[str], "tuple[int, ...] | None"]


@dataclass(frozen=True)
class Architecture:
    family: str
    #: The UNet's input channels (4 for text-to-image; 9 inpainting, 8 instruct-pix2pix).
    in_channels: int | None
    has_vae: bool
    has_text_encoders: bool
    #: NoobAI-style marker tensors: ``v_pred`` (v-prediction) and ``ztsnr`` (zero terminal SNR).
    v_pred_key: bool
    ztsnr_key: bool


def detect_architecture(
    names: Collection[str], shape_of: ShapeOf | None = None, *, source: str
) -> Architecture:
    """The architecture of a checkpoint with tensor ``names``; UserError naming ``source``."""
    unet = [name for name in names if name.startswith(UNET_PREFIX)]
    if not unet:
        raise UserError(f"{source}: {_what_else(names)}")
    for marker, kind in _OTHER_ARCHITECTURES:
        if any(marker in name for name in unet):
            raise UserError(
                f"{source}: looks like {kind}; tuilora trains SD1.x, SD2.x and SDXL models"
            )
    by_text = [family for family in FAMILIES if _has_all(names, TEXT_PREFIXES[family])]
    by_width = _family_by_width(unet, shape_of)
    if "sdxl" in by_text:
        family = "sdxl"
    elif by_text:
        family = by_text[0]
    elif any(name.startswith("conditioner.embedders.0.model.") for name in names):
        raise UserError(
            f"{source}: an SDXL refiner (OpenCLIP only, no CLIP-L); LoRAs are trained on"
            " the SDXL base model or a model derived from it"
        )
    elif by_width is not None:
        family = by_width
    elif any(name == f"{UNET_PREFIX}label_emb.0.0.weight" for name in unet):
        family = "sdxl"
    else:
        raise UserError(f"{source}: cannot tell SD1.x, SD2.x and SDXL apart in it")
    if by_width is not None and by_text and by_width != family:
        raise UserError(
            f"{source}: its text encoder is {FAMILY_NAMES[family]}'s but its UNet is"
            f" {FAMILY_NAMES[by_width]}'s: a broken or merged-across-families file"
        )
    in_channels = None
    if shape_of is not None:
        shape = shape_of(f"{UNET_PREFIX}input_blocks.0.0.weight")
        in_channels = shape[1] if shape is not None and len(shape) == 4 else None
    if in_channels not in (None, 4):
        raise UserError(
            f"{source}: its UNet takes {in_channels} input channels (an inpainting or"
            " instruct model); LoRAs are trained on text-to-image models (4 channels)"
        )
    return Architecture(
        family=family,
        in_channels=in_channels,
        has_vae=any(name.startswith(VAE_PREFIX) for name in names),
        has_text_encoders=bool(by_text),
        v_pred_key="v_pred" in names,
        ztsnr_key="ztsnr" in names,
    )


def _has_all(names: Collection[str], prefixes: tuple[str, ...]) -> bool:
    return all(any(name.startswith(prefix) for name in names) for prefix in prefixes)


def _family_by_width(unet: list[str], shape_of: ShapeOf | None) -> str | None:
    if shape_of is None:
        return None
    for name in unet:
        if _CROSS_ATTENTION_KEY.search(name):
            shape = shape_of(name)
            if shape is not None and len(shape) == 2:
                return CONTEXT_WIDTHS.get(shape[1])
    return None


def _what_else(names: Collection[str]) -> str:
    """Why a file without an original-layout UNet is not a base model, in a few words."""
    sample = list(names)
    if any(n.startswith(("lora_", "lycoris_")) or ".lora_down." in n for n in sample):
        return "a LoRA (network weights), not a base model; give the model it was trained on"
    if any(n.startswith(("encoder.down", "decoder.up", VAE_PREFIX)) for n in sample):
        return "a VAE file, not a whole model; give it as vae = and the base model here"
    if any(n.startswith(("down_blocks.", "conv_in.", "time_embedding.")) for n in sample):
        return (
            "a diffusers-layout UNet file; give the whole diffusers folder, or the model"
            " as one original-layout checkpoint"
        )
    if any(n.startswith(("text_model.", "encoder.layers.")) for n in sample):
        return "a text encoder file, not a whole model"
    if not sample:
        return "holds no tensors"
    return "no Stable Diffusion UNet in it (no model.diffusion_model.* weights)"
