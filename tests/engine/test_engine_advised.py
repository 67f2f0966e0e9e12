"""The advisor's config for each network type trains as written (issue 6, item 6): the same
path as ``tuilora advise --network X --format toml`` and ``tuilora train``, pinned only to the
tiny model's scale as ``tuilora demo`` does."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors import safe_open

from tuilora.advisor.answers import Answers
from tuilora.advisor.export import render_text
from tuilora.advisor.recommend import recommend
from tuilora.engine.demo import DEMO_PINS
from tuilora.engine.train import run_training
from tuilora.runs.events import read_events

MODULES = {
    "lora": "networks.lora",
    "locon": "networks.lora",
    "loha": "lycoris.kohya",
    "lokr": "lycoris.kohya",
    "ia3": "lycoris.kohya",
}


def advised_config(
    tmp_path: Path, model: Path, data: Path, *, network: str, base: str = "sd15"
) -> Path:
    answers = Answers(
        subject="concept", simple=True, images=6, vram=24.0, network=network, base=base
    )
    pins = {
        **DEMO_PINS,
        "max_train_epochs": 1,
        "save_every_n_epochs": 1,
        "pretrained_model_name_or_path": str(model),
        "train_data_dir": str(data),
        "output_dir": str(tmp_path / "run"),
        "output_name": "advised",
    }
    rec = recommend(answers, overrides=pins)
    assert rec.errors == []
    path = tmp_path / "advised.toml"
    path.write_text(render_text(rec, "toml", f"advised for {network}"), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "network",
    [
        pytest.param("lora", marks=pytest.mark.slow),
        pytest.param("locon", marks=pytest.mark.slow),
        pytest.param("loha", marks=pytest.mark.slow),
        pytest.param("lokr", marks=pytest.mark.slow),
        pytest.param("ia3", marks=pytest.mark.slow),
    ],
)
def test_advised_config_trains_as_is(
    network: str, tiny_model: Path, shapes: Path, tmp_path: Path
) -> None:
    config = advised_config(tmp_path, tiny_model, shapes, network=network)
    text = config.read_text(encoding="utf-8")
    assert f'network_module = "{MODULES[network]}"' in text
    assert run_training(str(config), progress=False) == 0
    final = tmp_path / "run" / "advised.safetensors"
    with safe_open(str(final), framework="pt") as handle:
        meta = handle.metadata()
        keys = list(handle.keys())
    assert meta["ss_network_module"] == MODULES[network]
    if MODULES[network] == "lycoris.kohya":
        assert f'"algo": "{network}"' in meta["ss_network_args"]
    if network == "locon":
        assert any("_resnets_0_conv1." in key for key in keys)  # C3Lier's 3x3 convs
    events = read_events(tmp_path / "run" / "events.jsonl")
    assert events[-1]["status"] == "finished"


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_accelerator_state")
def test_advised_sdxl_config_trains_as_is(
    tiny_sdxl_model: Path, shapes: Path, tmp_path: Path
) -> None:
    config = advised_config(tmp_path, tiny_sdxl_model, shapes, network="lokr", base="sdxl")
    text = config.read_text(encoding="utf-8")
    assert 'mixed_precision = "bf16"' in text
    assert run_training(str(config), progress=False) == 0
    with safe_open(str(tmp_path / "run" / "advised.safetensors"), framework="pt") as handle:
        meta = handle.metadata()
        keys = list(handle.keys())  # safe_open is not a mapping
    names = {key.split(".")[0] for key in keys}
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert any(name.startswith("lora_unet_input_blocks_") for name in names)
    assert any(name.startswith("lora_te2_text_model_") for name in names)
