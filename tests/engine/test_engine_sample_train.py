"""Sampling during training: when sd-scripts samples, the images, the events, the modes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomli_w
from PIL import Image

from tuilora.config import to_toml_dict
from tuilora.engine.train import run_training
from tuilora.errors import UserError
from tuilora.runs.events import read_events

PROMPTS = (
    "# samples for the tiny model\n"
    "tuidemo, red circle --n blurry --w 64 --h 72 --s 3 --d 5\n"
    "blue square --s 2 --d 6 --ss euler_a\n"
)


def _train(make_config: Any, tmp_path: Path, **changes: Any) -> Path:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(PROMPTS, encoding="utf-8")
    out = tmp_path / "run"
    config = make_config(out, sample_prompts=str(prompts), **changes)
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    assert run_training(str(path), progress=False) == 0
    return out


def test_samples_every_epoch_with_sd_scripts_names_and_events(
    make_config: Any, tmp_path: Path
) -> None:
    out = _train(make_config, tmp_path, sample_every_n_epochs=1, sample_every_n_steps=1)
    events = read_events(out / "events.jsonl")
    samples = [e for e in events if e["type"] == "sample"]
    # With an epoch interval sd-scripts ignores sample_every_n_steps.
    assert [(e["epoch"], len(e["images"])) for e in samples] == [(1, 2), (2, 2)]
    assert samples[0]["seeds"] == [5, 6]
    ends = [e["step"] for e in events if e["type"] == "epoch_end"]
    assert [e["step"] for e in samples] == ends
    names = sorted(p.name for p in (out / "samples").iterdir())
    assert len(names) == 4
    assert names[0].startswith("t_e000001_00_") and names[0].endswith("_5.png")
    assert names[1].startswith("t_e000001_01_") and names[1].endswith("_6.png")
    with Image.open(out / "samples" / names[0]) as first:
        assert first.size == (64, 72)
    with Image.open(out / "samples" / names[1]) as second:
        assert second.size == (64, 64)  # no --w/--h: the training resolution
    # Samples come after the epoch's events, before the end.
    types = [e["type"] for e in events]
    assert types.index("sample") > types.index("epoch_end")
    assert types[-1] == "end" and events[-1]["status"] == "finished"


def test_samples_every_n_steps_without_an_epoch_interval(make_config: Any, tmp_path: Path) -> None:
    out = _train(make_config, tmp_path, max_train_epochs=1, sample_every_n_steps=2)
    samples = [e for e in read_events(out / "events.jsonl") if e["type"] == "sample"]
    steps = [e["step"] for e in samples]
    assert steps and all(step % 2 == 0 for step in steps)
    name = Path(samples[0]["images"][0]).name
    assert name.startswith(f"t_{steps[0]:06d}_00_")


def test_sampling_restores_modes_and_the_global_rng(tiny_model: Path, tmp_path: Path) -> None:
    import torch

    from tuilora.engine.models import load_base_model
    from tuilora.engine.naming import ModelNaming
    from tuilora.engine.network_lora import LoRANetwork, RankPlan
    from tuilora.engine.sample import TextSettings, generate, inference_mode, resolve
    from tuilora.runs.prompts import parse_prompt_line

    model = load_base_model(str(tiny_model))
    network = LoRANetwork(model.unet, model.text_encoders, ModelNaming(), RankPlan(4, 4.0))
    network.apply_to()
    model.unet.train()
    model.text_encoders[0].eval()
    torch.manual_seed(3)
    expected = torch.rand(1)
    torch.manual_seed(3)
    item = resolve(parse_prompt_line("tuidemo --s 2 --d 1"), default_size=(64, 64), sampler="ddim")
    images = []
    for _ in range(2):
        with inference_mode([model.unet, *model.text_encoders, network]):
            assert not model.unet.training and not network.training
            images.append(generate(model, item, TextSettings()))
    assert model.unet.training and not model.text_encoders[0].training and network.training
    assert torch.equal(torch.rand(1), expected)
    assert np.array_equal(np.asarray(images[0]), np.asarray(images[1]))  # the seed decides


def test_a_bad_prompt_file_stops_training_before_the_first_step(
    make_config: Any, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("ok --d 1\nbroken --w wide\n", encoding="utf-8")
    out = tmp_path / "run"
    config = make_config(out, sample_prompts=str(prompts), sample_every_n_epochs=1)
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    with pytest.raises(UserError, match=r"prompts\.txt:2: --w 'wide' must be a whole number"):
        run_training(str(path), progress=False)
    assert not [e for e in read_events(out / "events.jsonl") if e["type"] == "step"]


def test_an_interval_without_prompts_or_prompts_without_one_is_a_warning(
    make_config: Any, tmp_path: Path
) -> None:
    from tuilora.engine.sample import TrainingSampler
    from tuilora.runs.rundir import RunDir

    warnings: list[dict[str, Any]] = []

    def emit(type_: str, **fields: Any) -> None:
        warnings.append({"type": type_, **fields})

    def sampler(**changes: Any) -> TrainingSampler:
        config = make_config(tmp_path / "run", **changes)
        return TrainingSampler(
            config, RunDir(tmp_path, "t"), None, [], emit=emit, autocast=Any, main=True
        )

    prompts = tmp_path / "p.txt"
    prompts.write_text("x --g 3\n", encoding="utf-8")
    assert not sampler(sample_every_n_epochs=1).enabled
    assert not sampler(sample_prompts=str(prompts)).enabled
    assert sampler(sample_prompts=str(prompts), sample_every_n_steps=5).enabled
    assert [w["id"] for w in warnings] == [
        "no-sample-prompts",
        "no-sample-schedule",
        "sample-options-ignored",
    ]
