"""Samples of an SDXL-shaped model: both encoders and the pooled embedding, LoRA on and off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tuilora.engine.models import load_base_model
from tuilora.engine.naming import naming_for
from tuilora.engine.network_lora import LoRANetwork, RankPlan
from tuilora.engine.sample import TextSettings, generate, inference_mode, resolve
from tuilora.runs.prompts import parse_prompt_line


def test_sdxl_samples_follow_the_seed_and_the_lora(tiny_sdxl_model: Path) -> None:
    model = load_base_model(str(tiny_sdxl_model))
    assert model.family == "sdxl"
    item = resolve(
        parse_prompt_line("tuidemo, red circle --n blurry --s 2 --d 4"),
        default_size=(64, 64),
        sampler="euler_a",
    )
    parts = [model.unet, *model.text_encoders]
    with inference_mode(parts):
        base = np.asarray(generate(model, item, TextSettings()))
    naming = naming_for(model.family, model.unet, len(model.text_encoders))
    network = LoRANetwork(model.unet, model.text_encoders, naming, RankPlan(4, 4.0))
    torch.manual_seed(0)
    for module in network.modules_by_name().values():
        torch.nn.init.normal_(module.lora_up.weight, std=0.5)  # a LoRA that does something
    network.apply_to()
    images = {}
    for strength in (0.0, 1.0):
        network.set_multiplier(strength)
        with inference_mode([*parts, network]):
            images[strength] = np.asarray(generate(model, item, TextSettings()))
    network.remove()
    assert base.shape == (64, 64, 3)
    assert np.array_equal(images[0.0], base)
    assert not np.array_equal(images[1.0], base)
