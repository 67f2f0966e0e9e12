"""What state a run is in, read from its events and pid (``tuilora runs``, the monitor).

A run is ``running`` while its trainer's pid is alive and no ``end`` event is written; its
``end`` event says ``finished``, ``stopped``, ``diverged``, ``oom`` or ``crashed``; a run whose
pid is gone without an ``end`` event is ``crashed`` (killed, machine rebooted, ...).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tuilora.runs.events import parse_line, read_events


@dataclass(frozen=True)
class RunStatus:
    name: str
    path: str
    state: str
    step: int
    total_steps: int | None
    last_loss: float | None
    snapshots: int
    started: float | None
    duration_s: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def read_pid(root: Path) -> int | None:
    """The trainer's pid from ``RUN/pid`` (None when it is missing or unreadable)."""
    try:
        return int((root / "pid").read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def run_state(end: dict[str, Any] | None, pid: int | None, has_events: bool) -> str:
    """The one rule for a run's state (``tuilora runs``, ``watch``, ``stop``, the monitor):
    its ``end`` event's status; else ``running`` while the pid lives; ``waiting`` before the
    trainer wrote a pid or an event; otherwise ``crashed`` (gone without an end event)."""
    if end is not None:
        return str(end.get("status", "crashed"))
    if pid is not None and pid_alive(pid):
        return "running"
    if pid is None and not has_events:
        return "waiting"
    return "crashed"


TAIL_BYTES = 256 * 1024


def _first_and_last_events(path: Path) -> list[dict[str, Any]]:
    """The first events and those in the file's last 256 KB: enough for the status of a
    100,000-step run without reading all of it (a listing or a stop loop reads it often)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return []
    if size <= 2 * TAIL_BYTES:
        return read_events(path)
    with path.open("rb") as handle:
        head = handle.read(TAIL_BYTES)
        handle.seek(size - TAIL_BYTES)
        tail = handle.read()
    lines = head.split(b"\n")[:-1] + tail.split(b"\n")[1:]  # drop the cut lines
    return [event for line in lines if (event := parse_line(line)) is not None]


def run_status(root: Path) -> RunStatus:
    events = _first_and_last_events(root / "events.jsonl")
    start = next((e for e in events if e.get("type") == "start"), None)
    steps = [e for e in events if e.get("type") == "step"]
    end = next((e for e in reversed(events) if e.get("type") == "end"), None)
    state = run_state(end, read_pid(root), bool(events))
    last_t = events[-1]["t"] if events else None
    started = start["t"] if start else (events[0]["t"] if events else None)
    name = root.name
    snapshots = len(list(root.glob("*-[0-9][0-9][0-9][0-9][0-9][0-9].safetensors")))
    return RunStatus(
        name=name,
        path=str(root),
        state=state,
        step=int(steps[-1]["step"]) if steps else 0,
        total_steps=int(start["total_steps"]) if start and "total_steps" in start else None,
        last_loss=steps[-1].get("loss") if steps else None,
        snapshots=snapshots,
        started=started,
        duration_s=round(last_t - started, 1)
        if started is not None and last_t is not None
        else None,
    )


def is_run_folder(root: Path) -> bool:
    """A folder a trainer has started in: its events, or its pid before the first event."""
    return (root / "events.jsonl").exists() or (root / "pid").exists()


def _last_activity(root: Path) -> float:
    try:
        return (root / "events.jsonl").stat().st_mtime
    except FileNotFoundError:
        return 0.0


def find_runs(root: Path) -> list[Path]:
    """Run folders under ``root`` (and ``root`` itself if it is one), newest first."""
    if is_run_folder(root):
        return [root]
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and is_run_folder(p)]
    return sorted(found, key=_last_activity, reverse=True)
