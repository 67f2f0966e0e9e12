"""``events.jsonl``: one JSON object per line, append-only, flushed on every write (DESIGN §7).

Every event has ``t`` (unix time), ``type`` and ``elapsed_s`` (the run's training time so
far: every session's time from launch, summed; the time a run sat stopped is not in it).
The types and their fields:

- ``phase``: name, done, total (None when unknown), eta_s (None until it can be estimated):
  what a trainer does before step 1 (starting, loading the model, caching latents i/N ...),
  so nothing looks hung; the first one is written within a second of the launch
- ``start``: config (dict), total_steps, epochs, steps_per_epoch, device, versions (dict),
  resumed_from_step (int, 0 for a fresh run)
- ``step``: step, epoch, loss, loss_ema, lr (dict group -> lr), lr_d (dict group -> lr x d,
  adaptive optimizers only, else absent), samples_per_s, vram_gb (None on CPU), eta_s
- ``epoch_end``: epoch, step, loss_mean, snapshot (path or None)
- ``sample``: epoch, step, images (list of paths), seeds (the seed of each image)
- ``info`` / ``warning`` / ``error``: message, plus an optional ``id`` (``info``: tuilora's
  notices that need no action, e.g. fp32 training on a CPU)
- ``end``: status (finished / stopped / diverged / oom / crashed / failed-to-start), step,
  final (path or None), message

``runs.lifecycle`` turns these into the run's state.

Readers tolerate a torn last line (a writer mid-append) and a file that does not exist yet.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

EVENT_TYPES: Final = (
    "phase",
    "start",
    "step",
    "epoch_end",
    "sample",
    "info",
    "warning",
    "error",
    "end",
)
MESSAGE_TYPES: Final = ("info", "warning", "error")
END_STATUSES: Final = ("finished", "stopped", "diverged", "oom", "crashed", "failed-to-start")


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every reader can parse every line."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class EventWriter:
    """Appends events to a file; each write is one line, flushed (and fsynced on ``end``).

    ``elapsed_before`` is the training time of the run's earlier sessions (from its saved
    state); ``echo`` sees every event written (the console prints the messages).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        elapsed_before: float = 0.0,
        echo: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] = self.path.open("a", encoding="utf-8")
        self.elapsed_before = elapsed_before
        self._started = time.monotonic()
        self.echo = echo

    def elapsed(self) -> float:
        """The run's training time now: earlier sessions plus this one so far."""
        return self.elapsed_before + time.monotonic() - self._started

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        event = {
            "t": round(time.time(), 3),
            "type": type_,
            "elapsed_s": round(self.elapsed(), 1),
            **_clean(fields),
        }
        self._handle.write(json.dumps(event, ensure_ascii=False, allow_nan=False) + "\n")
        self._handle.flush()
        if type_ == "end":
            os.fsync(self._handle.fileno())
        if self.echo is not None:
            self.echo(event)
        return event

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass
class EventReader:
    """Reads new complete lines from an offset; keeps a torn tail until it is completed."""

    path: Path
    offset: int = 0
    _partial: bytes = field(default=b"", repr=False)

    def read_new(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self.offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended with a newline
        events = []
        for line in lines:
            event = parse_line(line)
            if event is not None:
                events.append(event)
        return events


def parse_line(line: bytes | str) -> dict[str, Any] | None:
    """One event, or None for a blank, corrupt or non-event line (never raises)."""
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    text = text.strip()
    if not text:
        return None
    try:
        event = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        return None
    return event


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Every complete event in the file (a torn last line is skipped)."""
    return EventReader(Path(path)).read_new()
