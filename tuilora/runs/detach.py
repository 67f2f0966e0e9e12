"""``tuilora train --detach``: check everything (no torch, nothing written), start the
trainer detached, and return only once the run folder holds its verified pid — so
``tuilora stop`` works the moment the prompt comes back."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from tuilora.errors import UserError
from tuilora.runs.launch import launch_detached
from tuilora.runs.preflight import check_training
from tuilora.runs.trainer import find_trainer

#: The trainer writes its pid before importing torch: seconds, unless the disk hangs.
READY_TIMEOUT_S: Final = 60.0


def _pid_stamp(root: Path) -> tuple[int, bytes] | None:
    try:
        path = root / "pid"
        return path.stat().st_mtime_ns, path.read_bytes()
    except OSError:
        return None


def wait_for_trainer(
    root: Path,
    exited: Callable[[], int | None],
    before: tuple[int, bytes] | None,
    *,
    timeout_s: float = READY_TIMEOUT_S,
) -> int:
    """The verified trainer's pid once a new pid file is written; UserError when the child
    exits first (with its one-line error from ``train.log``) or never gets there."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _pid_stamp(root) != before:
            trainer = find_trainer(root)
            if trainer.pid is not None:
                return trainer.pid
        code = exited()
        if code is not None:
            raise UserError(last_error(root / "train.log") or f"tuilora train exited with {code}")
        time.sleep(0.05)
    raise UserError(
        f"the trainer did not write {root / 'pid'} within {timeout_s:.0f} s; see {root}/train.log"
    )


def last_error(log: Path) -> str:
    """The trainer's ``tuilora: error: ...`` line, if its log ends with one."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines[-40:]):
        if line.startswith("tuilora: error:"):
            return line.removeprefix("tuilora: error:").strip()
    return ""


def start_detached(
    config_path: str | None,
    *,
    resume: str | None,
    force: bool,
    allow_pickle: bool,
    v_parameterization: bool,
    processes: int = 1,
) -> int:
    plan = check_training(
        config_path,
        resume=resume,
        force=force,
        allow_pickle=allow_pickle,
        v_parameterization=v_parameterization,
    )
    root = plan.run.root
    args = [config_path] if config_path else []
    args += ["--resume", resume] if resume else []
    args += ["--force"] if force else []
    args += ["--allow-pickle"] if allow_pickle else []
    args += ["--v-parameterization"] if v_parameterization else []
    args += ["--processes", str(processes)] if processes > 1 else []
    args.append("--no-progress")
    before = _pid_stamp(root)
    child = launch_detached([a for a in args if a is not None], root, dataset_checked=True)
    pid = wait_for_trainer(root, child.poll, before)
    print(f"training in the background (pid {pid}): {root}", file=sys.stderr)
    print(f"follow it with: tuilora watch {root}    log: {root / 'train.log'}", file=sys.stderr)
    return 0
