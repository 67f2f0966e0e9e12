"""``tuilora train --resume`` continues exactly (docs/engine.md) with every random choice a
step makes: network, rank and module dropout, caption and tag dropout, tag shuffling, flips,
random crops, colour augmentation and the noise options; and with each optimizer family's
state (AdamW's moments, Prodigy's and D-Adaptation's d estimates, AdaFactor's factored
moments and its own relative-step schedule) and schedulers with warmup and restarts: the
per-step losses, learning rates and lr x d after the resume equal the straight run's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w

pytest.importorskip("torch")

from tuilora.config import to_toml_dict  # noqa: E402
from tuilora.engine.loop import Trainer  # noqa: E402
from tuilora.engine.train import run_training  # noqa: E402
from tuilora.runs.events import read_events  # noqa: E402


def stop_during_step(monkeypatch: pytest.MonkeyPatch, target: int) -> Any:
    """Raise the stop flag during step ``target``'s update (what SIGINT does then); returns
    the original ``Trainer._update`` to put back for the resume."""
    original = Trainer._update

    def stopping(self: Trainer, built: Any, group: Any, step: int, epoch: int) -> Any:
        loss = original(self, built, group, step, epoch)
        if step + 1 == target:
            self.stop_requested = True
        return loss

    monkeypatch.setattr(Trainer, "_update", stopping)
    return original


def losses_of(run: Path) -> list[float]:
    return [e["loss"] for e in read_events(run / "events.jsonl") if e["type"] == "step"]


def steps_of(run: Path) -> list[tuple[int, float, Any, Any]]:
    """(step, loss, lr per group, lr x d per group) of every step, resumed sessions' last."""
    steps: dict[int, tuple[int, float, Any, Any]] = {}
    for event in read_events(run / "events.jsonl"):
        if event["type"] == "step":
            steps[event["step"]] = (event["step"], event["loss"], event["lr"], event.get("lr_d"))
    return [steps[step] for step in sorted(steps)]


def write(config: Any, path: Path) -> str:
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    return str(path)


def test_resume_is_exact_with_every_dropout_and_augmentation(
    make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_config(
        tmp_path / "straight",
        max_train_epochs=3,  # 3 steps per epoch: stopped at step 4, inside epoch 2
        cache_latents=False,  # colour and crop augmentations read the image every step
        color_aug=True,
        random_crop=True,
        flip_aug=True,
        network_dropout=0.1,
        network_args=["rank_dropout=0.25", "module_dropout=0.25"],
        caption_dropout_rate=0.3,
        caption_tag_dropout_rate=0.3,
        gradient_checkpointing=True,
        noise_offset=0.05,
        noise_offset_random_strength=True,
        multires_noise_iterations=3,
        ip_noise_gamma=0.05,
        save_every_n_epochs=None,
    )
    path = tmp_path / "straight.toml"
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    assert run_training(str(path), progress=False) == 0
    straight = losses_of(tmp_path / "straight")
    assert len(straight) == 9

    original = stop_during_step(monkeypatch, 4)
    stopped = config.replace(output_dir=str(tmp_path / "resumed"))
    path = tmp_path / "resumed.toml"
    path.write_text(tomli_w.dumps(to_toml_dict(stopped)), encoding="utf-8")
    assert run_training(str(path), progress=False) == 0
    monkeypatch.setattr(Trainer, "_update", original)
    assert run_training(None, resume=str(tmp_path / "resumed"), progress=False) == 0
    resumed = losses_of(tmp_path / "resumed")
    assert resumed == straight  # equal on the CPU, step by step


#: Optimizer x scheduler: 3 steps an epoch for 3 epochs, warmup 2 steps, stopped after step 4
#: (inside epoch 2; the resumed part crosses the restart of cosine_with_restarts).
OPTIMIZERS_AND_SCHEDULERS = {
    "AdamW-cosine_with_restarts": {
        "optimizer_type": "AdamW",
        "lr_scheduler": "cosine_with_restarts",
        "lr_scheduler_num_cycles": 2,
    },
    "Prodigy-cosine": {
        "optimizer_type": "Prodigy",
        "learning_rate": 1.0,
        "unet_lr": 1.0,
        "text_encoder_lr": 1.0,
        "optimizer_args": ["d_coef=2", "decouple=True", "weight_decay=0.01"],
        "lr_scheduler": "cosine",
    },
    "DAdaptAdam-constant_with_warmup": {
        "optimizer_type": "DAdaptAdam",
        "learning_rate": 1.0,
        "unet_lr": 1.0,
        "text_encoder_lr": 1.0,  # DAdaptAdam refuses different lrs per group (not 0)
        "optimizer_args": ["decouple=True", "weight_decay=0.01"],
        "lr_scheduler": "constant_with_warmup",
    },
    "AdaFactor-cosine_with_restarts": {
        "optimizer_type": "AdaFactor",
        "optimizer_args": ["scale_parameter=False", "relative_step=False", "warmup_init=False"],
        "lr_scheduler": "cosine_with_restarts",
        "lr_scheduler_num_cycles": 2,
    },
    "AdaFactor-relative_step": {  # its own schedule (warmup_init: a warmup of its own)
        "optimizer_type": "AdaFactor",
        "optimizer_args": ["relative_step=True", "warmup_init=True"],
        "lr_scheduler": "adafactor",
        "lr_warmup_steps": 0,
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(OPTIMIZERS_AND_SCHEDULERS))
def test_resume_is_exact_for_each_optimizer_and_scheduler(
    case: str, make_config: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    changes: dict[str, Any] = {
        "max_train_epochs": 3,
        "lr_warmup_steps": 2,
        "save_every_n_epochs": None,
        **OPTIMIZERS_AND_SCHEDULERS[case],
    }
    config = make_config(tmp_path / "straight", **changes)
    assert run_training(write(config, tmp_path / "straight.toml"), progress=False) == 0
    straight = steps_of(tmp_path / "straight")
    assert len(straight) == 9
    lrs = [lr["unet"] for _, _, lr, _ in straight]
    assert len(set(lrs)) > 1 or case == "AdaFactor-relative_step"  # the schedule moves

    original = stop_during_step(monkeypatch, 4)
    stopped = config.replace(output_dir=str(tmp_path / "resumed"))
    assert run_training(write(stopped, tmp_path / "resumed.toml"), progress=False) == 0
    monkeypatch.setattr(Trainer, "_update", original)
    assert run_training(None, resume=str(tmp_path / "resumed"), progress=False) == 0
    assert steps_of(tmp_path / "resumed") == straight  # losses, lrs and lr x d, step by step
