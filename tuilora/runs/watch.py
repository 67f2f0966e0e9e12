"""``tuilora watch --plain`` and ``tuilora stop``: follow and stop a run without the TUI.

Both work on a run started in another terminal or detached: they only read the run's events
and pid file, so they reattach after an SSH drop. The run's state is ``runs.lifecycle``'s,
so a resumed run is followed past its earlier ``end`` event.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from tuilora.errors import UserError
from tuilora.runs.events import EventReader
from tuilora.runs.lifecycle import GOOD_ENDS, LIVE, Summary
from tuilora.runs.phases import clock_text, describe_phase
from tuilora.runs.registry import recent_runs
from tuilora.runs.status import find_runs, is_run_folder, last_activity, run_status, state_of
from tuilora.runs.trainer import find_trainer

POLL_S = 0.5
#: A phase with a count prints a line at most this often (and when it changes or ends).
PHASE_LINE_S = 5.0


def newest_runs(root: str | None = None) -> list[Path]:
    """Runs under ``root`` (default: ``./runs`` and the recent runs started anywhere,
    ``runs.registry``), the most recently active first."""
    if root is not None:
        return find_runs(Path(root))
    found = {path.absolute(): path for path in find_runs(Path("runs"))}
    for path in recent_runs():
        found.setdefault(path.absolute(), path)
    return sorted(found.values(), key=last_activity, reverse=True)


def resolve_run(run: str | None, root: str | None = None) -> Path:
    """The run folder given, or the newest run (under ``root`` when given)."""
    if run:
        path = Path(run)
        if not path.is_dir():
            raise UserError(f"{run}: no such run folder")
        if not is_run_folder(path):
            raise UserError(f"{run}: not a tuilora run folder (no events.jsonl or pid)")
        return path
    found = newest_runs(root)
    if not found:
        where = f"under {root}/" if root else "under runs/ or started anywhere on this machine"
        raise UserError(f"no runs {where}: give the run folder, e.g. tuilora watch runs/NAME")
    return found[0]


def _eta(seconds: Any) -> str:
    return clock_text(seconds) if isinstance(seconds, int | float) else "-"


def format_event(event: dict[str, Any], total: int | None) -> str | None:
    kind = event.get("type")
    if kind == "phase":
        return f"phase: {describe_phase(event)}"
    if kind == "start":
        resumed = event.get("resumed_from_step") or 0
        note = f", resumed at step {resumed}" if resumed else ""
        return (
            f"start: {event.get('total_steps')} steps in {event.get('epochs')} epochs"
            f" on {event.get('device')}{note}"
        )
    if kind == "step":
        lr_d = event.get("lr_d")
        ld = " lr*d " + "/".join(f"{v:.2e}" for v in lr_d.values()) if lr_d else ""
        loss = event.get("loss")
        ema = event.get("loss_ema")
        loss_text = f"{loss:.4f}" if isinstance(loss, float) else "nan"
        ema_text = f"{ema:.4f}" if isinstance(ema, float) else "-"
        vram = event.get("vram_gb")
        vram_text = f" vram {vram:.1f}GB" if isinstance(vram, float) else ""
        return (
            f"step {event.get('step')}/{total or '?'} epoch {event.get('epoch')}"
            f" loss {loss_text} ema {ema_text}{ld} {event.get('samples_per_s', 0):.1f} img/s"
            f"{vram_text} eta {_eta(event.get('eta_s'))}"
        )
    if kind == "epoch_end":
        mean = event.get("loss_mean")
        snapshot = f", saved {event['snapshot']}" if event.get("snapshot") else ""
        mean_text = f"{mean:.4f}" if isinstance(mean, float) else "-"
        return f"epoch {event.get('epoch')} done: mean loss {mean_text}{snapshot}"
    if kind == "sample":
        return f"samples (epoch {event.get('epoch')}): {', '.join(event.get('images', []))}"
    if kind in ("info", "warning", "error"):
        return f"{kind}: {event.get('message')}"
    if kind == "end":
        final = f": {event['final']}" if event.get("final") else ""
        message = f" — {event['message']}" if event.get("message") else ""
        return f"end: {event.get('status')}{final}{message}"
    return None


class _Printer:
    """Which events become lines: every step line only every ``every`` steps, a phase
    when it begins, ends, or ``PHASE_LINE_S`` after its last line."""

    def __init__(self, stream: TextIO, every: int | None) -> None:
        self.stream = stream
        self.every = every
        self.total: int | None = None
        self._phase: tuple[str, float] = ("", 0.0)

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "start":
            self.total = event.get("total_steps")
            if self.every is None:
                self.every = max(1, int(self.total or 50) // 50)
        if kind == "step":
            step = int(event.get("step", 0))
            if step % (self.every or 1) != 0 and step != self.total:
                return
        if kind == "phase" and not self._phase_due(event):
            return
        line = format_event(event, self.total)
        if line:
            print(line, file=self.stream, flush=True)

    def _phase_due(self, event: dict[str, Any]) -> bool:
        name = str(event.get("name"))
        t = float(event.get("t") or 0.0)
        last_name, last_t = self._phase
        ended = event.get("done") == event.get("total") and event.get("done")
        if name != last_name or ended or t - last_t >= PHASE_LINE_S:
            self._phase = (name, t)
            return True
        return False


def watch_plain(
    run: Path,
    *,
    every: int | None = None,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    follow: bool = True,
) -> int:
    """Print the run's events (one step line per ``every`` steps) until it ends.

    Returns 0 when the run finished or was stopped, 1 when it diverged, ran out of memory,
    failed to start or crashed (its trainer is gone without an ``end`` event).
    """
    stream = out or sys.stdout
    reader = EventReader(run / "events.jsonl")
    summary = Summary()
    printer = _Printer(stream, every)
    announced_wait = False
    gone_polls = 0
    told_skipped = 0
    told_problem = ""
    while True:
        for event in reader.iter_new():
            summary.feed(event)
            printer(event)
        # Say why nothing shows rather than wait in silence (a binary or damaged file).
        if reader.problem and reader.problem != told_problem:
            print(f"warning: {reader.problem}", file=stream, flush=True)
        told_problem = reader.problem
        if reader.skipped and not told_skipped:
            print(
                f"warning: {run / 'events.jsonl'}: {reader.skipped} line(s) are not events"
                " (damaged or not written by tuilora); skipped",
                file=stream,
                flush=True,
            )
            told_skipped = reader.skipped
        state = state_of(run, summary)
        if state == "crashed":
            # Confirmed on a second look: a trainer between its lock and its pid is not gone.
            gone_polls += 1
            if gone_polls >= 2 or not follow:
                print(
                    f"end: crashed — the training process is gone without an end event"
                    f" (see {run / 'train.log'})",
                    file=stream,
                    flush=True,
                )
                return 1
        elif state not in (*LIVE, "waiting"):
            return 0 if state in GOOD_ENDS else 1
        else:
            gone_polls = 0
        if not follow:
            return 0
        if state == "waiting" and not announced_wait:
            print("waiting for the run to start ...", file=stream, flush=True)
            announced_wait = True
        sleep(POLL_S)


def send_stop(run: Path) -> int:
    """Send SIGINT to the run's trainer — only a verified one (``runs.trainer``: a real pid
    that holds the run's lock and runs tuilora) — and return its pid."""
    trainer = find_trainer(run)
    if trainer.pid is None:
        raise UserError(f"{run} is not running: {trainer.reason}; nothing to stop")
    os.kill(trainer.pid, signal.SIGINT)
    return trainer.pid


def stop_run(run: Path, *, wait_s: float = 120.0, out: TextIO | None = None) -> int:
    """Ask a running training to stop (SIGINT: it saves state and the LoRA, then exits)."""
    stream = out or sys.stdout
    status = run_status(run)
    if status.pid is None:
        why = f"state: {status.state}" + (f"; {status.reason}" if status.reason else "")
        raise UserError(f"{run} is not running ({why}); nothing to stop")
    pid = send_stop(run)
    saving = "it saves its state and LoRA first" if status.state == "running" else "it stops"
    print(f"asked {run} (pid {pid}) to stop; {saving} ...", file=stream, flush=True)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        current = run_status(run)
        if current.state not in LIVE:
            message = f"{run}: {current.state} at step {current.step}"
            if current.state == "stopped" and not current.trained:
                message += " (before its first step: nothing to resume)"
            print(message, file=stream, flush=True)
            return 0 if current.state in GOOD_ENDS else 1
        time.sleep(POLL_S)
    print(f"{run}: still saving after {wait_s:.0f}s; check `tuilora runs`", file=stream)
    return 1
