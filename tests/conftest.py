"""Fixtures for every test: a private registry of recent runs, a private cache folder,
and stand-in trainers.

A stand-in trainer is a real process that does what ``runs.trainer`` checks a trainer by —
it holds ``RUN/lock``, writes ``RUN/pid`` and runs a script named ``tuilora`` — and, on
SIGINT, writes an ``end: stopped`` event and exits, as ``tuilora train`` does after saving.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

STAND_IN = r"""
import fcntl, json, os, signal, sys, time
run = sys.argv[1]
lock = open(os.path.join(run, "lock"), "a")
fcntl.flock(lock, fcntl.LOCK_EX)
def stop(*_):
    if "--no-end" not in sys.argv:
        with open(os.path.join(run, "events.jsonl"), "a") as events:
            events.write(json.dumps({"t": time.time(), "type": "end", "status": "stopped",
                                     "step": 0, "final": None, "message": "stopped"}) + "\n")
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
if "--no-pid" not in sys.argv:
    with open(os.path.join(run, "pid"), "w") as handle:
        handle.write(str(os.getpid()))
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""

StartTrainer = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture(autouse=True)
def private_state_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The registry of recent runs lives in $XDG_STATE_HOME: never the user's own."""
    home = tmp_path_factory.mktemp("state-home")
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


@pytest.fixture
def stand_in_trainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartTrainer]:
    """``start(run, *flags, name="tuilora")``: a stand-in trainer on ``run`` (flags:
    ``--no-end``, ``--no-pid``; ``name``: the script's file name, e.g. a decoy's)."""
    started: list[subprocess.Popen[str]] = []
    folder = tmp_path_factory.mktemp("stand-in")

    def start(run: Path, *flags: str, name: str = "tuilora") -> subprocess.Popen[str]:
        script = folder / name
        script.write_text(STAND_IN, encoding="utf-8")
        run.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [sys.executable, str(script), str(run), *flags],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.fixture(autouse=True, scope="session")
def _private_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Scans keep a probe cache under XDG_CACHE_HOME: tests (and the tuilora processes
    they start) use a folder of their own, never the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield
