"""Is a run's trainer alive, and which process is it? (``stop``, ``runs``, ``watch``, monitor)

A pid file alone proves nothing: it may name a process that died long ago (its pid reused by
something else), or be edited to name any process at all. A process counts as the run's
trainer only when all of these hold:

1. ``RUN/pid`` holds a positive whole number (``0`` and ``-1`` mean "process group" and
   "every process" to ``kill``);
2. that process holds the run's ``RUN/lock`` (the kernel lists flock locks in
   ``/proc/locks``; a dead trainer's lock is released, so a reused pid never holds it);
3. its command line is tuilora's (``python -m tuilora train``, ``tuilora.engine`` under
   ``accelerate launch``, or the ``tuilora`` script).

Where ``/proc/locks`` is missing (not Linux) the lock is probed instead: a lock nobody holds
means no trainer; a held one with a live pid counts as the trainer.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PROC_LOCKS: Final = Path("/proc/locks")
#: Linux's largest pid_max; a bigger number in a pid file is not a pid.
PID_MAX: Final = 2**22


@dataclass(frozen=True)
class Trainer:
    """The verdict on a run's trainer: ``pid`` when verified, else ``reason`` says why not."""

    pid: int | None
    reason: str

    @property
    def alive(self) -> bool:
        return self.pid is not None


def parse_pid(text: str) -> int | None:
    """The pid on the first line of a pid file, or None unless it is a plausible pid."""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not first.isdigit():  # no sign, no spaces: "-1" and "+5" are refused
        return None
    pid = int(first)
    return pid if 0 < pid <= PID_MAX else None


def read_pid(root: Path) -> int | None:
    """The trainer's pid from ``RUN/pid`` (None when missing, unreadable or not a pid)."""
    try:
        return parse_pid((root / "pid").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def lock_holders(lock: Path) -> set[int] | None:
    """Pids holding an flock on ``lock`` per ``/proc/locks``; None where that file is
    unavailable (not Linux)."""
    try:
        info = lock.stat()
    except OSError:
        return set()
    try:
        table = PROC_LOCKS.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    wanted = (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
    holders = set()
    for line in table.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:2244858 0 EOF" ("->" marks waiters)
        parts = line.split()
        if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
            continue
        try:
            major, minor, inode = parts[5].split(":")
            key = (int(major, 16), int(minor, 16), int(inode))
            pid = int(parts[4])
        except ValueError:
            continue
        if key == wanted:
            holders.add(pid)
    return holders


def lock_is_held(lock: Path) -> bool:
    """Whether any process holds ``lock`` (probing it only where /proc/locks is missing)."""
    holders = lock_holders(lock)
    if holders is not None:
        return bool(holders)
    return _probe_held(lock)


def _probe_held(lock: Path) -> bool:
    try:
        handle = lock.open("rb")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def command_line(pid: int) -> list[str] | None:
    """The process's argv (Linux ``/proc/PID/cmdline``), or None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode("utf-8", errors="replace") for part in raw.split(b"\0") if part]


def is_tuilora_command(argv: list[str]) -> bool:
    """``python -m tuilora ...``, ``python -m tuilora.engine ...`` or the ``tuilora`` script
    (run directly, or as the interpreter's script argument)."""
    if not argv:
        return False
    if Path(argv[0]).name == "tuilora":
        return True
    args = argv[1:]
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "-m":
            return index + 1 < len(args) and args[index + 1].split(".")[0] == "tuilora"
        if arg == "-c":
            return False
        if arg in ("-X", "-W"):  # options with a separate argument
            index += 2
            continue
        if arg.startswith("-"):
            index += 1
            continue
        return Path(arg).name == "tuilora"  # the script the interpreter runs
    return False


def find_trainer(root: Path) -> Trainer:
    """The run's trainer, verified as the module docstring says."""
    pid_file = root / "pid"
    if not pid_file.exists():
        return Trainer(None, "no pid file: the trainer never started")
    pid = read_pid(root)
    if pid is None:
        return Trainer(None, f"{pid_file} does not hold a valid pid")
    holders = lock_holders(root / "lock")
    if holders is None:  # no /proc/locks: the lock held and the pid alive must do
        if _probe_held(root / "lock") and pid_alive(pid):
            return Trainer(pid, "")
        return Trainer(None, f"pid {pid} does not hold the run's lock")
    if pid not in holders:
        if not pid_alive(pid):
            return Trainer(None, f"the trainer (pid {pid}) is gone")
        return Trainer(None, f"pid {pid} is another process (it does not hold the run's lock)")
    argv = command_line(pid)
    if argv is not None and not is_tuilora_command(argv):
        return Trainer(None, f"pid {pid} holds the lock but is not tuilora ({' '.join(argv)[:60]})")
    return Trainer(pid, "")
