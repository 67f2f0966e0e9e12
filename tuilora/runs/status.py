"""What state a run is in (``tuilora runs``, ``watch``, ``stop``, ``train``, the wizard).

The state comes from ``runs.lifecycle`` (the one state machine) over the run's events, with
the trainer verified by ``runs.trainer`` (pid file, lock, command line) — never a bare pid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tuilora.runs import statedir
from tuilora.runs.events import parse_line, read_events
from tuilora.runs.lifecycle import Summary, run_state, summarize
from tuilora.runs.trainer import Trainer, find_trainer


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
    #: Training time (stopped intervals excluded).
    duration_s: float | None
    #: The verified trainer's pid while it lives, else None.
    pid: int | None = None
    #: Why there is no live trainer ("" while there is one).
    reason: str = ""
    #: The step a ``--resume`` would continue from (None: nothing to resume).
    resumable_step: int | None = None
    #: The latest ``phase`` event while loading (name, done, total, eta_s).
    phase: dict[str, Any] | None = None
    #: The run has trained at least one step.
    trained: bool = False
    #: The last event's time.
    last_event: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


TAIL_BYTES = 256 * 1024


def head_and_tail_events(path: Path) -> list[dict[str, Any]]:
    """The first events and those in the file's last 256 KB: enough for the status of a
    100,000-step run without reading all of it (a listing or a stop loop reads it often)."""
    try:
        size = path.stat().st_size
        if size <= 2 * TAIL_BYTES:
            return read_events(path)
        with path.open("rb") as handle:
            head = handle.read(TAIL_BYTES)
            handle.seek(size - TAIL_BYTES)
            tail = handle.read()
    except OSError:  # gone, a folder in its place, no permission: no events to read
        return []
    lines = head.split(b"\n")[:-1] + tail.split(b"\n")[1:]  # drop the cut lines
    return [event for line in lines if (event := parse_line(line)) is not None]


def trainer_pid(root: Path) -> int | None:
    """The verified trainer's pid (``runs.trainer``), None when no trainer lives."""
    return find_trainer(root).pid


def state_of(root: Path, summary: Summary, trainer: Trainer | None = None) -> str:
    trainer = trainer if trainer is not None else find_trainer(root)
    return run_state(summary, trainer_alive=trainer.alive, pid_file=(root / "pid").exists())


def run_status(root: Path) -> RunStatus:
    events = head_and_tail_events(root / "events.jsonl")
    summary = summarize(events)
    trainer = find_trainer(root)
    start = next((e for e in events if e.get("type") == "start"), None)
    steps = [e for e in events if e.get("type") == "step"]
    saved = statedir.newest_state(root / "state")
    snapshots = len(list(root.glob("*-[0-9][0-9][0-9][0-9][0-9][0-9].safetensors")))
    return RunStatus(
        name=root.name,
        path=str(root),
        state=state_of(root, summary, trainer),
        step=int(steps[-1]["step"]) if steps else 0,
        total_steps=int(start["total_steps"]) if start and "total_steps" in start else None,
        last_loss=steps[-1].get("loss") if steps else None,
        snapshots=snapshots,
        started=events[0]["t"] if events else None,
        duration_s=round(summary.elapsed_s, 1) if summary.elapsed_s is not None else None,
        pid=trainer.pid,
        reason=trainer.reason,
        resumable_step=saved.step if saved is not None else None,
        phase=summary.phase,
        trained=summary.ever_stepped,
        last_event=events[-1]["t"] if events else None,
    )


def is_run_folder(root: Path) -> bool:
    """A folder a trainer has started in: its events, or its pid before the first event."""
    return (root / "events.jsonl").exists() or (root / "pid").exists()


def last_activity(root: Path) -> float:
    """When the run last wrote an event (its pid file's time before the first one)."""
    for name in ("events.jsonl", "pid"):
        try:
            return (root / name).stat().st_mtime
        except OSError:
            continue
    return 0.0


def find_runs(root: Path) -> list[Path]:
    """Run folders under ``root`` (and ``root`` itself if it is one), newest first."""
    if is_run_folder(root):
        return [root]
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and is_run_folder(p)]
    return sorted(found, key=last_activity, reverse=True)
