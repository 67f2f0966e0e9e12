"""``events.jsonl``: one JSON object per line, append-only, flushed on every write (DESIGN §7).

Every event has ``t`` (unix time) and ``type``. The types and their fields:

- ``start``: config (dict), total_steps, epochs, steps_per_epoch, device, versions (dict),
  resumed_from_step (int, 0 for a fresh run)
- ``step``: step, epoch, loss, loss_ema, lr (dict group -> lr), lr_d (dict group -> lr x d,
  adaptive optimizers only, else absent), samples_per_s, vram_gb (None on CPU), eta_s
- ``epoch_end``: epoch, step, loss_mean, snapshot (path or None)
- ``sample``: epoch, step, images (list of paths), seeds (the seed of each image)
- ``warning`` / ``error``: message, plus an optional ``id``
- ``end``: status (finished / stopped / diverged / oom / crashed), step, final (path or None),
  message

Readers tolerate a torn last line (a writer mid-append) and a file that does not exist yet.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

EVENT_TYPES: Final = ("start", "step", "epoch_end", "sample", "warning", "error", "end")
END_STATUSES: Final = ("finished", "stopped", "diverged", "oom", "crashed")


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
    """Appends events to a file; each write is one line, flushed (and fsynced on ``end``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] = self.path.open("a", encoding="utf-8")

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        event = {"t": round(time.time(), 3), "type": type_, **_clean(fields)}
        self._handle.write(json.dumps(event, ensure_ascii=False, allow_nan=False) + "\n")
        self._handle.flush()
        if type_ == "end":
            os.fsync(self._handle.fileno())
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
