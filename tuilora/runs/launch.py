"""Start ``tuilora train`` detached from the terminal (DESIGN §6 "Detached").

The child runs in its own session (``start_new_session``) with SIGHUP ignored, reads nothing
from the terminal and logs to ``RUN/train.log``, so closing the SSH connection leaves it
training; ``tuilora watch`` reattaches through the run's events.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tuilora.runs.preflight import DATASET_CHECKED


def _ignore_hangup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def launch_detached(
    train_args: Sequence[str], run_root: Path, *, dataset_checked: bool = False
) -> subprocess.Popen[bytes]:
    """Run ``tuilora train <train_args>`` in the background (checks have passed: the run
    folder may be created now, for its log)."""
    run_root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if dataset_checked:
        env[DATASET_CHECKED] = "1"
    with open(run_root / "train.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tuilora", "train", *train_args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_ignore_hangup,
            close_fds=True,
            env=env,
        )
    return process
