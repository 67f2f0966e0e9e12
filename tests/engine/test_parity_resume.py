"""``tuilora train --resume`` continues exactly (docs/engine.md) with every random choice a
step makes: network, rank and module dropout, caption and tag dropout, tag shuffling, flips,
random crops, colour augmentation and the noise options."""

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


def losses_of(run: Path) -> list[float]:
    return [e["loss"] for e in read_events(run / "events.jsonl") if e["type"] == "step"]


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

    original = Trainer._report_step

    def stop_at_4(self: Trainer, built: Any, counters: Any, *args: Any) -> None:
        original(self, built, counters, *args)
        if counters.step == 4:
            self.stop_requested = True  # what SIGINT does

    monkeypatch.setattr(Trainer, "_report_step", stop_at_4)
    stopped = config.replace(output_dir=str(tmp_path / "resumed"))
    path = tmp_path / "resumed.toml"
    path.write_text(tomli_w.dumps(to_toml_dict(stopped)), encoding="utf-8")
    assert run_training(str(path), progress=False) == 0
    monkeypatch.setattr(Trainer, "_report_step", original)
    assert run_training(None, resume=str(tmp_path / "resumed"), progress=False) == 0
    resumed = losses_of(tmp_path / "resumed")
    assert resumed == straight  # equal on the CPU, step by step
