"""LyCORIS through lycoris-lora: every algorithm trains on the tiny model, and LyCORIS' own
loader reads the file back to the same weight deltas."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import torch
from safetensors import safe_open

from tuilora.config import to_toml_dict
from tuilora.engine.loop import Trainer
from tuilora.engine.train import run_training
from tuilora.errors import UserError

pytest.importorskip("lycoris")

ALGO_KEYS = {
    "locon": "lora_down.weight",
    "loha": "hada_w1_a",
    "lokr": "lokr_w1",
    "ia3": "weight",
}


def write_config(config: Any, path: Path) -> Path:
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    return path


def lycoris_args(algo: str) -> list[str]:
    return [f"algo={algo}"] if algo == "ia3" else [f"algo={algo}", "conv_dim=4", "conv_alpha=2"]


@pytest.mark.parametrize(
    "algo",
    [
        "loha",
        pytest.param("locon", marks=pytest.mark.slow),
        pytest.param("lokr", marks=pytest.mark.slow),
        pytest.param("ia3", marks=pytest.mark.slow),
    ],
)
def test_each_algorithm_trains_and_lycoris_reloads_the_same_delta(
    algo: str,
    make_config: Any,
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tuilora.engine.models import load_base_model
    from tuilora.engine.naming import SD1_NAMING
    from tuilora.engine.network_lycoris import LycorisAdapter, reload_with_lycoris

    built: list[Any] = []
    real_build = Trainer.build

    def keep(self: Trainer) -> Any:
        built.append(real_build(self))
        return built[-1]

    monkeypatch.setattr(Trainer, "build", keep)
    out = tmp_path / "run"
    config = make_config(
        out,
        network_module="lycoris.kohya",
        network_args=lycoris_args(algo),
        max_train_epochs=1,
        save_every_n_epochs=None,
        save_precision="float",
        learning_rate=1e-2,
        unet_lr=1e-2,
        text_encoder_lr=1e-2,
    )
    assert run_training(str(write_config(config, tmp_path / "c.toml")), progress=False) == 0
    final = out / "t.safetensors"
    with safe_open(str(final), framework="pt") as handle:
        keys = list(handle.keys())
        meta = handle.metadata()
    assert any(k.endswith("." + ALGO_KEYS[algo]) for k in keys)
    assert any(k.startswith("lora_te_text_model_encoder_layers_0_") for k in keys)
    assert meta["ss_network_module"] == "lycoris.kohya"
    assert f'"algo": "{algo}"' in meta["ss_network_args"]

    trained = {
        name: module.get_diff_weight()[0].detach()
        for name, module in built[0].network.modules_by_name().items()
    }
    assert any(float(delta.abs().max()) > 0 for delta in trained.values())
    fresh = load_base_model(str(tiny_model))
    if algo != "ia3":
        # lycoris.kohya.create_network_from_weights, over a freshly loaded base model
        reloaded = reload_with_lycoris(final, fresh.unet, fresh.text_encoders, SD1_NAMING)
    else:
        # lycoris-lora 4.1.3's create_network_from_weights cannot rebuild (IA)^3 modules
        # (IA3Module.make_module_from_state_dict takes one tensor, the file holds two), so
        # the same network is made again and LyCORIS' own load_weights reads the file.
        args = {"algo": "ia3"}
        adapter = LycorisAdapter(
            fresh.unet, fresh.text_encoders, SD1_NAMING, rank=4, alpha=2, args=args
        )
        reloaded = adapter.network
        assert reloaded.load_weights(str(final)) == {}
    modules = reloaded.unet_loras + reloaded.text_encoder_loras
    assert {m.lora_name for m in modules} == set(trained)
    for module in modules:
        delta = module.get_diff_weight()[0]
        assert torch.allclose(delta, trained[module.lora_name], atol=1e-6), module.lora_name


def test_lycoris_never_prints_and_bad_args_are_user_errors(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tuilora.engine.models import load_base_model
    from tuilora.engine.naming import SD1_NAMING
    from tuilora.engine.network_lycoris import LycorisAdapter

    model = load_base_model(str(tiny_model))
    network = LycorisAdapter(
        model.unet, model.text_encoders, SD1_NAMING, rank=4, alpha=1, args={"algo": "loha"}
    )
    LycorisAdapter(model.unet, [], SD1_NAMING, rank=4, alpha=1, args={"algo": "ia3"})  # warns
    counts = network.counts()
    assert counts.unet > 0 and counts.text_encoders == (12,)
    assert capsys.readouterr() == ("", "")
    handlers = logging.getLogger("LyCORIS").handlers
    assert all(isinstance(h, logging.NullHandler) for h in handlers)
    with pytest.raises(UserError, match="algo=lohaa"):
        LycorisAdapter(model.unet, [], SD1_NAMING, rank=4, alpha=1, args={"algo": "lohaa"})
    with pytest.raises(UserError, match="no module"):
        LycorisAdapter(
            model.unet,
            [],
            SD1_NAMING,
            rank=4,
            alpha=1,
            args={"algo": "loha", "preset": "attn-only"},
            train_unet=False,
        )


def test_presets_do_not_leak_between_networks(tiny_model: Path) -> None:
    from tuilora.engine.models import load_base_model
    from tuilora.engine.naming import SD1_NAMING
    from tuilora.engine.network_lycoris import LycorisAdapter

    model = load_base_model(str(tiny_model))
    full = LycorisAdapter(model.unet, [], SD1_NAMING, rank=4, alpha=1, args={"algo": "lokr"})
    LycorisAdapter(
        model.unet, [], SD1_NAMING, rank=4, alpha=1, args={"algo": "lokr", "preset": "attn-only"}
    )
    again = LycorisAdapter(model.unet, [], SD1_NAMING, rank=4, alpha=1, args={"algo": "lokr"})
    assert set(again.modules_by_name()) == set(full.modules_by_name())
    assert "lora_unet_conv_in" in full.modules_by_name()


def test_lycoris_on_sdxl_uses_sd_scripts_names(tiny_sdxl_model: Path) -> None:
    from tuilora.engine.models import load_base_model
    from tuilora.engine.naming import naming_for
    from tuilora.engine.network_lycoris import LycorisAdapter

    model = load_base_model(str(tiny_sdxl_model))
    naming = naming_for("sdxl", model.unet, 2)
    network = LycorisAdapter(
        model.unet, model.text_encoders, naming, rank=4, alpha=1, args={"algo": "loha"}
    )
    names = {key.split(".")[0] for key in network.kohya_state_dict()}
    assert "lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q" in names
    assert "lora_unet_input_blocks_2_0_op" in names and "lora_unet_time_embed_0" in names
    assert "lora_te1_text_model_encoder_layers_1_mlp_fc2" in names
    assert "lora_te2_text_model_encoder_layers_1_self_attn_k_proj" in names
    assert not any("down_blocks" in n or "up_blocks" in n for n in names)


def test_unknown_network_module_is_a_user_error(make_config: Any, tmp_path: Path) -> None:
    # refused by the validator, before anything loads (it accepts what the engine runs)
    with pytest.raises(UserError, match="network_module networks.dylora"):
        make_config(tmp_path / "run", network_module="networks.dylora")
