"""SDXL: SGM module names on the real architecture (meta device), text encoding, size
conditioning, and the tiny SDXL pipeline trained end to end and loaded by diffusers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import torch
from safetensors import safe_open

from tuilora.config import to_toml_dict
from tuilora.engine.naming import SgmNaming, naming_for, sgm_prefixes
from tuilora.engine.network_lora import LoRANetwork, RankPlan
from tuilora.errors import UserError

#: The SDXL base 1.0 UNet config (diffusers' unet/config.json of the release).
SDXL_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": [320, 640, 1280],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "norm_num_groups": 32,
}


@pytest.fixture(scope="module")
def sdxl() -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    big_g = CLIPTextConfig(
        hidden_size=1280,
        intermediate_size=5120,
        num_hidden_layers=32,
        num_attention_heads=20,
        projection_dim=1280,
        hidden_act="gelu",
    )
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL_UNET_CONFIG)
        te1 = CLIPTextModel(CLIPTextConfig())  # CLIP ViT-L/14: 12 layers
        te2 = CLIPTextModelWithProjection(big_g)  # OpenCLIP ViT-bigG/14: 32 layers
    return unet, te1, te2


def reference_sgm_pairs() -> list[tuple[str, str]]:
    """The SDXL diffusers→SGM prefixes written out for its three levels (the layout
    sd-scripts' ``make_unet_conversion_map`` enumerates), as an oracle for the derivation."""
    pairs: list[tuple[str, str]] = []
    resnet = [
        ("in_layers.0.", "norm1."),
        ("in_layers.2.", "conv1."),
        ("out_layers.0.", "norm2."),
        ("out_layers.3.", "conv2."),
        ("emb_layers.1.", "time_emb_proj."),
        ("skip_connection.", "conv_shortcut."),
    ]
    layer: list[tuple[str, str]] = []
    for i in range(3):
        for j in range(2):
            layer.append((f"input_blocks.{3 * i + j + 1}.0.", f"down_blocks.{i}.resnets.{j}."))
            layer.append((f"input_blocks.{3 * i + j + 1}.1.", f"down_blocks.{i}.attentions.{j}."))
        for j in range(3):
            layer.append((f"output_blocks.{3 * i + j}.0.", f"up_blocks.{i}.resnets.{j}."))
            layer.append((f"output_blocks.{3 * i + j}.1.", f"up_blocks.{i}.attentions.{j}."))
        layer.append((f"input_blocks.{3 * (i + 1)}.0.op.", f"down_blocks.{i}.downsamplers.0.conv."))
        layer.append((f"output_blocks.{3 * i + 2}.2.", f"up_blocks.{i}.upsamplers.0."))
    layer.append(("middle_block.1.", "mid_block.attentions.0."))
    layer += [(f"middle_block.{2 * j}.", f"mid_block.resnets.{j}.") for j in range(2)]
    for sgm, hf in layer:
        if "resnets" in hf:
            pairs += [(sgm + s, hf + h) for s, h in resnet]
        else:
            pairs.append((sgm, hf))
    pairs += [(f"time_embed.{2 * j}.", f"time_embedding.linear_{j + 1}.") for j in range(2)]
    pairs += [(f"label_emb.0.{2 * j}.", f"add_embedding.linear_{j + 1}.") for j in range(2)]
    pairs += [
        ("input_blocks.0.0.", "conv_in."),
        ("out.0.", "conv_norm_out."),
        ("out.2.", "conv_out."),
    ]
    return pairs


def reference_sgm(path: str, pairs: list[tuple[str, str]]) -> str | None:
    dotted = path + "."
    for sgm, hf in sorted(pairs, key=lambda p: -len(p[1])):
        if dotted.startswith(hf):
            return (sgm + dotted[len(hf) :]).rstrip(".")
    return None


def test_sgm_names_match_the_sdxl_layout_for_every_layer(
    sdxl: tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module],
) -> None:
    unet = sdxl[0]
    naming = naming_for("sdxl", unet, 2)
    assert isinstance(naming, SgmNaming)
    pairs = reference_sgm_pairs()
    layers = [
        path
        for path, module in unet.named_modules()
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d)
    ]
    assert len(layers) == 794
    mismatched = [p for p in layers if naming.unet_path(p) != reference_sgm(p, pairs)]
    assert mismatched == []


def test_sdxl_lierla_has_sd_scripts_counts_and_names(
    sdxl: tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module],
) -> None:
    unet, te1, te2 = sdxl
    naming = naming_for("sdxl", unet, 2)
    with torch.device("meta"):
        network = LoRANetwork(unet, [te1, te2], naming, RankPlan(4, 1.0))
    counts = network.counts()
    assert counts.unet == 722 and counts.text_encoders == (72, 192)
    names = set(network.modules_by_name())
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q" in names
    assert "lora_unet_input_blocks_8_1_transformer_blocks_9_ff_net_2" in names
    assert "lora_unet_middle_block_1_proj_in" in names
    assert "lora_unet_output_blocks_5_1_transformer_blocks_1_attn2_to_out_0" in names
    assert "lora_te1_text_model_encoder_layers_11_mlp_fc2" in names
    assert "lora_te2_text_model_encoder_layers_31_self_attn_out_proj" in names
    assert not any("down_blocks" in n or "up_blocks" in n for n in names)


def test_sdxl_c3lier_conv_names_are_sgm(
    sdxl: tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module],
) -> None:
    unet = sdxl[0]
    with torch.device("meta"):
        network = LoRANetwork(unet, [], naming_for("sdxl", unet, 2), RankPlan(4, 1.0, 2, 1.0))
    names = set(network.modules_by_name())
    for expected in (
        "lora_unet_input_blocks_1_0_in_layers_2",
        "lora_unet_input_blocks_1_0_emb_layers_1",
        "lora_unet_input_blocks_3_0_op",
        "lora_unet_input_blocks_4_0_skip_connection",
        "lora_unet_middle_block_2_out_layers_3",
        "lora_unet_output_blocks_2_2_conv",
        "lora_unet_output_blocks_5_2_conv",
        "lora_unet_output_blocks_8_0_skip_connection",
    ):
        assert expected in names


def test_sgm_prefixes_follow_the_config_not_constants() -> None:
    """A two-level layout (the tiny model) gets its own numbering."""
    config = {
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "layers_per_block": 1,
    }
    naming = SgmNaming(text_encoder_count=2, prefixes=sgm_prefixes(config))
    assert naming.unet_path("down_blocks.0.downsamplers.0.conv") == "input_blocks.2.0.op"
    assert naming.unet_path("down_blocks.1.attentions.0.proj_in") == "input_blocks.3.1.proj_in"
    assert naming.unet_path("up_blocks.0.attentions.1.proj_out") == "output_blocks.1.1.proj_out"
    assert naming.unet_path("up_blocks.0.upsamplers.0.conv") == "output_blocks.1.2.conv"
    assert naming.unet_path("up_blocks.1.resnets.1.conv2") == "output_blocks.3.0.out_layers.3"


def test_sdxl_text_encoding_matches_diffusers_pipeline(tiny_sdxl_model: Path) -> None:
    from diffusers import StableDiffusionXLPipeline

    from tuilora.engine.models import load_base_model
    from tuilora.engine.text import TextEncoding

    model = load_base_model(str(tiny_sdxl_model))
    encoding = TextEncoding(
        "sdxl", model.tokenizers, model.text_encoders, max_token_length=75, clip_skip=None
    )
    ours = encoding(["tuidemo, red circle"])
    pipeline: Any = StableDiffusionXLPipeline.from_pretrained(str(tiny_sdxl_model))
    states, _, pooled, _ = pipeline.encode_prompt(
        "tuidemo, red circle", device="cpu", do_classifier_free_guidance=False
    )
    assert ours.pooled is not None
    assert torch.allclose(ours.states, states, atol=1e-5)
    assert torch.allclose(ours.pooled, pooled, atol=1e-5)
    long = TextEncoding(
        "sdxl", model.tokenizers, model.text_encoders, max_token_length=225, clip_skip=None
    )(["tuidemo, red circle"])
    assert long.states.shape == (1, 227, 64) and long.pooled is not None


def test_padded_tokenizer_chunks_end_with_eos(tiny_sdxl_model: Path) -> None:
    from transformers import CLIPTokenizer

    from tuilora.engine.text import tokenize

    tokenizer = CLIPTokenizer.from_pretrained(str(tiny_sdxl_model / "tokenizer_2"))
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    ids = tokenize(tokenizer, ["x" * 80 + " red", "red"], 150)
    assert ids.shape == (2, 2, 77)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    assert int(ids[0, 0, -1]) == eos  # cut mid-caption: the chunk still ends with EOS
    assert int(ids[1, 1, 1]) == eos and int(ids[1, 1, 2]) == pad  # empty chunk: BOS EOS PAD


def test_size_conditioning_follows_sd_scripts() -> None:
    from tuilora.engine.data import TrainItem
    from tuilora.engine.sdxl import crop_ltrb, time_ids

    # A 2:1 image in a wider bucket is fitted to the bucket's height, centred.
    # 512 × 1000/520 = 984.6 wide: left (1024 - 984.6) // 2 = 19, right 1003.6.
    left, top, right, bottom = crop_ltrb((1024, 512), (1000, 520))
    assert (left, top, bottom) == (19.0, 0.0, 512.0) and right == pytest.approx(1003.6, abs=0.1)
    item = TrainItem(Path("a.png"), "", False, (1024, 512), (1024, 532), (1000, 520))
    assert time_ids(item, flip=False) == [520, 1000, 0, 19, 512, 1024]
    assert time_ids(item, flip=True) == [520, 1000, 0, 20, 512, 1024]  # 1024 - 1003.6


def write_config(config: Any, path: Path) -> Path:
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_accelerator_state")
def test_tiny_sdxl_trains_and_diffusers_injects_every_module(
    make_config: Any, tiny_sdxl_model: Path, tmp_path: Path
) -> None:
    from tuilora.engine.train import run_training
    from tuilora.engine.verify import verify_lora

    out = tmp_path / "run"
    config = make_config(
        out,
        pretrained_model_name_or_path=str(tiny_sdxl_model),
        max_train_epochs=1,
        mixed_precision="bf16",
        flip_aug=True,
        max_token_length=225,
    )
    assert run_training(str(write_config(config, tmp_path / "c.toml")), progress=False) == 0
    final = out / "t.safetensors"
    with safe_open(str(final), framework="pt") as handle:
        keys = list(handle.keys())
        meta = handle.metadata()
    names = {key.split(".")[0] for key in keys}
    assert {n.split("_")[1] for n in names} == {"unet", "te1", "te2"}
    assert "lora_unet_input_blocks_3_1_transformer_blocks_1_attn2_to_k" in names
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    # sd-scripts' sai_model_spec: an SDXL LoRA's implementation is Stability AI's repo
    assert meta["modelspec.implementation"] == "https://github.com/Stability-AI/generative-models"
    report = verify_lora(tiny_sdxl_model, final, prompt="tuidemo, red circle")
    assert report.warnings == []
    assert report.injected == {"unet": 88, "text_encoder": 12, "text_encoder_2": 12}
    assert report.file_modules == len(names) == 112
    assert report.output_change > 0


def test_cached_text_encoder_outputs_encode_each_caption_once(
    make_config: Any, tiny_sdxl_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuilora.engine.text import TextEncoding
    from tuilora.engine.train import run_training

    encoded: list[str] = []
    real = TextEncoding._encode

    def counting(self: TextEncoding, captions: list[str]) -> Any:
        encoded.extend(captions)
        return real(self, captions)

    monkeypatch.setattr(TextEncoding, "_encode", counting)
    out = tmp_path / "run"
    config = make_config(
        out,
        pretrained_model_name_or_path=str(tiny_sdxl_model),
        max_train_epochs=2,
        network_train_unet_only=True,
        cache_text_encoder_outputs=True,
        shuffle_caption=False,
        save_every_n_epochs=None,
    )
    assert run_training(str(write_config(config, tmp_path / "c.toml")), progress=False) == 0
    assert len(encoded) == len(set(encoded)) <= 6  # the 6 captions, each encoded once
    with safe_open(str(out / "t.safetensors"), framework="pt") as handle:
        keys = list(handle.keys())  # safe_open is not a mapping
        assert json.loads(handle.metadata()["ss_tag_frequency"])
    assert all(k.startswith("lora_unet_") for k in keys)


def test_text_encoder_cache_refuses_a_trained_encoder(make_config: Any, tmp_path: Path) -> None:
    from tuilora.engine.text import check_text_cache

    config = make_config(tmp_path, cache_text_encoder_outputs=True)
    with pytest.raises(UserError, match="network_train_unet_only"):
        check_text_cache(config, train_text_encoder=True)
    with pytest.raises(UserError, match="shuffle_caption"):
        check_text_cache(config, train_text_encoder=False)
