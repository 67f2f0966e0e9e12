"""Issue 12, tried again with real files and real processes: a run never destroys or signals
what is not its own (a user's LoRA folder, a live run, a decoy process behind a pid file).

Every ``tuilora`` call here is refused before the engine loads, so none imports torch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tuilora.cli import main
from tuilora.config import TrainingConfig
from tuilora.errors import UserError
from tuilora.runs.status import run_status
from tuilora.runs.trainer import find_trainer, is_tuilora_command, parse_pid
from tuilora.runs.watch import send_stop, stop_run

StartTrainer = Callable[..., Any]  # the stand_in_trainer fixture (tests/conftest.py)


def tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``folder`` with its bytes and mtime; folders as empty entries."""
    found: dict[str, tuple[bytes, int]] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        found[key] = (path.read_bytes() if path.is_file() else b"<dir>", path.stat().st_mtime_ns)
    return found


def tuilora(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuilora", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """A model folder that passes the torch-free checks and a small real dataset."""
    from tuilora.engine.tiny import build_shapes_dataset

    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text("{}", encoding="utf-8")
    (model / "text_encoder").mkdir()
    (model / "text_encoder" / "config.json").write_text("{}", encoding="utf-8")
    return {"model": model, "dataset": build_shapes_dataset(tmp_path / "dataset", images=4)}


def config_file(path: Path, inputs: dict[str, Path], out: Path, **values: Any) -> Path:
    import tomli_w

    table = {
        "pretrained_model_name_or_path": str(inputs["model"]),
        "train_data_dir": str(inputs["dataset"]),
        "output_dir": str(out),
        "output_name": "mylora",
        "resolution": 64,
        "min_bucket_reso": 32,
        "max_bucket_reso": 128,
        "bucket_reso_steps": 32,
        **values,
    }
    path.write_text(tomli_w.dumps(table), encoding="utf-8")
    return path


def user_lora_folder(folder: Path, *, run_names: bool = False) -> Path:
    """A ComfyUI-style ``models/loras``: LoRAs of several names, notes, a subfolder."""
    folder.mkdir(parents=True)
    for name in ("mylora.safetensors", "mylora-000003.safetensors", "other.safetensors"):
        (folder / name).write_bytes(b"user's " + name.encode())
    (folder / "notes.txt").write_text("keep me", encoding="utf-8")
    (folder / "by-artist").mkdir()
    (folder / "by-artist" / "a.safetensors").write_bytes(b"nested")
    if run_names:
        for name in ("samples", "cache", "state"):
            (folder / name).mkdir()
            (folder / name / "mine.png").write_bytes(b"user's " + name.encode())
    return folder


def test_a_failed_start_in_a_users_lora_folder_touches_nothing(
    tmp_path: Path, inputs: dict[str, Path]
) -> None:
    folder = user_lora_folder(tmp_path / "models" / "loras", run_names=True)
    before = tree(folder)
    missing = dict(inputs, model=tmp_path / "no-such-model")
    result = tuilora("train", str(config_file(tmp_path / "c.toml", missing, folder)))
    assert result.returncode == 2
    assert "pretrained_model_name_or_path" in result.stderr and "no such file" in result.stderr
    assert tree(folder) == before
    # A valid model: the folder holds samples/, cache/, state/ of someone else's. Refused,
    # with --force too: a run never writes into or deletes another's folders.
    good = config_file(tmp_path / "good.toml", inputs, folder)
    for extra in ([], ["--force"]):
        result = tuilora("train", str(good), *extra)
        assert result.returncode == 2, result.stderr
        assert "that no tuilora run wrote" in result.stderr
        assert result.stderr.count("\n") == 1  # one line
        assert tree(folder) == before


def test_same_named_loras_are_refused_without_force(
    tmp_path: Path, inputs: dict[str, Path]
) -> None:
    folder = user_lora_folder(tmp_path / "loras")
    before = tree(folder)
    result = tuilora("train", str(config_file(tmp_path / "c.toml", inputs, folder)))
    assert result.returncode == 2
    assert "mylora-000003.safetensors, mylora.safetensors that this run did not write" in (
        result.stderr
    )
    assert tree(folder) == before


@pytest.mark.parametrize(
    "name", ["*", "../../victim/precious", "sub/dir/x", "/abs/olute", "a\\b", "..", ".x", "a?"]
)
def test_output_name_is_a_file_name(tmp_path: Path, inputs: dict[str, Path], name: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.safetensors").write_bytes(b"precious")
    out = tmp_path / "a" / "b"
    before = tree(tmp_path)
    result = tuilora("train", str(config_file(tmp_path / "c.toml", inputs, out, output_name=name)))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("tuilora: error:") and "output_name" in result.stderr
    assert result.stderr.count("\n") == 1
    assert tree(tmp_path) == {**before, **tree_entry(tmp_path, "c.toml")}
    with pytest.raises(UserError, match="output_name"):
        TrainingConfig.from_dict({"output_name": name})


def tree_entry(root: Path, name: str) -> dict[str, tuple[bytes, int]]:
    path = root / name
    return {name: (path.read_bytes(), path.stat().st_mtime_ns)}


def test_advise_name_refuses_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["advise", "--subject", "concept", "--images", "10", "--name", "../../x"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "output_name '../../x'" in err and err.count("\n") == 1


def live_run_folder(root: Path) -> Path:
    """A run folder as a training leaves it mid-way (files of every kind)."""
    root.mkdir(parents=True)
    events = [
        {"t": 1.0, "type": "start", "total_steps": 40, "epochs": 4},
        {"t": 2.0, "type": "step", "step": 1, "epoch": 1, "loss": 0.5},
        {"t": 3.0, "type": "epoch_end", "epoch": 1, "step": 10, "snapshot": "x"},
    ]
    (root / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), "utf-8")
    (root / "config.toml").write_text('[saving]\noutput_name = "mylora"\n', encoding="utf-8")
    for name in ("tb/events.out", "state/00000010/counters.json", "samples/a.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("data", encoding="utf-8")
    (root / "mylora-000001.safetensors").write_bytes(b"snapshot")
    return root


def test_force_against_a_live_run_refuses_before_deleting_anything(
    tmp_path: Path, inputs: dict[str, Path], stand_in_trainer: StartTrainer
) -> None:
    run = live_run_folder(tmp_path / "run")
    trainer = stand_in_trainer(run, "--no-end")
    before = tree(run)
    config = config_file(tmp_path / "c.toml", inputs, run)
    for args in (["train", str(config), "--force"], ["train", "--resume", str(run)]):
        result = tuilora(*args)
        assert result.returncode == 2, result.stderr
        assert "is being trained now" in result.stderr and str(trainer.pid) in result.stderr
        assert tree(run) == before
    assert trainer.poll() is None  # the live trainer never noticed


@pytest.mark.parametrize("text", ["-1", "0", "", "abc", "+5", "99999999", " -1", "1.5"])
def test_a_pid_file_that_is_not_a_pid_signals_nothing(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = live_run_folder(tmp_path / "run")
    (run / "pid").write_text(text, encoding="utf-8")
    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    with pytest.raises(UserError, match="not running"):
        stop_run(run)
    with pytest.raises(UserError, match="not running"):
        send_stop(run)
    assert sent == [] or all(sig == 0 for _, sig in sent)
    assert parse_pid(text) is None


def test_stop_never_signals_a_decoy_and_runs_does_not_call_it_running(
    tmp_path: Path, stand_in_trainer: StartTrainer
) -> None:
    run = live_run_folder(tmp_path / "run")
    decoys = []
    # An unrelated process named in the pid file (tampering, or a crashed trainer's reused pid).
    sleeper = subprocess.Popen(["sleep", "300"])
    decoys.append(sleeper)
    (run / "pid").write_text(str(sleeper.pid), encoding="utf-8")
    result = tuilora("stop", str(run))
    assert result.returncode == 2 and "does not hold the run's lock" in result.stderr
    listed = json.loads(tuilora("runs", str(tmp_path), "--format", "json").stdout)
    assert [(r["state"], r["pid"]) for r in listed] == [("crashed", None)]
    # A process that holds the run's lock but is not tuilora.
    holder = stand_in_trainer(run, "--no-pid", name="some-other-program")
    decoys.append(holder)
    (run / "pid").write_text(str(holder.pid), encoding="utf-8")
    result = tuilora("stop", str(run))
    assert result.returncode == 2 and "is not tuilora" in result.stderr
    assert run_status(run).state == "crashed"
    time.sleep(0.3)
    assert all(decoy.poll() is None for decoy in decoys)  # alive, never signalled
    for decoy in decoys:
        decoy.kill()
        decoy.wait()


def test_stop_signals_the_verified_trainer(tmp_path: Path, stand_in_trainer: StartTrainer) -> None:
    run = live_run_folder(tmp_path / "run")
    trainer = stand_in_trainer(run)
    assert find_trainer(run).pid == trainer.pid
    listed = json.loads(tuilora("runs", str(run), "--format", "json").stdout)
    assert (listed[0]["state"], listed[0]["pid"]) == ("running", trainer.pid)
    result = tuilora("stop", str(run), "--wait", "20")
    assert result.returncode == 0, result.stderr
    assert trainer.wait(timeout=20) == 0
    assert run_status(run).state == "stopped"
    # Its pid is dead now: a second stop finds no trainer, whatever the pid file says.
    result = tuilora("stop", str(run))
    assert result.returncode == 2 and "not running" in result.stderr


def test_the_trainer_command_line_test() -> None:
    python = sys.executable
    assert is_tuilora_command([python, "-m", "tuilora", "train", "x.toml"])
    assert is_tuilora_command([python, "-u", "-m", "tuilora.engine", "x.toml"])
    assert is_tuilora_command([python, "/venv/bin/tuilora", "train"])
    assert not is_tuilora_command(["sleep", "300"])
    assert not is_tuilora_command([python, "-m", "tuilora_fake"])
    assert not is_tuilora_command([python, "my_script.py", "tuilora"])


def test_kill_signal_is_sigint(tmp_path: Path, stand_in_trainer: StartTrainer) -> None:
    """``stop`` asks (SIGINT: save, then exit); it never kills."""
    run = live_run_folder(tmp_path / "run")
    trainer = stand_in_trainer(run, "--no-end")
    assert send_stop(run) == trainer.pid
    assert trainer.wait(timeout=20) == 0  # the stand-in's SIGINT handler exits 0
    assert trainer.returncode != -signal.SIGKILL
