"""The real SD1.5 layout, checked without weights: the UNet, VAE and CLIP built on the meta
device, converted to LDM names, and read back by diffusers' own LDM → diffusers converters."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from tuilora.engine.ldm_convert import (
    CLIP_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    pipeline_to_ldm,
)


@pytest.fixture(scope="module")
def sd15() -> dict[str, Any]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(
            sample_size=64,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            down_block_types=(
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D",
            ),
            up_block_types=(
                "UpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
                "CrossAttnUpBlock2D",
            ),
            cross_attention_dim=768,
            attention_head_dim=8,
        )
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
                hidden_act="quick_gelu",
            )
        )
    checkpoint = pipeline_to_ldm(
        unet.state_dict(), unet.config, vae.state_dict(), vae.config, text_encoder.state_dict()
    )
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "checkpoint": checkpoint}


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


def test_sd15_key_counts_and_landmarks(sd15: dict[str, Any]) -> None:
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    checkpoint = sd15["checkpoint"]
    count = {
        prefix: sum(key.startswith(prefix) for key in checkpoint)
        for prefix in (UNET_PREFIX, VAE_PREFIX, CLIP_PREFIX)
    }
    # SD1.5's original file: 686 UNet and 248 VAE tensors, 196 CLIP weights (+ position_ids,
    # a buffer that transformers rebuilds).
    assert count == {UNET_PREFIX: 686, VAE_PREFIX: 248, CLIP_PREFIX: 196}
    assert infer_diffusers_model_type(checkpoint) == "v1"
    for key, shape in {
        "model.diffusion_model.output_blocks.11.0.skip_connection.weight": (320, 640, 1, 1),
        "model.diffusion_model.input_blocks.3.0.op.weight": (320, 320, 3, 3),
        "model.diffusion_model.input_blocks.9.0.op.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.input_blocks.11.0.in_layers.2.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.output_blocks.2.1.conv.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.output_blocks.5.2.conv.weight": (1280, 1280, 3, 3),
        "model.diffusion_model.output_blocks.8.2.conv.weight": (640, 640, 3, 3),
        "model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight": (
            1280,
            768,
        ),
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": (320, 320, 1, 1),
        "model.diffusion_model.time_embed.2.weight": (1280, 1280),
        "model.diffusion_model.out.2.weight": (4, 320, 3, 3),
        "first_stage_model.encoder.down.2.downsample.conv.weight": (512, 512, 3, 3),
        "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight": (256, 128, 1, 1),
        "first_stage_model.decoder.up.3.upsample.conv.weight": (512, 512, 3, 3),
        "first_stage_model.decoder.up.0.block.2.conv2.weight": (128, 128, 3, 3),
        "first_stage_model.encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
        "first_stage_model.decoder.mid.attn_1.proj_out.weight": (512, 512, 1, 1),
        "first_stage_model.quant_conv.weight": (8, 8, 1, 1),
        "cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.weight": (768, 3072),
        "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 768),
    }.items():
        assert tuple(checkpoint[key].shape) == shape, key
    assert "first_stage_model.encoder.down.3.downsample.conv.weight" not in checkpoint
    assert "model.diffusion_model.input_blocks.12.0.op.weight" not in checkpoint


def test_diffusers_converters_read_every_weight_back(sd15: dict[str, Any]) -> None:
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
    )

    checkpoint = sd15["checkpoint"]
    unet, vae = sd15["unet"], sd15["vae"]
    assert shapes(convert_ldm_unet_checkpoint(checkpoint, unet.config)) == shapes(unet.state_dict())
    assert shapes(convert_ldm_vae_checkpoint(checkpoint, vae.config)) == shapes(vae.state_dict())
    clip = convert_ldm_clip_checkpoint(checkpoint)
    # transformers ≥ 5.6 has no ``text_model`` level in CLIPTextModel; diffusers strips it.
    clip = {key.removeprefix("text_model."): value for key, value in clip.items()}
    want = {
        key.removeprefix("text_model."): value
        for key, value in sd15["text_encoder"].state_dict().items()
    }
    assert shapes(clip) == shapes(want)
