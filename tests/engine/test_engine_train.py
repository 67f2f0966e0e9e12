"""Training the tiny model end to end: files, metadata, diffusers loading, resume, NaN."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from safetensors import safe_open

from tuilora.config import to_toml_dict
from tuilora.engine import loss as losses
from tuilora.engine.loop import Trainer
from tuilora.engine.train import run_training
from tuilora.errors import UserError
from tuilora.runs.events import EventWriter, read_events
from tuilora.runs.rundir import RunDir


def write_config(config: Any, path: Path) -> Path:
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    return path


def step_losses(run: Path) -> list[float]:
    return [e["loss"] for e in read_events(run / "events.jsonl") if e["type"] == "step"]


def test_train_writes_sd_scripts_files_with_metadata(make_config: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = make_config(out, network_args=["conv_dim=4", "conv_alpha=1"])
    assert run_training(str(write_config(config, tmp_path / "c.toml")), progress=False) == 0
    final = out / "t.safetensors"
    assert final.is_file() and (out / "t-000001.safetensors").is_file()
    assert (out / "config.toml").is_file() and any((out / "tb").iterdir())
    with safe_open(str(final), framework="pt") as handle:
        keys = list(handle.keys())
        meta = handle.metadata()
        down = handle.get_tensor(
            "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"
        )
    assert str(down.dtype) == "torch.float16"
    assert any(k.startswith("lora_unet_down_blocks_0_resnets_0_conv1.") for k in keys)  # C3Lier
    assert all(k.endswith((".lora_down.weight", ".lora_up.weight", ".alpha")) for k in keys)
    ss = {k: v for k, v in meta.items() if k.startswith("ss_")}
    assert len(ss) >= 80
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2.0"
    assert meta["ss_optimizer"].startswith("torch.optim.adamw.AdamW")
    assert json.loads(meta["ss_tag_frequency"])["1_shapes"]["tuidemo"] == 6
    # sd-scripts records network_dropout in the args as "dropout" (its LyCORIS workaround)
    args = {"conv_dim": "4", "conv_alpha": "1", "dropout": None}
    assert json.loads(meta["ss_network_args"]) == args
    assert meta["ss_steps"] == str(len(step_losses(out)))
    assert (
        len(meta["sshs_model_hash"]) == 64
        and meta["modelspec.architecture"] == "stable-diffusion-v1/lora"
    )
    events = read_events(out / "events.jsonl")
    assert [e["type"] for e in events].count("start") == 1
    assert events[-1]["type"] == "end" and events[-1]["status"] == "finished"
    assert [e["epoch"] for e in events if e["type"] == "epoch_end"] == [1, 2]


def test_diffusers_loads_every_module_without_warnings(
    make_config: Any, tiny_model: Path, tmp_path: Path
) -> None:
    from tuilora.engine.verify import verify_lora

    out = tmp_path / "run"
    config = make_config(out, max_train_epochs=1)
    assert run_training(str(write_config(config, tmp_path / "c.toml")), progress=False) == 0
    report = verify_lora(tiny_model, out / "t.safetensors", prompt="tuidemo, red circle")
    assert report.warnings == []
    assert report.injected == {"unet": 48, "text_encoder": 12}
    assert report.file_modules == 60
    assert report.output_change > 0


def test_resume_continues_exactly(
    make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_a = make_config(
        tmp_path / "a",
        max_train_epochs=3,
        optimizer_type="Prodigy",
        learning_rate=1.0,
        unet_lr=1.0,
        text_encoder_lr=1.0,
        optimizer_args=["d_coef=2", "decouple=True"],
        noise_offset=0.05,
        min_snr_gamma=5.0,
        caption_dropout_rate=0.2,
    )
    assert run_training(str(write_config(config_a, tmp_path / "a.toml")), progress=False) == 0
    straight = step_losses(tmp_path / "a")

    original = Trainer._update

    def stop_halfway(self: Trainer, built: Any, group: Any, step: int, epoch: int) -> Any:
        loss = original(self, built, group, step, epoch)
        if step + 1 == len(straight) // 2:
            self.stop_requested = True  # what SIGINT does during that step
        return loss

    monkeypatch.setattr(Trainer, "_update", stop_halfway)
    config_b = config_a.replace(output_dir=str(tmp_path / "b"))
    assert run_training(str(write_config(config_b, tmp_path / "b.toml")), progress=False) == 0
    run_b = RunDir(tmp_path / "b", "t")
    assert read_events(run_b.events)[-1]["status"] == "stopped"
    assert run_b.step_snapshot(len(straight) // 2).is_file()
    monkeypatch.setattr(Trainer, "_update", original)
    assert run_training(None, resume=str(tmp_path / "b"), progress=False) == 0
    resumed = step_losses(tmp_path / "b")
    assert resumed == straight


def test_nan_loss_stops_as_diverged_and_keeps_snapshots(
    make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    config = make_config(out, max_train_epochs=3)
    real = losses.per_sample_loss
    calls = {"n": 0}

    def poisoned(prediction: Any, target: Any, *args: Any) -> Any:
        calls["n"] += 1
        value = real(prediction, target, *args)
        return value * float("nan") if calls["n"] > 4 else value

    monkeypatch.setattr(losses, "per_sample_loss", poisoned)
    assert run_training(str(write_config(config, tmp_path / "c.toml")), progress=False) == 1
    events = read_events(out / "events.jsonl")
    assert events[-1]["status"] == "diverged"
    assert "G-LR-UNET" in events[-1]["message"]
    assert (out / "t-000001.safetensors").is_file() and not (out / "t.safetensors").exists()


def test_existing_run_is_not_overwritten_without_force(make_config: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    path = write_config(make_config(out, max_train_epochs=1), tmp_path / "c.toml")
    assert run_training(str(path), progress=False) == 0
    with pytest.raises(UserError, match="--force"):
        run_training(str(path), progress=False)
    assert run_training(str(path), force=True, progress=False) == 0


def test_v_prediction_is_read_from_the_scheduler(tiny_v_model: Path) -> None:
    from tuilora.engine.models import load_base_model

    model = load_base_model(str(tiny_v_model))
    assert model.v_prediction and model.vae_scale == 2 and model.family == "sd1"


def test_pickle_checkpoints_need_allow_pickle(tmp_path: Path) -> None:
    from tuilora.engine.models import load_base_model

    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"not really")
    with pytest.raises(UserError, match="--allow-pickle"):
        load_base_model(str(ckpt))


def test_min_snr_weights_follow_both_formulas() -> None:
    import torch
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    t = torch.tensor([10, 500, 990])
    snr = losses.snr(scheduler, t)
    eps = losses.min_snr_weights(scheduler, t, 5.0, v_prediction=False)
    v = losses.min_snr_weights(scheduler, t, 5.0, v_prediction=True)
    assert torch.allclose(eps, torch.clamp(snr, max=5.0) / snr)
    assert torch.allclose(v, torch.clamp(snr, max=5.0) / (snr + 1))


def test_events_writer_is_used_by_trainer(make_config: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = make_config(out, max_train_epochs=1, scale_weight_norms=1.0)
    run = RunDir(out, "t")
    out.mkdir()
    with EventWriter(run.events) as events:
        status = Trainer(config, run, events, progress=False).run()
    assert status == "finished"
    steps = [e for e in read_events(run.events) if e["type"] == "step"]
    assert "keys_scaled" in steps[0] and steps[0]["lr"]["unet"] == pytest.approx(1e-3)


def test_dataset_errors_stop_training_unless_forced(
    make_config: Any, shapes: Path, tmp_path: Path
) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(shapes, data)
    (data / "1_shapes" / "broken.png").write_bytes(b"")  # 0 bytes: sd-scripts would crash
    config = make_config(tmp_path / "run", max_train_epochs=1, train_data_dir=str(data))
    path = write_config(config, tmp_path / "c.toml")
    with pytest.raises(UserError, match="dataset has 1 error"):
        run_training(str(path), progress=False)
    assert not (tmp_path / "run" / "events.jsonl").exists()
    assert run_training(str(path), force=True, progress=False) == 0  # the broken file is skipped
