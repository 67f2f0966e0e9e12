"""Tiny Stable-Diffusion-shaped models (SD1.5 and SDXL) and a synthetic dataset, built
in-process.

The demo and the tests train these: the real SD1.5 layout (cross-attention down/up blocks,
1x1 ``proj_in``/``proj_out``, a CLIP text encoder, a KL VAE) at a size that trains on two CPU
cores in seconds, with random weights and a tokenizer made from a generated vocabulary, so
nothing is downloaded. The VAE downsamples by 2, not 8: code must read the factor from the
model (DESIGN §6 "No SD1.5 constants").
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from tuilora.modelfile.clip_vocab import bytes_to_unicode

CLIP_MAX_POSITIONS = 77  # 75 tokens + BOS + EOS, as the real CLIP (chunking needs it)
SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")


def write_tokenizer(folder: Path, *, pad_token: str = SPECIAL_TOKENS[1]) -> int:
    """A CLIP tokenizer folder (vocab.json + merges.txt) with a byte-level vocabulary.

    Every byte is a token, alone and word-final (``x</w>``), plus a few merges for the demo's
    words; every merge joins tokens that exist, as CLIPTokenizer requires. Returns the size.
    SDXL's second tokenizer pads with ``!`` (id 0), not EOS: ``pad_token="!"``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    symbols = bytes_to_unicode()
    vocab: dict[str, int] = {}
    for symbol in symbols:
        vocab[symbol] = len(vocab)
    for symbol in symbols:
        vocab[symbol + "</w>"] = len(vocab)
    merges: list[tuple[str, str]] = []
    for word in ("red", "blue", "green", "circle", "square", "triangle", "tuidemo", "shape"):
        current = word[0]
        for index, char in enumerate(word[1:], start=1):
            right = char + ("</w>" if index == len(word) - 1 else "")
            merges.append((current, right))
            current = current + right
            vocab.setdefault(current, len(vocab))
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    lines = ["#version: 0.2", *(f"{a} {b}" for a, b in dict.fromkeys(merges))]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        "model_max_length": CLIP_MAX_POSITIONS,
        "bos_token": SPECIAL_TOKENS[0],
        "eos_token": SPECIAL_TOKENS[1],
        "pad_token": pad_token,
        "unk_token": SPECIAL_TOKENS[1],
        "tokenizer_class": "CLIPTokenizer",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return len(vocab)


def build_tiny_pipeline(folder: str | Path, *, seed: int = 0, v_prediction: bool = False) -> Path:
    """Write a tiny SD1.5-shaped diffusers pipeline folder and return its path."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = write_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=16,
        use_linear_projection=False,  # SD1.5: 1x1 conv proj_in/proj_out
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=16,
        sample_size=64,
    )
    text_config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=CLIP_MAX_POSITIONS,
        projection_dim=32,
        # With a small vocabulary the ids must be set explicitly (defaults are 49406/49407).
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    text_encoder = CLIPTextModel(text_config)
    schedule: dict[str, Any] = {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": "v_prediction" if v_prediction else "epsilon",
        "clip_sample": False,
    }
    pipeline: Any = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(**schedule, set_alpha_to_one=False, steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(str(folder), safe_serialization=True)
    return folder


def _text_config(tokenizer: Any, vocab_size: int, **changes: Any) -> Any:
    from transformers import CLIPTextConfig

    values: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": CLIP_MAX_POSITIONS,
        "projection_dim": 32,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    values.update(changes)
    return CLIPTextConfig(**values)


def build_tiny_sdxl_pipeline(folder: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny SDXL-shaped diffusers pipeline folder and return its path.

    SDXL's layout at toy size: a first level without attention, linear ``proj_in``, two
    transformer layers in the cross-attention level, two text encoders (the second with a
    projection, GELU as OpenCLIP, padding with ``!``) whose widths add up to the
    cross-attention width, and ``text_time`` added conditioning (pooled text + six size
    numbers). The VAE is the SD1 tiny one with SDXL's scaling factor.
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = write_tokenizer(folder / "tokenizer")
    write_tokenizer(folder / "tokenizer_2", pad_token="!")
    tokenizer = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    tokenizer_2 = CLIPTokenizer.from_pretrained(str(folder / "tokenizer_2"))
    torch.manual_seed(seed)
    time_embed_dim = 8
    projection_dim = 32
    unet = UNet2DConditionModel(
        sample_size=32,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(4, 8),
        cross_attention_dim=64,  # TE1 width 32 + TE2 width 32
        norm_num_groups=16,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=projection_dim + 6 * time_embed_dim,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=16,
        sample_size=64,
        scaling_factor=0.13025,
    )
    text_encoder = CLIPTextModel(_text_config(tokenizer, vocab_size))
    text_encoder_2 = CLIPTextModelWithProjection(
        _text_config(tokenizer_2, vocab_size, hidden_act="gelu", projection_dim=projection_dim)
    )
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        timestep_spacing="leading",
        steps_offset=1,
    )
    pipeline: Any = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    pipeline.save_pretrained(str(folder), safe_serialization=True)
    return folder


_COLOURS = {"red": (220, 40, 40), "blue": (40, 70, 220), "green": (40, 180, 60)}
_SHAPES = ("circle", "square", "triangle")
_SIZES = ((64, 64), (96, 64), (64, 96))


def build_shapes_dataset(
    folder: str | Path,
    *,
    images: int = 8,
    repeats: int = 1,
    seed: int = 0,
    trigger: str = "tuidemo",
) -> Path:
    """``folder/<repeats>_shapes/`` with coloured shapes and booru-style captions."""
    rng = random.Random(seed)
    root = Path(folder)
    subset = root / f"{repeats}_shapes"
    subset.mkdir(parents=True, exist_ok=True)
    for index in range(images):
        colour = rng.choice(list(_COLOURS))
        shape = _SHAPES[index % len(_SHAPES)]
        width, height = _SIZES[index % len(_SIZES)]
        background = tuple(rng.randint(200, 255) for _ in range(3))
        image = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(image)
        dx, dy = rng.randint(-width // 8, width // 8), rng.randint(-height // 8, height // 8)
        box = (width // 4 + dx, height // 4 + dy, 3 * width // 4 + dx, 3 * height // 4 + dy)
        fill = _COLOURS[colour]
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        elif shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(width // 2, box[1]), (box[2], box[3]), (box[0], box[3])], fill=fill)
        stem = subset / f"img_{index:03d}"
        image.save(stem.with_suffix(".png"))
        caption = f"{trigger}, {colour} {shape}, simple background, shape"
        stem.with_suffix(".txt").write_text(caption, encoding="utf-8")
    return root
