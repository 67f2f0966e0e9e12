"""`tuilora tools inspect` on a LoRA that tuilora's own trainer wrote (the other files it
reads, sd-scripts- and LyCORIS-shaped, are tested in tests/lorafile and test_tools_merge).

The trainer writes the file as sd-scripts' train_network.py does (kohya module names,
per-module alpha, ``ss_*`` metadata, ``sshs_model_hash``), so inspect must read back the
run's own settings, the hash sd-scripts would compute, and that it fits the run's model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from tuilora.cli import main
from tuilora.lorafile.inspect_lora import inspect_lora
from tuilora.lorafile.modelkeys import open_model_keys


def test_inspect_reads_what_the_trainer_wrote(sampled_run: Path, tiny_model: Path) -> None:
    lora = sampled_run / "t.safetensors"
    with safe_open(str(lora), "np") as handle:
        meta = handle.metadata()
        modules = {key.split(".")[0] for key in handle.keys()}  # noqa: SIM118
    found = inspect_lora(lora, open_model_keys(tiny_model))
    assert found.network_type == "LoRA-LierLa"
    assert found.modules == len(modules)
    assert set(found.counts) == {"unet", "te"} and sum(found.counts.values()) == len(modules)
    assert (found.rank, found.alpha) == ("4", "2")  # network_dim 4, network_alpha 2.0
    assert found.family == "sd1"
    training = dict(found.training)
    assert training["optimizer"] == meta["ss_optimizer"] == "torch.optim.adamw.AdamW"
    assert training["seed"] == meta["ss_seed"] == "7"
    assert found.stored_model_hash == found.model_hash  # the trainer's sshs_model_hash
    assert found.fit is not None and found.fit.fits and found.fit.matched == len(modules)
    assert all(row.norm_max and row.norm_max > 0 for row in found.blocks)  # it trained


def test_inspect_says_a_trained_lora_does_not_fit_another_model(
    sampled_run: Path, tiny_sdxl_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lora = sampled_run / "t.safetensors"
    args = ["tools", "inspect", str(lora), "--model", str(tiny_sdxl_model), "--format", "json"]
    with pytest.raises(SystemExit) as code:
        main(args)
    assert code.value.code == 1
    data = json.loads(capsys.readouterr().out)
    assert data["family_name"] == "SD1.x" and data["fit"]["model_family"] == "sdxl"
    assert not data["fit"]["fits"] and data["fit"]["matched"] < data["fit"]["modules"]
