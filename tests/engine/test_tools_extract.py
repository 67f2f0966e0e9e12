"""`tuilora tools extract`: tuned = base + a known low-rank ΔW comes back out.

sd-scripts' extract_lora_from_models.py is the reference: SVD of tuned − base per module,
up = U·S and down = Vh at the rank, a quantile clamp of both (0.99 by default), alpha = the
module's rank, the text encoder left out when no weight differs by more than min_diff (0.01).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tuilora.engine.ldm_convert import save_ldm_checkpoint
from tuilora.engine.tools.extract import extract_lora
from tuilora.engine.tools.merge_model import merge_into_model
from tuilora.errors import UserError
from tuilora.lorafile.modelkeys import open_model_keys

TRUE_RANK = 3


def add_low_rank(
    folder: Path, out: Path, *, rank: int, seed: int, scale: float = 0.05, text: bool = False
) -> dict[str, torch.Tensor]:
    """Copy a diffusers folder adding a rank-``rank`` change to every LierLa target of the
    UNet (and of the text encoder with ``text``); return the changes by module name."""
    shutil.copytree(folder, out)
    targets = open_model_keys(folder).targets()
    generator = torch.Generator().manual_seed(seed)
    changes: dict[str, torch.Tensor] = {}
    for component in ("unet", "text_encoder"):
        if component == "text_encoder" and not text:
            continue
        (weights,) = sorted((out / component).glob("*.safetensors"))
        state = load_file(str(weights))
        for name, target in targets.items():
            if not target.in_network(conv=False) or target.slot.file is None:
                continue
            if target.slot.file.parent.name != component:
                continue
            weight = state[target.slot.key]
            rows, cols = weight.shape[0], weight[0].numel()
            up = torch.randn(rows, rank, generator=generator)
            down = torch.randn(rank, cols, generator=generator)
            change = (up @ down) * scale / rank
            state[target.slot.key] = weight + change.reshape(weight.shape)
            changes[name] = change
        save_file(state, str(weights), metadata={"format": "pt"})
    return changes


@pytest.fixture(scope="module")
def ldm_base(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_ldm_checkpoint(tiny_model, tmp_path_factory.mktemp("ldm") / "base.safetensors")


@pytest.fixture(scope="module")
def tuned(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, torch.Tensor]]:
    out = tmp_path_factory.mktemp("tuned") / "tuned"
    return out, add_low_rank(tiny_model, out, rank=TRUE_RANK, seed=1)


def merged_changes(base: Path, merged: Path) -> dict[str, torch.Tensor]:
    """merged − base for every LoRA target, by module name (any layout)."""
    before = open_model_keys(base).targets()
    after = open_model_keys(merged).targets()
    out = {}
    for name, target in before.items():
        with safe_open(str(target.slot.file), "pt") as handle:
            old = handle.get_tensor(target.slot.key)
        with safe_open(str(after[name].slot.file), "pt") as handle:
            new = handle.get_tensor(after[name].slot.key)
        if target.slot.rows:
            low, high = target.slot.rows
            old, new = old[low:high], new[low:high]
        out[name] = (new.float() - old.float()).reshape(new.shape[0], -1)
    return out


def relative_error(found: dict[str, torch.Tensor], wanted: dict[str, torch.Tensor]) -> float:
    residual = sum(
        float((found[n] - wanted[n].reshape(found[n].shape)).norm() ** 2) for n in wanted
    )
    total = sum(float(wanted[n].norm() ** 2) for n in wanted)
    return (residual / total) ** 0.5


def test_extract_then_merge_reproduces_the_tuned_model(
    ldm_base: Path, tuned: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    tuned_folder, changes = tuned
    out = tmp_path / "x.safetensors"
    # base in the original layout, tuned a diffusers folder: named alike by module
    report = extract_lora(ldm_base, tuned_folder, out, dim=TRUE_RANK + 1, clamp_quantile=1.0)
    assert not report.text_encoder and report.text_encoder_max_diff == 0.0
    assert {layer.name for layer in report.layers} == set(changes)
    assert report.energy == pytest.approx(1.0, abs=1e-9)
    assert report.error < 1e-5
    merged = tmp_path / "merged.safetensors"
    merge_into_model(ldm_base, [str(out)], merged)
    found = merged_changes(ldm_base, merged)
    assert relative_error(found, changes) < 1e-5
    untouched = [n for n in found if n not in changes]
    assert untouched and all(float(found[n].abs().max()) == 0.0 for n in untouched)
    with safe_open(str(out), "pt") as handle:
        meta = handle.metadata()
        name = next(iter(changes))
        assert float(handle.get_tensor(f"{name}.alpha")) == TRUE_RANK + 1  # alpha = rank
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "4.0"
    assert meta["ss_network_module"] == "networks.lora"
    assert "base.safetensors" in meta["ss_training_comment"]
    assert "tuned" in meta["tuilora_extract"]


def test_the_default_clamp_reports_the_error_it_makes(
    ldm_base: Path, tuned: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    tuned_folder, changes = tuned
    out = tmp_path / "clamped.safetensors"
    report = extract_lora(ldm_base, tuned_folder, out, dim=TRUE_RANK)  # clamp 0.99
    merged = tmp_path / "merged.safetensors"
    merge_into_model(ldm_base, [str(out)], merged)
    measured = relative_error(merged_changes(ldm_base, merged), changes)
    assert 0 < report.error == pytest.approx(measured, rel=1e-3)


def test_a_lower_rank_keeps_the_top_singular_values(
    ldm_base: Path, tuned: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    tuned_folder, changes = tuned
    report = extract_lora(
        ldm_base, tuned_folder, tmp_path / "r1.safetensors", dim=1, clamp_quantile=1.0
    )
    for layer in report.layers:
        values = torch.linalg.svdvals(changes[layer.name].double()) ** 2
        assert layer.energy == pytest.approx(float(values[0] / values.sum()), rel=1e-4)
        assert layer.error == pytest.approx((1 - layer.energy) ** 0.5, rel=1e-3, abs=1e-6)
    assert 0.3 < report.energy < 1.0


def test_changed_text_encoder_and_conv_layers_load_into_the_network(
    tiny_model: Path, tmp_path: Path
) -> None:
    from tuilora.engine.models import load_base_model
    from tuilora.engine.naming import naming_for
    from tuilora.engine.network_lora import LoRANetwork, RankPlan

    tuned_folder = tmp_path / "tuned-te"
    changes = add_low_rank(tiny_model, tuned_folder, rank=2, seed=5, scale=0.5, text=True)
    out = tmp_path / "c3.safetensors"
    report = extract_lora(tiny_model, tuned_folder, out, dim=2, conv_dim=3, clamp_quantile=1.0)
    assert report.text_encoder and report.text_encoder_max_diff > 0.01
    layers = {layer.name: layer for layer in report.layers}
    assert all(layers[name].error < 1e-4 for name in changes)
    base = load_base_model(str(tiny_model))
    naming = naming_for(base.family, base.unet, 1)
    network = LoRANetwork(base.unet, base.text_encoders, naming, RankPlan(2, 2, conv_rank=3))
    assert set(network.modules_by_name()) == set(layers)  # every sd-scripts C3Lier module
    weights = load_file(str(out))
    assert network.load_kohya_state_dict(weights) == []
    conv = weights["lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight"]
    assert conv.shape[0] == 3 and conv.shape[2:] == (3, 3)
    # unchanged ResNet convs come out as zero changes, not noise
    assert layers["lora_unet_down_blocks_0_resnets_0_conv1"].total == 0.0


def test_refuses_before_any_work(ldm_base: Path, tiny_sdxl_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "exists.safetensors"
    out.write_bytes(b"mine")
    with pytest.raises(UserError, match="already exists; pass --force"):
        extract_lora(ldm_base, ldm_base, out, dim=2)
    assert out.read_bytes() == b"mine"
    with pytest.raises(UserError, match="same architecture"):
        extract_lora(ldm_base, tiny_sdxl_model, tmp_path / "y.safetensors", dim=2)
    with pytest.raises(UserError, match=r"\.safetensors"):
        extract_lora(ldm_base, ldm_base, tmp_path / "y.pt", dim=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.safetensors"]
