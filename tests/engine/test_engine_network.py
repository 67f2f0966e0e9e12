"""LoRA targets and names on the real SD1.5 architecture (built on the meta device)."""

from __future__ import annotations

import re

import pytest
import torch

from tuilora.engine.naming import SD1_NAMING
from tuilora.engine.network_lora import LoRANetwork, RankPlan


@pytest.fixture(scope="module")
def sd15() -> tuple[torch.nn.Module, torch.nn.Module]:
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel()  # the default config is SD1.5's
        text_encoder = CLIPTextModel(CLIPTextConfig())  # the default config is SD1.5's CLIP-L
    return unet, text_encoder


def test_lierla_finds_sd_scripts_targets_and_names(
    sd15: tuple[torch.nn.Module, torch.nn.Module],
) -> None:
    unet, text_encoder = sd15
    with torch.device("meta"):
        network = LoRANetwork(unet, [text_encoder], SD1_NAMING, RankPlan(4, 1.0))
    assert len(network.unet_loras) == 192
    assert len(network.te_loras) == 72
    names = set(network.modules_by_name())
    assert "lora_unet_down_blocks_0_attentions_0_proj_in" in names
    assert "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k" in names
    assert "lora_unet_up_blocks_3_attentions_2_transformer_blocks_0_ff_net_0_proj" in names
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj" in names
    assert "lora_te_text_model_encoder_layers_11_mlp_fc2" in names
    pattern = re.compile(r"^lora_(unet|te)_[a-z0-9_]+$")
    assert all(pattern.match(name) for name in names)
    # no 3x3 convolutions in LierLa
    for module in network.unet_loras.values():
        down = module.lora_down
        assert isinstance(down, torch.nn.Linear) or down.kernel_size == (1, 1)


def test_c3lier_adds_the_resnet_and_sampler_convs(
    sd15: tuple[torch.nn.Module, torch.nn.Module],
) -> None:
    unet, text_encoder = sd15
    with torch.device("meta"):
        network = LoRANetwork(unet, [text_encoder], SD1_NAMING, RankPlan(8, 1.0, 4, 2.0))
    names = set(network.modules_by_name())
    assert "lora_unet_down_blocks_0_resnets_0_conv1" in names
    assert "lora_unet_down_blocks_0_downsamplers_0_conv" in names
    assert "lora_unet_up_blocks_0_upsamplers_0_conv" in names
    conv = network.unet_loras["lora_unet_down_blocks_0_resnets_0_conv1"]
    assert conv.rank == 4 and conv.lora_down.kernel_size == (3, 3)
    assert conv.scale == pytest.approx(0.5)
    assert len(network.unet_loras) > 192 and len(network.te_loras) == 72


def test_forward_adds_the_scaled_delta_and_state_dict_is_kohya() -> None:
    layer = torch.nn.Linear(6, 5)
    holder = torch.nn.Sequential()
    holder.add_module("proj", layer)
    from tuilora.engine.network_lora import LoRAModule

    lora = LoRAModule("lora_unet_proj", layer, rank=2, alpha=1.0)
    x = torch.randn(3, 6)
    before = layer(x)
    lora.apply_to()
    torch.nn.init.ones_(lora.lora_up.weight)
    delta = lora.lora_up(lora.lora_down(x)) * 0.5
    assert torch.allclose(layer(x), before + delta, atol=1e-6)
    lora.multiplier = 0.0
    assert torch.allclose(layer(x), before)
    lora.remove()
    assert torch.allclose(layer(x), before)
    assert set(lora.state_dict()) == {"alpha", "lora_down.weight", "lora_up.weight"}


def test_max_norm_scales_only_large_modules() -> None:
    from tuilora.engine.network_lora import LoRAModule

    small = LoRAModule("a", torch.nn.Linear(4, 4), rank=2, alpha=2.0)
    big = LoRAModule("b", torch.nn.Linear(4, 4), rank=2, alpha=2.0)
    torch.nn.init.constant_(big.lora_up.weight, 10.0)
    net = LoRANetwork(None, [], SD1_NAMING, RankPlan(2, 2.0))
    net.unet_loras["a"], net.unet_loras["b"] = small, big
    scaled, largest = net.apply_max_norm(1.0)
    assert scaled == 1 and largest > 1.0
    updown = (big.lora_up.weight @ big.lora_down.weight).norm() * big.scale
    assert float(updown) == pytest.approx(1.0, rel=1e-4)
