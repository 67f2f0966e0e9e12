"""What the monitor reads from a run folder: the view, incremental tails, the run's state."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tuilora.runs.events import read_events
from tuilora.screens import monitor_text as mt
from tuilora.screens.monitor_data import RunTail, RunView

FIXTURES = Path(__file__).parents[1] / "fixtures" / "events"
DEAD_PID = 2**22 + 12345  # above pid_max on Linux: never a live process


def run_from(fixture: str, root: Path, pid: int | None = None) -> Path:
    run = root / fixture
    run.mkdir(parents=True)
    shutil.copy(FIXTURES / f"{fixture}.jsonl", run / "events.jsonl")
    if pid is not None:
        (run / "pid").write_text(str(pid), encoding="utf-8")
    return run


def test_a_finished_run(tmp_path: Path) -> None:
    tail = RunTail(run_from("healthy", tmp_path))
    assert tail.poll()
    view = tail.view
    assert (view.step, view.total_steps, view.epoch, view.epochs) == (600, 600, 10, 10)
    assert len(view.loss.xs) == 600 and view.loss_ema.ys[-1] > 0
    assert set(view.lr) == {"unet", "textencoder"} and not view.adaptive
    assert [step for step, _ in view.epoch_ends] == [60 * k for k in range(1, 11)]
    assert view.epoch_marks()[0] == (60, "e2")
    assert tail.state() == "finished"
    assert not tail.poll()  # nothing new: no change


def test_adaptive_optimizers_chart_lr_times_d(tmp_path: Path) -> None:
    tail = RunTail(run_from("prodigy-healthy", tmp_path))
    tail.poll()
    view = tail.view
    assert view.adaptive and view.optimizer == "Prodigy"
    steps = [e for e in read_events(FIXTURES / "prodigy-healthy.jsonl") if e["type"] == "step"]
    assert view.lr["unet"].ys[-1] == pytest.approx(steps[-1]["lr_d"]["unet"])
    assert "lr × d" in str(mt.lr_legend(view)) and "G-OPT-D" in str(mt.lr_legend(view))


def test_a_diverged_run_counts_the_nan_and_keeps_the_error(tmp_path: Path) -> None:
    tail = RunTail(run_from("nan", tmp_path))
    tail.poll()
    view = tail.view
    assert view.nan_steps == 1 and view.errors == 1
    assert tail.state() == "diverged"
    text = str(mt.messages_lines(view, 3))
    assert "error: loss became NaN at step 157" in text and "end: training stopped" in text
    assert "NaN at 1 step" in str(mt.loss_legend(view, False))


def test_info_is_counted_apart_from_warnings(tmp_path: Path) -> None:
    """An info ("training in fp32 on the CPU") needs no action: counted, not as a warning."""
    run = tmp_path / "run"
    run.mkdir()
    lines = [
        {"t": 1.0, "type": "info", "message": "training in fp32 on the CPU", "id": "cpu-precision"},
        {"t": 2.0, "type": "warning", "message": "few images"},
    ]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    tail = RunTail(run)
    tail.poll()
    assert (tail.view.infos, tail.view.warnings, tail.view.errors) == (1, 1, 0)
    assert str(mt.messages_lines(tail.view, 4)).startswith("info 1, warnings 1, errors 0")


def test_a_torn_last_line_is_read_once_it_is_complete(
    tmp_path: Path, stand_in_trainer: Callable[..., Any]
) -> None:
    run = run_from("torn", tmp_path)
    stand_in_trainer(run)
    tail = RunTail(run)
    tail.poll()
    assert tail.view.step == 360 and tail.state() == "running"
    with (run / "events.jsonl").open("a", encoding="utf-8") as handle:
        handle.write('"step": 361, "epoch": 7, "loss": 0.1, "loss_ema": 0.1, "lr": {}}\n')
    assert tail.poll()
    assert tail.view.step == 361


def test_waiting_live_crashed_and_a_replaced_file(
    tmp_path: Path, stand_in_trainer: Callable[..., Any]
) -> None:
    run = tmp_path / "fresh"
    run.mkdir()
    tail = RunTail(run)
    assert not tail.poll() and tail.state() == "waiting"
    trainer = stand_in_trainer(run, "--no-end")
    assert tail.state() == "loading"  # started, no event yet
    lines = (FIXTURES / "healthy.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (run / "events.jsonl").write_text("".join(lines[:50]), encoding="utf-8")
    assert tail.poll() and tail.view.step == 49
    with (run / "events.jsonl").open("a", encoding="utf-8") as handle:
        handle.writelines(lines[50:100])
    assert tail.poll() and tail.view.step == 98  # only the new bytes were read
    assert tail.state() == "running"
    trainer.kill()
    trainer.wait()
    assert tail.state() == "crashed"
    (run / "events.jsonl").write_text("".join(lines[:10]), encoding="utf-8")
    assert tail.poll() and tail.view.step == 9  # a shorter file: read from the start


def test_a_resumed_run_rewrites_the_curve_from_its_saved_step() -> None:
    view = RunView()
    step = {"type": "step", "epoch": 1, "loss": 0.5, "loss_ema": 0.5, "lr": {"unet": 1e-4}}
    view.apply([{"type": "start", "total_steps": 20, "epochs": 2, "resumed_from_step": 0}])
    view.apply([{**step, "step": n} for n in range(1, 13)])
    view.apply([{"type": "epoch_end", "epoch": 1, "step": 10, "snapshot": "a-000001"}])
    view.apply([{"type": "end", "status": "stopped", "step": 12, "final": None}])
    view.apply([{"type": "start", "total_steps": 20, "epochs": 2, "resumed_from_step": 8}])
    assert view.end is None and view.loss.xs[-1] == 8 and view.epoch_ends == []
    view.apply([{**step, "step": n, "loss": 0.25} for n in range(9, 15)])
    assert view.loss.xs == list(range(1, 15)) and view.loss.ys[-1] == 0.25
    assert ("info", "resumed at step 8") in view.messages


def test_texts_fit_80_columns_and_name_samples_and_snapshots(tmp_path: Path) -> None:
    run = tmp_path / "aria"
    view = RunView()
    view.apply(
        [
            {"t": 10.0, "type": "start", "total_steps": 100, "epochs": 5, "device": "cpu",
             "config": {"sample_prompts": "prompts.txt", "optimizer_type": "AdamW8bit"}},
            {"t": 20.0, "type": "step", "step": 40, "epoch": 2, "loss": 0.1, "loss_ema": 0.1,
             "lr": {"unet": 1e-4}, "samples_per_s": 1.5, "vram_gb": None, "eta_s": 75},
            {"t": 21.0, "type": "epoch_end", "epoch": 2, "step": 40, "loss_mean": 0.1,
             "snapshot": str(run / "aria-000002.safetensors")},
            {"t": 22.0, "type": "sample", "epoch": 2,
             "images": [str(run / "samples" / "e2-0.png"), str(run / "samples" / "e2-1.png")]},
        ]
    )  # fmt: skip
    status = str(mt.status_lines("aria", view, "running", now=23.0)).split("\n")
    assert "step 40/100" in status[0] and "elapsed 0:13" in status[0]  # 12 s of events, 1 s since
    assert "40%" in status[1] and "ETA 1:15" in status[1] and "on cpu" in status[1]
    assert "no event" not in status[0]
    stale = str(mt.status_lines("aria", view, "running", now=22.0 + 600))
    assert "no event for 10:00" in stale
    files = str(mt.files_lines(view, run)).split("\n")
    assert files[0] == "snapshots 1, newest aria-000002.safetensors"
    assert files[1] == f"sample (epoch 2) {run / 'samples' / 'e2-0.png'} (+1)"
    assert "training keeps running" in mt.notice_line("running", view, run)
