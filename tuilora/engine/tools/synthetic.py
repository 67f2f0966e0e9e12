"""Original-layout (LDM/SGM) checkpoints for the tools' tests and benchmarks: the real SD1.5
and SDXL shapes (configs below, models built on the meta device, weights random and
streamed to the file), or a tiny diffusers pipeline's own weights rearranged.

SD1.x goes through ``ldm_convert.pipeline_to_ldm``. SDXL's original layout is written here:
the UNet under SGM names (``names.PathMap``), the first text encoder as Hugging Face CLIP
under ``conditioner.embedders.0.transformer.``, the second as OpenCLIP under
``conditioner.embedders.1.model.`` (q/k/v fused into ``attn.in_proj_weight``,
``text_projection`` transposed), the VAE as in SD1.x.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from tuilora.engine.ldm_convert import VAE_PREFIX, pipeline_to_ldm, vae_to_ldm
from tuilora.engine.tools.sources import DTYPE_CODES, tensor_bytes
from tuilora.lorafile.names import PathMap
from tuilora.lorafile.safetensors_write import PlannedTensor, write_safetensors

CLIP_L: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
}
OPENCLIP_BIG_G: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}
SD15_UNET: dict[str, Any] = {
    "cross_attention_dim": 768,
    "sample_size": 64,
}  # the rest are diffusers' defaults
SDXL_UNET: dict[str, Any] = {
    "sample_size": 128,
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
SD_VAE: dict[str, Any] = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
}
SDXL_TE1 = "conditioner.embedders.0.transformer."
SDXL_TE2 = "conditioner.embedders.1.model."
_OPENCLIP_PARTS = {
    "self_attn.out_proj": "attn.out_proj",
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
}
_LAYER = re.compile(r"^encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")


def _text_model(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without the ``text_model.`` level (transformers 5 saves both ways)."""
    return {key.removeprefix("text_model."): value for key, value in state.items()}


def openclip_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Hugging Face CLIP text model's weights under OpenCLIP's names (SDXL's second
    encoder in the original layout)."""
    plain = _text_model(state)
    out: dict[str, torch.Tensor] = {}
    for key, value in plain.items():
        if match := _LAYER.match(key):
            layer, part, kind = match.groups()
            if part.startswith("self_attn.") and part[-6:-5] in "qkv" and part.endswith("_proj"):
                if part.endswith("q_proj"):
                    fused = [
                        plain[f"encoder.layers.{layer}.self_attn.{p}_proj.{kind}"] for p in "qkv"
                    ]
                    out[f"transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat(fused)
                continue
            out[f"transformer.resblocks.{layer}.{_OPENCLIP_PARTS[part]}.{kind}"] = value
        elif key == "embeddings.token_embedding.weight":
            out["token_embedding.weight"] = value
        elif key == "embeddings.position_embedding.weight":
            out["positional_embedding"] = value
        elif key.startswith("final_layer_norm."):
            out["ln_final." + key.rsplit(".", 1)[1]] = value
        elif key == "text_projection.weight":
            out["text_projection"] = value.T.contiguous()
    return out


def sdxl_to_ldm(
    unet: Mapping[str, torch.Tensor],
    unet_config: Mapping[str, Any],
    vae: Mapping[str, torch.Tensor],
    vae_config: Mapping[str, Any],
    text_encoder: Mapping[str, torch.Tensor],
    text_encoder_2: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    paths = PathMap(unet_config)
    checkpoint: dict[str, torch.Tensor] = {}
    for key, value in unet.items():
        module, _, param = key.rpartition(".")
        checkpoint[f"model.diffusion_model.{paths.to_sgm(module)}.{param}"] = value
    for key, value in _text_model(text_encoder).items():
        checkpoint[f"{SDXL_TE1}text_model.{key}"] = value
    for key, value in openclip_state(text_encoder_2).items():
        checkpoint[SDXL_TE2 + key] = value
    for key, value in vae_to_ldm(vae, vae_config).items():
        checkpoint[VAE_PREFIX + key] = value
    return checkpoint


def meta_checkpoint(family: str) -> dict[str, torch.Tensor]:
    """The original-layout state dict of a full-size SD1.5 or SDXL model, on the meta
    device (shapes only, no memory)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    unet: Any
    with torch.device("meta"):
        vae: Any = AutoencoderKL(**SD_VAE)
        te1 = CLIPTextModel(CLIPTextConfig(**CLIP_L))
        if family == "sd1":
            unet = UNet2DConditionModel(**SD15_UNET)
            return pipeline_to_ldm(
                unet.state_dict(), unet.config, vae.state_dict(), vae.config, te1.state_dict()
            )
        unet = UNet2DConditionModel(**SDXL_UNET)
        te2 = CLIPTextModelWithProjection(CLIPTextConfig(**OPENCLIP_BIG_G))
        return sdxl_to_ldm(
            unet.state_dict(),
            unet.config,
            vae.state_dict(),
            vae.config,
            te1.state_dict(),
            te2.state_dict(),
        )


def write_random_checkpoint(
    shapes: Mapping[str, torch.Tensor],
    path: Path,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float16,
    change: Callable[[str, tuple[int, ...]], torch.Tensor | None] | None = None,
    force: bool = False,
) -> Path:
    """Stream random weights (std 0.02, seeded per tensor) with ``shapes``' keys and shapes
    to ``path``. ``change(key, shape)`` may return a tensor to add (a "tuned" model: the same
    seed gives the same base weights); it is called as each tensor is written, so nothing
    is held for longer than one tensor."""
    planned = []
    for index, (key, meta) in enumerate(shapes.items()):
        shape = tuple(meta.shape)

        def produce(index: int = index, key: str = key, shape: tuple[int, ...] = shape) -> Any:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
            value = torch.randn(shape, generator=generator) * 0.02
            extra = change(key, shape) if change is not None else None
            if extra is not None:
                value += extra.reshape(shape)
            return tensor_bytes(value.to(dtype))

        planned.append(PlannedTensor(key, DTYPE_CODES[dtype], shape, produce))
    return write_safetensors(path, planned, {"format": "pt"}, overwrite=force)
