"""Resources (issue 17, item 4): a full disk during a save ends the run saying so, with what
was saved before intact; a second trainer on the same run refuses; a trainer's lock dies
with it (a stale lock is taken over on resume, with a message)."""

from __future__ import annotations

import fcntl
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from safetensors import safe_open

from tuilora.config import to_toml_dict
from tuilora.engine.state import load_state
from tuilora.errors import UserError
from tuilora.runs import statedir
from tuilora.runs.begin import take_lock
from tuilora.runs.events import read_events
from tuilora.runs.rundir import RunDir
from tuilora.runs.status import run_status

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="prlimit and flock are Linux's")


def write_config(config: Any, path: Path) -> Path:
    path.write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
    return path


def tuilora_train(*args: str, **popen: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "tuilora", "train", *args, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **popen,
    )


def ignore_sigxfsz() -> None:
    # A process past RLIMIT_FSIZE gets SIGXFSZ (default: die); ignored, the write fails with
    # EFBIG instead, as a full disk fails with ENOSPC.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def loads(path: Path) -> bool:
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
            handle.get_tensor(key)
    return True


@pytest.mark.slow
def test_a_full_disk_during_a_save_ends_saying_so_and_keeps_what_was_saved(
    make_config: Any, tmp_path: Path
) -> None:
    run = RunDir(tmp_path / "run", "t")
    config = make_config(
        run.root,
        max_train_epochs=4,  # 3 steps an epoch; a snapshot and a state at each epoch's end
        save_state=True,
        save_state_every_n_minutes=0,
    )
    trainer = tuilora_train(
        str(write_config(config, tmp_path / "c.toml")), preexec_fn=ignore_sigxfsz
    )
    deadline = time.monotonic() + 240
    while not (statedir.newest_state(run.state) and run.snapshot(1).is_file()):
        assert trainer.poll() is None and time.monotonic() < deadline, trainer.stderr
        time.sleep(0.02)
    # From now on no file may grow past the limit: events.jsonl has room, a LoRA has not.
    limit = run.events.stat().st_size + 24_000
    assert limit < run.snapshot(1).stat().st_size
    resource.prlimit(trainer.pid, resource.RLIMIT_FSIZE, (limit, limit))
    saved_before = {p.name: p.read_bytes() for p in run.root.glob("t-*.safetensors")}
    _, stderr = trainer.communicate(timeout=240)

    assert trainer.returncode == 2, stderr
    end = read_events(run.events)[-1]
    assert end["type"] == "end" and end["status"] == "crashed"
    message = end["message"]
    assert "no space to write it" in message and "intact" in message and "\n" not in message
    assert f"tuilora train --resume {run.root}" in message
    assert message in stderr  # the same line on the console
    for name, data in saved_before.items():
        assert (run.root / name).read_bytes() == data  # untouched
    for path in run.root.glob("*.safetensors"):
        assert loads(path), path
    assert list(run.leftover_temp_files()) == []  # the failed save left nothing behind
    newest = statedir.newest_state(run.state)
    assert newest is not None and statedir.leftovers(run.state) == []
    assert load_state(run.state).counters.step == newest.step

    resumed = tuilora_train("--resume", str(run.root))
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    events = read_events(run.events)
    start = [e for e in events if e["type"] == "start"][-1]
    assert start["resumed_from_step"] == newest.step
    assert events[-1]["status"] == "finished" and loads(run.final)


@pytest.mark.slow
def test_a_file_size_limit_from_the_start_fails_the_first_save_and_says_start_over(
    make_config: Any, tmp_path: Path
) -> None:
    run = RunDir(tmp_path / "run", "t")
    config = make_config(run.root, max_train_epochs=2, save_state_every_n_minutes=0)

    def small_files() -> None:  # ulimit -f: a LoRA (77 KB here) cannot be written
        ignore_sigxfsz()
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    trainer = tuilora_train(str(write_config(config, tmp_path / "c.toml")), preexec_fn=small_files)
    _, stderr = trainer.communicate(timeout=300)
    assert trainer.returncode == 2, stderr
    end = read_events(run.events)[-1]
    assert end["status"] == "crashed" and end["step"] == 3, end  # the first epoch trained
    assert "no space to write it" in end["message"] and "\n" not in end["message"]
    assert f"start it over: tuilora train {run.config} --force" in end["message"]
    assert list(run.root.glob("*.safetensors")) == [] and run.leftover_temp_files() == []


@pytest.mark.slow
def test_a_full_disk_while_logging_an_event_ends_with_one_line_and_whole_lines(
    make_config: Any, tmp_path: Path
) -> None:
    run = RunDir(tmp_path / "run", "t")
    config = make_config(run.root, max_train_epochs=4, save_state=True)
    trainer = tuilora_train(
        str(write_config(config, tmp_path / "c.toml")), preexec_fn=ignore_sigxfsz
    )
    while not statedir.newest_state(run.state):
        assert trainer.poll() is None, trainer.stderr
        time.sleep(0.02)
    limit = run.events.stat().st_size + 300  # the next event or two cannot be written
    resource.prlimit(trainer.pid, resource.RLIMIT_FSIZE, (limit, limit))
    _, stderr = trainer.communicate(timeout=240)
    assert trainer.returncode == 2, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("tuilora: error")]
    assert len(lines) == 1 and f"{run.events}: no space to write it" in lines[0], stderr
    assert "Traceback" not in stderr and f"tuilora train --resume {run.root}" in lines[0]
    assert run.events.read_bytes().endswith(b"\n")  # the cut event left no half line
    assert run_status(run.root).state == "crashed"  # no end event: the trainer is gone


def test_a_second_trainer_on_the_same_run_refuses_and_a_dead_ones_lock_is_free(
    tmp_path: Path,
) -> None:
    run = RunDir(tmp_path / "run", "t")
    run.root.mkdir()
    held = take_lock(run)
    with pytest.raises(UserError, match="is being trained by another process"):
        take_lock(run)  # what begin() does, after pre-flight's own check of the lock
    held.close()  # the first trainer ends: its lock goes with it
    take_lock(run).close()
    # A trainer killed with SIGKILL runs no cleanup; the kernel releases its flock anyway.
    code = (
        "import fcntl, os, sys, time\n"
        "h = open(sys.argv[1], 'a'); fcntl.flock(h, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "print('locked', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(run.lock)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    with pytest.raises(UserError):
        take_lock(run)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = take_lock(run)  # the stale lock file is taken over
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
