"""`tuilora train` as a user runs it: from an advised sd-scripts TOML, Ctrl+C, --detach."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tuilora.cli import main
from tuilora.config import to_toml_dict
from tuilora.runs import statedir
from tuilora.runs.events import read_events

TINY_PINS = [
    "resolution=64",
    "min_bucket_reso=32",
    "max_bucket_reso=128",
    "bucket_reso_steps=32",
    "max_train_epochs=1",
    'mixed_precision="no"',
]


def _wait_for(path: Path, predicate: Any, timeout: float = 180.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = read_events(path)
        if predicate(events):
            return events
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting on {path}: {read_events(path)[-3:]}")


def test_trains_from_an_advised_kohya_toml(
    tiny_model: Path, shapes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "advised.toml"
    args = [
        "advise",
        "--subject",
        "concept",
        "--simple",
        "--vram",
        "24",
        "--optimizer",
        "adamw",
        "--model",
        str(tiny_model),
        "--dataset",
        str(shapes),
        "--name",
        "adv",
        "--output-dir",
        str(tmp_path / "run"),
        "--format",
        "kohya-toml",
        "--output",
        str(toml),
    ]
    for pin in TINY_PINS:
        args += ["--set", pin]
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 0
    with pytest.raises(SystemExit) as exited:
        main(["train", str(toml), "--no-progress"])
    assert exited.value.code == 0
    assert (tmp_path / "run" / "adv.safetensors").is_file()
    assert read_events(tmp_path / "run" / "events.jsonl")[-1]["status"] == "finished"


def _write(make_config: Any, out: Path, path: Path, **changes: Any) -> Path:
    path.write_text(tomli_w.dumps(to_toml_dict(make_config(out, **changes))), encoding="utf-8")
    return path


@pytest.mark.slow
def test_ctrl_c_saves_state_and_lora_and_exits_0(make_config: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = _write(make_config, out, tmp_path / "c.toml", max_train_epochs=200)
    process = subprocess.Popen(
        [sys.executable, "-m", "tuilora", "train", str(config), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(out / "events.jsonl", lambda ev: any(e["type"] == "step" for e in ev))
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    end = read_events(out / "events.jsonl")[-1]
    assert end["type"] == "end" and end["status"] == "stopped"
    saved = statedir.newest_state(out / "state")
    assert saved is not None and saved.step == end["step"]
    assert Path(end["final"]).is_file() and "-step" in end["final"]
    assert "tuilora train --resume" in err


@pytest.mark.slow
def test_detach_returns_at_once_and_the_run_finishes(make_config: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = _write(make_config, out, tmp_path / "c.toml", max_train_epochs=2)
    result = subprocess.run(
        [sys.executable, "-m", "tuilora", "train", str(config), "--detach"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # detach returned while the run had not ended (it does not wait for the training)
    assert not any(event["type"] == "end" for event in read_events(out / "events.jsonl"))
    assert "tuilora watch" in result.stderr and str(out) in result.stderr
    events = _wait_for(out / "events.jsonl", lambda ev: bool(ev) and ev[-1]["type"] == "end")
    assert events[-1]["status"] == "finished"
    pid = int((out / "pid").read_text())
    assert pid != os.getpid()
    assert (out / "train.log").is_file()


@pytest.mark.slow
def test_two_processes_train_one_valid_lora(
    make_config: Any, tiny_model: Path, tmp_path: Path
) -> None:
    """Data-parallel training with 2 CPU processes (gloo): one run dir, one LoRA that loads."""
    from tuilora.engine.verify import verify_lora

    out = tmp_path / "run"
    config = _write(make_config, out, tmp_path / "c.toml", max_train_epochs=2)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tuilora",
            "train",
            str(config),
            "--processes",
            "2",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    events = read_events(out / "events.jsonl")
    assert [e["type"] for e in events].count("start") == 1  # only the main process writes
    assert events[-1]["status"] == "finished"
    start = next(e for e in events if e["type"] == "start")
    steps = [e for e in events if e["type"] == "step"]
    assert len(steps) == start["total_steps"]
    report = verify_lora(tiny_model, out / "t.safetensors", prompt="tuidemo, red circle")
    assert report.ok, report
