"""`tuilora watch --plain`, `tuilora stop`, `tuilora runs` on recorded and live runs."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tuilora.errors import UserError
from tuilora.runs import statedir
from tuilora.runs.status import run_status
from tuilora.runs.watch import format_event, resolve_run, stop_run, watch_plain


def write_events(folder: Path, events: list[dict[str, Any]], torn: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps({"t": 1000.0 + i, **e}) + "\n" for i, e in enumerate(events))
    (folder / "events.jsonl").write_text(text + torn, encoding="utf-8")
    return folder


START = {"type": "start", "total_steps": 4, "epochs": 2, "device": "cpu", "resumed_from_step": 0}


def steps(n: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "step",
            "step": i,
            "epoch": 1 + (i - 1) // 2,
            "loss": 0.1 * i,
            "loss_ema": 0.1,
            "lr": {"unet": 1e-4},
            "samples_per_s": 2.0,
            "vram_gb": None,
            "eta_s": 10.0,
        }
        for i in range(1, n + 1)
    ]


def test_plain_watch_of_a_finished_run_prints_and_exits_0(tmp_path: Path) -> None:
    run = write_events(
        tmp_path / "r",
        [START, *steps(4), {"type": "end", "status": "finished", "final": "r/t.safetensors"}],
    )
    out = io.StringIO()
    assert watch_plain(run, every=2, out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("start: 4 steps")
    assert [line.split()[1] for line in lines if line.startswith("step")] == ["2/4", "4/4"]
    assert lines[-1] == "end: finished: r/t.safetensors"


def test_plain_watch_tolerates_a_torn_line_and_follows_new_events(tmp_path: Path) -> None:
    run = write_events(tmp_path / "r", [START, *steps(1)], torn='{"type": "step", "st')
    (run / "pid").write_text(str(os.getpid()))  # alive: the run counts as running
    out = io.StringIO()
    appended = {"done": False}

    def sleep(_: float) -> None:
        if not appended["done"]:
            with (run / "events.jsonl").open("a") as handle:
                handle.write('ep": 2}\n')  # completes the torn line: not a valid event
                handle.write(
                    json.dumps(
                        {
                            "t": 2000,
                            "type": "end",
                            "status": "diverged",
                            "final": None,
                            "message": "nan",
                        }
                    )
                    + "\n"
                )
            appended["done"] = True

    assert watch_plain(run, every=1, out=out, sleep=sleep) == 1
    assert "end: diverged" in out.getvalue()


def test_crashed_run_is_reported(tmp_path: Path) -> None:
    run = write_events(tmp_path / "r", [START, *steps(2)])
    (run / "pid").write_text("999999")  # no such process, no end event
    assert run_status(run).state == "crashed"
    out = io.StringIO()
    assert watch_plain(run, out=out) == 1
    assert "crashed" in out.getvalue()
    with pytest.raises(UserError, match="not running"):
        stop_run(run)


def test_resolve_run_defaults_to_the_newest(tmp_path: Path) -> None:
    old = write_events(tmp_path / "runs" / "old", [START])
    time.sleep(0.01)
    new = write_events(tmp_path / "runs" / "new", [START])
    os.utime(old / "events.jsonl", (1, 1))
    assert resolve_run(None, str(tmp_path / "runs")) == new
    with pytest.raises(UserError, match="no runs"):
        resolve_run(None, str(tmp_path / "empty"))


def test_format_event_covers_every_type() -> None:
    for event in [
        START,
        *steps(1),
        {"type": "epoch_end", "epoch": 1, "loss_mean": 0.1, "snapshot": "x"},
        {"type": "sample", "epoch": 1, "images": ["a.png"]},
        {"type": "warning", "message": "w"},
        {"type": "error", "message": "e"},
        {"type": "end", "status": "stopped", "final": None, "message": "m"},
    ]:
        assert format_event(event, 4)


@pytest.mark.slow
def test_detached_run_survives_its_terminal_dying_and_watch_shows_it(tmp_path: Path) -> None:
    """An SSH drop kills the shell's whole process group; a detached run must not care."""
    pytest.importorskip("torch")
    from tuilora.engine.demo import demo_config_text
    from tuilora.engine.tiny import build_shapes_dataset, build_tiny_pipeline

    build_tiny_pipeline(tmp_path / "model")
    build_shapes_dataset(tmp_path / "dataset", images=6)
    config = tmp_path / "demo.toml"
    config.write_text(demo_config_text(tmp_path), encoding="utf-8")
    run = tmp_path / "runs" / "demo"
    shell = subprocess.Popen(
        ["bash", "-c", f"{sys.executable} -m tuilora train {config} --detach; sleep 60"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (run / "pid").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (run / "pid").exists()
    os.killpg(shell.pid, signal.SIGHUP)  # the terminal hangs up ...
    os.killpg(shell.pid, signal.SIGKILL)  # ... and everything in its group dies
    shell.wait(timeout=10)
    result = subprocess.run(
        [sys.executable, "-m", "tuilora", "watch", str(run), "--plain"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "end: finished" in result.stdout
    assert run_status(run).state == "finished"


@pytest.mark.slow
def test_stop_saves_and_ends_a_live_run(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from tuilora.engine.demo import demo_config_text
    from tuilora.engine.tiny import build_shapes_dataset, build_tiny_pipeline

    build_tiny_pipeline(tmp_path / "model")
    build_shapes_dataset(tmp_path / "dataset", images=6)
    config = tmp_path / "demo.toml"
    config.write_text(
        demo_config_text(tmp_path).replace("max_train_epochs = 8", "max_train_epochs = 500")
    )
    run = tmp_path / "runs" / "demo"
    subprocess.run(
        [sys.executable, "-m", "tuilora", "train", str(config), "--detach"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 120
    while run_status(run).step == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    out = io.StringIO()
    assert stop_run(run, out=out) == 0
    assert run_status(run).state == "stopped"
    assert statedir.newest_state(run / "state") is not None


def test_status_of_a_long_run_reads_its_head_and_tail(tmp_path: Path) -> None:
    many = steps(6000)  # well over the 2 x 256 KB read whole
    run = write_events(
        tmp_path / "r", [START, *many, {"type": "end", "status": "finished", "final": None}]
    )
    assert (run / "events.jsonl").stat().st_size > 1_000_000
    status = run_status(run)
    assert (status.state, status.step, status.total_steps) == ("finished", 6000, 4)
    assert status.last_loss == pytest.approx(600.0)
