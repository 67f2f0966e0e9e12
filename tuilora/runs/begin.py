"""Open a run folder for a trainer, after ``runs.preflight`` passed (torch-free).

The order matters and is the point of this module:

1. create the folder and take ``RUN/lock`` (another trainer there: refuse, nothing touched);
2. with ``--force`` (or over a run that never trained) remove the old run's own files —
   ``events.jsonl`` last, so a kill half-way leaves a folder that still holds a run;
3. remove leftover temporary files of killed saves, and (resume) a torn last line of
   ``events.jsonl`` that a trainer killed mid-append left;
4. write the pid (the trainer is now visible to ``stop`` / ``runs``), then the first
   ``phase`` event, then (new runs) ``config.toml``; register the run.

A resume that cannot start (``Session.fail_before_start``) truncates ``events.jsonl`` back
to its size and restores the pid file: the run is exactly as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from tuilora.config import to_toml_dict
from tuilora.errors import UserError
from tuilora.fileio import write_atomic
from tuilora.runs import registry, statedir
from tuilora.runs.events import EventWriter, last_event, repair_torn_tail
from tuilora.runs.preflight import OldRun, Plan
from tuilora.runs.rundir import RUN_FOLDERS, RunDir

FIRST_PHASE = "starting"


def take_lock(run: RunDir) -> IO[str]:
    """``RUN/lock``, held until the trainer exits (opened to append: never truncated)."""
    handle = open(run.lock, "a")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(
            f"{run.root} is being trained by another process: stop it first with"
            f" `tuilora stop {run.root}`"
        ) from None
    return handle


def clear_old_run(run: RunDir, old: OldRun) -> None:
    """Remove the old run's own files and nothing else (its LoRAs: those it wrote)."""
    for name in ("pid", "config.toml"):
        (run.root / name).unlink(missing_ok=True)
    for folder in RUN_FOLDERS:
        if (run.root / folder).exists():
            statedir.remove_tree(run.root / folder)
    for lora in old.loras:
        lora.unlink(missing_ok=True)
    run.events.unlink(missing_ok=True)  # last: until here the folder still holds a run


def _roll_back(run: RunDir, events_size: int, old_pid: bytes | None) -> None:
    """Undo a resume's writes: its events and its pid."""
    if run.events.exists():
        with open(run.events, "r+b") as handle:
            handle.truncate(events_size)
    if old_pid is not None:
        write_atomic(run.pid, old_pid, overwrite=True)


def config_text(plan: Plan) -> str:
    import tomli_w

    header = "# The resolved config of this run (tuilora TOML; sd-scripts reads it too).\n\n"
    return header + tomli_w.dumps(to_toml_dict(plan.config))


@dataclass
class Session:
    """A trainer's hold on its run folder, from the lock to the last event."""

    plan: Plan
    lock: IO[str]
    events: EventWriter
    events_size: int  # before this session (a resume rolls back to it)
    old_pid: bytes | None
    #: The one-line error an unexpected exception ended the session with.
    error: str = ""

    @property
    def run(self) -> RunDir:
        return self.plan.run

    def fail_before_start(self, status: str, message: str) -> None:
        """The session ends before step 1: a resume leaves the run as it was; a new run
        records ``status`` (failed-to-start, stopped, oom) and why."""
        if self.plan.resume is not None:
            self.events.close()
            _roll_back(self.run, self.events_size, self.old_pid)
            return
        if status != "stopped":
            self.events.emit("error", message=message)
        self.events.emit("end", status=status, step=0, final=None, message=message)

    def close(self) -> None:
        self.events.close()
        with contextlib.suppress(OSError):
            fcntl.flock(self.lock, fcntl.LOCK_UN)
        self.lock.close()


def _takeover_notices(run: RunDir, old_pid: bytes | None, torn: int) -> list[str]:
    """What a resume found of a trainer that died without ending its session (SIGKILL, the
    OOM killer, a lost machine): its lock went with it (``flock`` locks are released by the
    kernel when the process dies), so this trainer holds the run now."""
    notices = []
    ended = (last_event(run.events) or {}).get("type") == "end"
    if not ended and old_pid is not None:
        pid = old_pid.decode("ascii", errors="replace").strip()[:20]
        notices.append(
            f"the previous trainer (pid {pid}) ended without saving (killed?); its lock was"
            " released when it died, and this trainer takes the run over"
        )
    if torn:
        notices.append(
            f"{run.events.name}: removed a torn last line ({torn} bytes) that the killed"
            " trainer was writing"
        )
    return notices


def begin(plan: Plan, *, echo: Callable[[dict[str, Any]], None] | None = None) -> Session:
    """Create or reopen the run folder as the module docstring says."""
    run = plan.run
    try:
        run.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"output_dir {run.root}: cannot create it ({exc.strerror})") from None
    lock = take_lock(run)
    resume = plan.resume
    torn = repair_torn_tail(run.events) if resume else 0
    events_size = run.events.stat().st_size if resume and run.events.exists() else 0
    old_pid = run.pid.read_bytes() if resume and run.pid.exists() else None
    notices = _takeover_notices(run, old_pid, torn) if resume else []
    try:
        if plan.replace is not None:
            clear_old_run(run, plan.replace)
        for leftover in run.leftover_temp_files():
            leftover.unlink(missing_ok=True)
        statedir.remove_leftovers(run.state)
        write_atomic(run.pid, f"{os.getpid()}\n", overwrite=True)
        events = EventWriter(
            run.events, elapsed_before=resume.elapsed_s if resume else 0.0, echo=echo
        )
        events.emit(
            "phase",
            name=FIRST_PHASE,
            done=0,
            total=None,
            eta_s=None,
            resumed_from_step=resume.step if resume else 0,
        )
        for notice in notices:
            events.emit("info", message=notice, id="takeover")
        if resume is None:
            write_atomic(run.config, config_text(plan), overwrite=True)
    except BaseException:
        if resume is not None:
            _roll_back(run, events_size, old_pid)
        lock.close()
        raise
    registry.register(run.root)
    return Session(plan=plan, lock=lock, events=events, events_size=events_size, old_pid=old_pid)
