"""LoRA module names read from checkpoint keys equal the names sd-scripts' create_network
gives the same model — on the real SD1.5, SD2 and SDXL shapes in the original layout (the
shipped configs, modules on the meta device: shapes only) and on the tiny pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tuilora.engine.ldm_convert import ldm_shapes
from tuilora.engine.naming import naming_for
from tuilora.engine.network_lora import LoRANetwork, RankPlan
from tuilora.engine.single_file import build_empty
from tuilora.lorafile.modelkeys import ModelKeys, Slot, keys_from_slots, open_model_keys
from tuilora.modelfile.configs import family_configs


def _keys(shapes: dict[str, tuple[int, ...]], name: str) -> ModelKeys:
    slots = {key: Slot(None, key, shape, "F16") for key, shape in shapes.items()}
    return keys_from_slots(Path(name), slots)


def _network_shapes(family: str, *, conv: bool) -> dict[str, tuple[int, int]]:
    """sd-scripts' create_network on the family's diffusers modules (meta device): each
    module's (out, in·kh·kw), the shape of the change it makes."""
    configs = family_configs(family)
    unet = build_empty("unet", configs["unet"])
    parts = ["text_encoder", "text_encoder_2"] if family == "sdxl" else ["text_encoder"]
    encoders: list[Any] = [build_empty(part, configs[part]) for part in parts]
    with torch.device("meta"):
        network = LoRANetwork(
            unet,
            encoders,
            naming_for(family, unet, len(encoders)),
            RankPlan(1, 1, conv_rank=1 if conv else None, is_sdxl=family == "sdxl"),
        )
    return {
        name: (module.lora_up.weight.shape[0], module.lora_down.weight[0].numel())
        for name, module in network.modules_by_name().items()
    }


@pytest.mark.parametrize(
    ("family", "counts"),
    [
        ("sd1", {"unet": 192, "te": 72}),
        ("sd2", {"unet": 192, "te": 138}),
        ("sdxl", {"unet": 722, "te1": 72, "te2": 192}),
    ],
)
def test_full_size_original_layout_names_are_sd_scripts(
    family: str, counts: dict[str, int]
) -> None:
    model = _keys(ldm_shapes(family, family_configs(family)), family)
    assert model.family == family
    targets = model.targets()
    for conv in (False, True):  # LierLa, then C3Lier
        found = {
            name: (target.out_features, target.in_features)
            for name, target in targets.items()
            if target.in_network(conv=conv)
        }
        # the same names and shapes: a LoRA trained on the model merges into its file
        assert found == _network_shapes(family, conv=conv)
    parts: dict[str, int] = {}
    for name, target in targets.items():
        if target.in_network(conv=False):
            parts[name.split("_")[1]] = parts.get(name.split("_")[1], 0) + 1
    assert parts == counts  # DESIGN §11: SD1.5 192 + 72, SDXL 722 + 72 + 192; SD2 23 layers


def test_sd2_openclip_is_split_into_q_k_v_and_its_24th_layer_ignored() -> None:
    """SD2's original file holds OpenCLIP-H: 24 layers with fused q/k/v; sd-scripts' SD2
    text encoder has 23 (its conversion skips ``resblocks.23``) with separate q/k/v."""
    shapes = ldm_shapes("sd2", family_configs("sd2"))
    last = "cond_stage_model.model.transformer.resblocks.22."
    for key, shape in list(shapes.items()):
        if key.startswith(last):
            shapes[key.replace(".resblocks.22.", ".resblocks.23.")] = shape
    text = {n: t for n, t in _keys(shapes, "sd2").targets().items() if n.startswith("lora_te_")}
    assert len([t for t in text.values() if t.in_network(conv=False)]) == 23 * 6
    assert "lora_te_text_model_encoder_layers_23_mlp_fc1" not in text
    k_proj = text["lora_te_text_model_encoder_layers_0_self_attn_k_proj"].slot
    assert k_proj.key == "cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"
    assert k_proj.rows == (1024, 2048) and k_proj.weight_shape == (1024, 1024)


def test_tiny_models_in_both_layouts_name_alike(tiny_model: Path, tmp_path: Path) -> None:
    from tuilora.engine.ldm_convert import save_ldm_checkpoint

    folder = open_model_keys(tiny_model)
    single = open_model_keys(save_ldm_checkpoint(tiny_model, tmp_path / "t.safetensors"))
    assert (folder.layout, single.layout) == ("diffusers", "ldm")
    a, b = folder.targets(), single.targets()
    assert set(a) == set(b)
    assert all(a[n].slot.weight_shape == b[n].slot.weight_shape for n in a)
    assert all(a[n].role == b[n].role for n in a)
