"""`tuilora tools merge`: a LoRA baked into a model behaves as the model with the LoRA
applied; LoRA + LoRA keeps the sum of their changes.

sd-scripts' merge_lora.py is the reference for merging into a model (W += ratio · up·down ·
alpha/rank per module) and svd_merge_lora.py for the SVD re-rank (quantile clamp, alpha =
the new rank); LyCORIS' own get_diff_weight is the reference for LoHa, LoKr and (IA)^3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from tuilora.engine.ldm_convert import save_ldm_checkpoint
from tuilora.engine.save import save_lora
from tuilora.engine.tools.merge_loras import merge_loras
from tuilora.engine.tools.merge_model import merge_into_model
from tuilora.errors import UserError
from tuilora.lorafile.deltas import delta
from tuilora.lorafile.inspect_lora import inspect_lora
from tuilora.lorafile.lora import read_lora
from tuilora.lorafile.modelkeys import open_model_keys
from tuilora.lorafile.safetensors_io import SafetensorsFile


@pytest.fixture(scope="module")
def trained_lora(sampled_run: Path) -> Path:
    return sampled_run / "t.safetensors"


def _models(folder: Path) -> Any:
    from tuilora.engine.models import load_base_model

    return load_base_model(str(folder))


def _outputs(model: Any, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The text encoder's and the UNet's outputs on fixed inputs."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 200, (1, 12), generator=generator)
    unet = model.unet
    latents = torch.randn(1, unet.config.in_channels, 16, 16, generator=generator)
    with torch.no_grad():
        hidden = model.text_encoders[0](ids)[0]
        noise = unet(latents, torch.tensor([500]), encoder_hidden_states=hidden).sample
    return hidden, noise


def test_merged_model_equals_the_base_with_the_lora_applied(
    tiny_model: Path, trained_lora: Path, tmp_path: Path
) -> None:
    from tuilora.engine.naming import naming_for
    from tuilora.engine.network_lora import LoRANetwork, RankPlan

    ratio = 0.7
    merged = tmp_path / "merged"
    report = merge_into_model(tiny_model, [f"{trained_lora}:{ratio}"], merged)
    assert report.layout == "diffusers" and report.weights_changed == len(
        read_lora(trained_lora).modules
    )
    base = _models(tiny_model)
    network = LoRANetwork(
        base.unet, base.text_encoders, naming_for("sd1", base.unet, 1), RankPlan(4, 2.0)
    )
    assert network.load_kohya_state_dict(load_file(str(trained_lora))) == []
    network.apply_to()
    network.set_multiplier(ratio)
    applied = _outputs(base)
    merged_model = _models(merged)
    baked = _outputs(merged_model)
    for found, wanted in zip(baked, applied, strict=True):
        assert torch.allclose(found, wanted, atol=1e-4, rtol=1e-4)
    network.set_multiplier(0.0)
    plain = _outputs(base)
    assert not torch.allclose(plain[1], applied[1], atol=1e-4)  # the LoRA does something


def test_original_layout_in_original_layout_out(
    tiny_model: Path, trained_lora: Path, tmp_path: Path
) -> None:
    ldm = save_ldm_checkpoint(tiny_model, tmp_path / "base.safetensors")
    merged_file = tmp_path / "merged.safetensors"
    merge_into_model(ldm, [f"{trained_lora}:0.5"], merged_file)
    merged_folder = tmp_path / "merged-folder"
    merge_into_model(tiny_model, [f"{trained_lora}:0.5"], merged_folder)
    before, after = load_file(str(ldm)), load_file(str(merged_file))
    assert list(after) == list(before) and all(after[k].dtype == before[k].dtype for k in before)
    targets_file = open_model_keys(merged_file).targets()
    targets_folder = open_model_keys(merged_folder).targets()
    changed = set(read_lora(trained_lora).modules)
    for name, target in targets_file.items():
        with safe_open(str(targets_folder[name].slot.file), "pt") as handle:
            wanted = handle.get_tensor(targets_folder[name].slot.key)
        assert torch.allclose(after[target.slot.key].reshape(wanted.shape), wanted, atol=1e-6)
        if name not in changed:
            assert torch.equal(after[target.slot.key], before[target.slot.key])
    untouched = set(before) - {t.slot.key for t in targets_file.values()}
    assert all(torch.equal(after[k], before[k]) for k in untouched)
    with safe_open(str(merged_file), "pt") as handle:
        recipe = json.loads(handle.metadata()["tuilora_merged_loras"])
    assert recipe == [{"file": "t.safetensors", "ratio": 0.5}]


def _random_lycoris(model: Any, algo: str) -> Any:
    """A LyCORIS network on ``model`` with random weights (its own init leaves ΔW = 0)."""
    from tuilora.engine.naming import SD1_NAMING
    from tuilora.engine.network_lycoris import LycorisAdapter

    args = {"algo": algo} if algo == "ia3" else {"algo": algo, "conv_dim": "4", "conv_alpha": "2"}
    adapter = LycorisAdapter(
        model.unet, model.text_encoders, SD1_NAMING, rank=4, alpha=2, args=args
    )
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in adapter.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return adapter


@pytest.mark.parametrize("algo", ["loha", pytest.param("lokr", marks=pytest.mark.slow), "ia3"])
def test_lycoris_merged_equals_lycoris_applied(tiny_model: Path, tmp_path: Path, algo: str) -> None:
    """LyCORIS' forward (W + ΔW·multiplier, ΔW = get_weight; (IA)^3 scales the output) is
    the reference; its default preset also reaches conv_in, conv_out and the time embedding."""
    pytest.importorskip("lycoris")
    base = _models(tiny_model)
    adapter = _random_lycoris(base, algo)
    path = tmp_path / f"{algo}.safetensors"
    save_lora(path, adapter.kohya_state_dict(), {"ss_network_module": "lycoris.kohya"}, "float")
    lora = read_lora(path)
    assert "lora_unet_conv_in" in lora.modules
    inspected = inspect_lora(path, open_model_keys(tiny_model))  # a file LyCORIS wrote
    assert inspected.network_type == {"loha": "LoHa", "lokr": "LoKr", "ia3": "(IA)^3"}[algo]
    assert inspected.modules == len(adapter.modules_by_name())
    assert inspected.fit is not None and inspected.fit.fits
    if algo != "ia3":
        with SafetensorsFile(path) as file:
            for name, module in adapter.modules_by_name().items():
                wanted = module.get_weight(module.shape).detach()
                mine = torch.from_numpy(delta(file, lora.modules[name]))
                assert torch.allclose(mine, wanted.reshape(mine.shape), atol=1e-5), name
    merged = tmp_path / "merged"
    merge_into_model(tiny_model, [f"{path}:0.6"], merged)
    adapter.apply_to()
    adapter.set_multiplier(0.6)
    applied = _outputs(base)
    baked = _outputs(_models(merged))
    for found, wanted in zip(baked, applied, strict=True):
        assert torch.allclose(found, wanted, atol=1e-4, rtol=1e-4)


def _changes_by_name(base: Path, merged: Path) -> dict[str, torch.Tensor]:
    """merged − base of every weight a module can change (its rows of a fused q/k/v)."""
    before = open_model_keys(base).targets()
    after = open_model_keys(merged).targets()
    out = {}
    for name, target in before.items():
        slot = after[name].slot
        with safe_open(str(target.slot.file), "pt") as old, safe_open(str(slot.file), "pt") as new:
            change = new.get_tensor(slot.key) - old.get_tensor(target.slot.key)
        if slot.rows:
            change = change[slot.rows[0] : slot.rows[1]]
        out[name] = change.reshape(change.shape[0], -1)
    return out


def test_sdxl_original_layout_with_fused_text_encoder(
    tiny_sdxl_model: Path, tmp_path: Path
) -> None:
    """SDXL's second text encoder is OpenCLIP in the original layout: q, k, v are thirds of
    one in_proj_weight. Merging into that file equals merging into the diffusers folder."""
    from tuilora.engine.models import load_base_model
    from tuilora.engine.naming import naming_for
    from tuilora.engine.network_lora import LoRANetwork, RankPlan

    folder = tiny_sdxl_model
    ldm = save_ldm_checkpoint(folder, tmp_path / "xl.safetensors")
    base = load_base_model(str(folder))
    network = LoRANetwork(
        base.unet,
        base.text_encoders,
        naming_for("sdxl", base.unet, 2),
        RankPlan(2, 1, conv_rank=2, is_sdxl=True),
    )
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for param in network.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    lora = tmp_path / "xl-lora.safetensors"
    save_lora(lora, network.kohya_state_dict(), {}, "float")
    targets = open_model_keys(ldm).targets()
    in_network = {name for name, target in targets.items() if target.in_network(conv=True)}
    assert in_network == set(network.modules_by_name())
    merge_into_model(ldm, [str(lora)], tmp_path / "m.safetensors")
    merge_into_model(folder, [str(lora)], tmp_path / "m-folder")
    from_file = _changes_by_name(ldm, tmp_path / "m.safetensors")
    from_folder = _changes_by_name(folder, tmp_path / "m-folder")
    assert in_network <= set(from_file) <= set(from_folder)
    for name in from_file:
        assert torch.allclose(from_file[name], from_folder[name], atol=1e-6), name
    assert float(from_file["lora_te2_text_model_encoder_layers_1_self_attn_k_proj"].abs().max()) > 0


def test_lora_plus_lora_concatenates_exactly_or_reranks(
    trained_lora: Path, tiny_model: Path, tmp_path: Path
) -> None:
    second, _ = _plain_random_lora(tiny_model, tmp_path, rank=3, seed=9)
    concat = tmp_path / "concat.safetensors"
    report = merge_loras([f"{trained_lora}:0.8", f"{second}:-0.5"], concat)
    assert report.mode == "concat" and {m.rank for m in report.modules} == {7}
    first_lora, second_lora, joined = read_lora(trained_lora), read_lora(second), read_lora(concat)
    with (
        SafetensorsFile(trained_lora) as a,
        SafetensorsFile(second) as b,
        SafetensorsFile(concat) as c,
    ):
        for name, module in joined.modules.items():
            wanted = 0.8 * delta(a, first_lora.modules[name]) - 0.5 * delta(
                b, second_lora.modules[name]
            )
            assert torch.allclose(
                torch.from_numpy(delta(c, module)), torch.from_numpy(wanted), atol=1e-5
            )
    svd = tmp_path / "svd.safetensors"
    full = merge_loras([f"{trained_lora}:0.8", f"{second}:-0.5"], svd, dim=7, clamp_quantile=1.0)
    assert full.energy == pytest.approx(1.0, abs=1e-6)
    with SafetensorsFile(concat) as c, SafetensorsFile(svd) as s:
        for name, module in read_lora(svd).modules.items():
            assert torch.allclose(
                torch.from_numpy(delta(s, module)),
                torch.from_numpy(delta(c, joined.modules[name])),
                atol=1e-5,
            )
            assert module.alpha == module.rank  # sd-scripts' svd_merge: alpha = new rank
    low = merge_loras(
        [f"{trained_lora}:0.8", f"{second}:-0.5"], tmp_path / "low.safetensors", dim=2
    )
    assert 0.2 < low.energy < 1.0
    with safe_open(str(tmp_path / "low.safetensors"), "pt") as handle:
        meta = handle.metadata()
    assert meta["ss_network_dim"] == "2" and "svd" in meta["ss_training_comment"]


def _plain_random_lora(
    tiny_model: Path, tmp_path: Path, *, rank: int, seed: int
) -> tuple[Path, Any]:
    from tuilora.engine.naming import SD1_NAMING
    from tuilora.engine.network_lora import LoRANetwork, RankPlan

    base = _models(tiny_model)
    network = LoRANetwork(base.unet, base.text_encoders, SD1_NAMING, RankPlan(rank, 1.0))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in network.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    path = tmp_path / f"random{rank}.safetensors"
    save_lora(path, network.kohya_state_dict(), {"ss_base_model_version": "sd_v1"}, "float")
    return path, network


def test_a_lora_for_another_model_is_refused(
    tiny_model: Path, tiny_sdxl_model: Path, trained_lora: Path, tmp_path: Path
) -> None:
    out = tmp_path / "m"
    with pytest.raises(UserError, match="no weight in the SDXL base"):
        merge_into_model(tiny_sdxl_model, [str(trained_lora)], out)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(UserError, match="ratio after ':' must be a number"):
        merge_into_model(tiny_model, [f"{trained_lora}:lots"], out)


class _SideEffect:
    """Unpickling it creates ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_ckpt_needs_allow_pickle_and_gives_safetensors(
    tiny_model: Path, trained_lora: Path, tmp_path: Path
) -> None:
    state = load_file(str(save_ldm_checkpoint(tiny_model, tmp_path / "base.safetensors")))
    marker = tmp_path / "PICKLE_RAN"
    trap = tmp_path / "trap.ckpt"
    torch.save({"state_dict": state, "trap": _SideEffect(marker)}, str(trap))
    out = tmp_path / "out.safetensors"
    with pytest.raises(UserError, match="--allow-pickle"):
        merge_into_model(trap, [str(trained_lora)], out)
    # allowed, a pickle is still read weights-only (as the engine's loader): nothing runs
    with pytest.raises(UserError, match="weights-only"):
        merge_into_model(trap, [str(trained_lora)], out, allow_pickle=True)
    assert not marker.exists() and not out.exists()
    plain = tmp_path / "base.ckpt"
    torch.save({"state_dict": state}, str(plain))
    merge_into_model(plain, [str(trained_lora)], out, allow_pickle=True)
    merged = load_file(str(out))
    assert set(merged) == set(state)
    assert any(not torch.equal(merged[k], state[k]) for k in state)
