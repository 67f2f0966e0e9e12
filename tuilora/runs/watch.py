"""``tuilora watch --plain`` and ``tuilora stop``: follow and stop a run without the TUI.

Both work on a run started in another terminal or detached: they only read the run's events
and pid file, so they reattach after an SSH drop.
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
from tuilora.runs.status import find_runs, is_run_folder, pid_alive, read_pid, run_status

POLL_S = 0.5


def resolve_run(run: str | None, root: str = "runs") -> Path:
    """The run folder given, or the newest run under ``root``."""
    if run:
        path = Path(run)
        if not path.is_dir():
            raise UserError(f"{run}: no such run folder")
        if not is_run_folder(path):
            raise UserError(f"{run}: not a tuilora run folder (no events.jsonl or pid)")
        return path
    found = find_runs(Path(root))
    if not found:
        raise UserError(f"no runs under {root}/: give the run folder, e.g. tuilora watch runs/NAME")
    return found[0]


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_event(event: dict[str, Any], total: int | None) -> str | None:
    kind = event.get("type")
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
    if kind in ("warning", "error"):
        return f"{kind}: {event.get('message')}"
    if kind == "end":
        final = f": {event['final']}" if event.get("final") else ""
        message = f" — {event['message']}" if event.get("message") else ""
        return f"end: {event.get('status')}{final}{message}"
    return None


def watch_plain(
    run: Path,
    *,
    every: int | None = None,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    follow: bool = True,
) -> int:
    """Print the run's events (one step line per ``every`` steps) until it ends.

    Returns 0 when the run finished or was stopped, 1 when it diverged, ran out of memory or
    crashed (its process is gone without an ``end`` event).
    """
    stream = out or sys.stdout
    reader = EventReader(run / "events.jsonl")
    total: int | None = None
    step_every = every
    waited_for_first = False
    while True:
        events = reader.read_new()
        for event in events:
            if event.get("type") == "start":
                total = event.get("total_steps")
                if step_every is None:
                    step_every = max(1, int(total or 50) // 50)
            if event.get("type") == "step":
                step = int(event.get("step", 0))
                if step % (step_every or 1) != 0 and step != total:
                    continue
            line = format_event(event, total)
            if line:
                print(line, file=stream, flush=True)
            if event.get("type") == "end":
                return 0 if event.get("status") in ("finished", "stopped") else 1
        if not events:
            status = run_status(run)
            if status.state == "crashed":
                print(
                    f"end: crashed — the training process is gone without an end event"
                    f" (see {run / 'train.log'})",
                    file=stream,
                    flush=True,
                )
                return 1
            if not follow:
                return 0
            if not waited_for_first and status.step == 0 and not (run / "events.jsonl").exists():
                print("waiting for the run to start ...", file=stream, flush=True)
                waited_for_first = True
            sleep(POLL_S)


def send_stop(run: Path) -> int:
    """Send SIGINT to the run's trainer (it saves state and LoRA, then exits); its pid."""
    pid = read_pid(run)
    if pid is None:
        raise UserError(f"{run / 'pid'}: no trainer pid to stop")
    if not pid_alive(pid):
        raise UserError(f"{run}: the trainer (pid {pid}) is not running")
    os.kill(pid, signal.SIGINT)
    return pid


def stop_run(run: Path, *, wait_s: float = 120.0, out: TextIO | None = None) -> int:
    """Ask a running training to stop (SIGINT: it saves state and the LoRA, then exits)."""
    stream = out or sys.stdout
    status = run_status(run)
    if status.state != "running":
        raise UserError(f"{run} is not running (state: {status.state}); nothing to stop")
    pid = send_stop(run)
    print(
        f"asked {run} (pid {pid}) to stop; it saves its state and LoRA first ...",
        file=stream,
        flush=True,
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        current = run_status(run)
        if current.state != "running":
            print(f"{run}: {current.state} at step {current.step}", file=stream, flush=True)
            return 0 if current.state in ("stopped", "finished") else 1
        time.sleep(POLL_S)
    print(f"{run}: still saving after {wait_s:.0f}s; check `tuilora runs`", file=stream)
    return 1
