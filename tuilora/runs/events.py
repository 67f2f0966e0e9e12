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
They stream: the file is read in blocks of ``READ_BLOCK`` bytes and parsed line by line
(``iter_events``, ``EventReader.iter_new``), so a 100,000-step run (25 MB) is never held
whole in memory; a reader keeps only what it needs of each event
(``benchmarks/events_scale.py``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tuilora.fileio import write_failure
from tuilora.parsing import loads_json

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
#: No event line is longer (a start event with its whole config is a few kB).
MAX_LINE_BYTES: Final = 1024 * 1024
END_STATUSES: Final = ("finished", "stopped", "diverged", "oom", "crashed", "failed-to-start")
#: Bytes read at a time: a few thousand events.
READ_BLOCK: Final = 1 << 20


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

    A write that fails (a full disk) is cut back, so the file never ends in half a line, and
    raises UserError (``fileio.NoSpaceError`` for lack of space) once; the writer then writes
    nothing more (the run, without an ``end`` event, reads as crashed) and never raises again,
    so ending the session cannot fail too.
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
        self._handle = self.path.open("ab", buffering=0)
        self.failed: OSError | None = None
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
        line = (json.dumps(event, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
        if self.failed is None:
            self._append(line, fsync=type_ == "end")
        if self.echo is not None:
            self.echo(event)
        return event

    def _append(self, line: bytes, *, fsync: bool) -> None:
        fd = self._handle.fileno()
        try:
            start = os.fstat(fd).st_size
        except OSError:
            start = None
        try:
            view = memoryview(line)
            while view:
                written = self._handle.write(view)
                if not written:  # nothing taken and no error: no room
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
            if fsync:
                os.fsync(fd)
        except OSError as exc:
            self.failed = exc
            if start is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, start)  # no half line: cutting needs no space
            raise write_failure(self.path, exc) from None

    def close(self) -> None:
        if not self._handle.closed:
            with contextlib.suppress(OSError):
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
    #: Lines so far that held something but not an event (corrupt, binary, wrong types).
    skipped: int = 0
    #: Why the file cannot be read (a folder in its place, no permission); "" while it can
    #: or does not exist yet.
    problem: str = ""

    def read_new(self) -> list[dict[str, Any]]:
        return list(self.iter_new())

    def iter_new(self) -> Iterator[dict[str, Any]]:
        """The complete events appended since the last read, parsed block by block (consume
        it to the end: the offset moves a block at a time)."""
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:  # a folder in its place, no permission
            self.problem = f"{self.path}: cannot read it ({exc.strerror or exc})"
            return
        self.problem = ""
        with handle:
            handle.seek(self.offset)
            while block := handle.read(READ_BLOCK):
                self.offset += len(block)
                lines = (self._partial + block).split(b"\n")
                self._partial = lines.pop()  # b"" when the block ended with a newline
                held = self._partial
                if held and (len(held) > MAX_LINE_BYTES or not held.lstrip(b"\0").startswith(b"{")):
                    # Not the start of an event being written: binary or damaged bytes
                    # without a newline would otherwise be held (and waited for) for good.
                    lines.append(held)
                    self._partial = b""
                for line in lines:
                    event = parse_line(line)
                    if event is not None:
                        yield event
                    elif line.strip():
                        self.skipped += 1


def parse_line(line: bytes | str) -> dict[str, Any] | None:
    """One event, or None for a blank, corrupt or non-event line (never raises)."""
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    # NUL bytes are what a crash or power loss leaves where a write had not reached the disk.
    text = text.strip().strip("\0").strip()
    if not text:
        return None
    try:
        event = loads_json(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("type") not in EVENT_TYPES:
        return None
    return event if well_typed(event) else None


# -- field types -----------------------------------------------------------------------
# A hand-edited or damaged line (a step of "abc", a list for a number, a string config) is
# skipped like a corrupt one: every reader (runs, watch, diagnose, the monitor) may then use
# the fields without checks, and one bad line never breaks a listing of many runs (issue 17).

#: Largest step, epoch or count a reader accepts (far above any real run).
MAX_COUNT: Final = 2**53


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_COUNT


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _number_or_none(value: Any) -> bool:
    return value is None or _number(value)


def _count_or_none(value: Any) -> bool:
    return value is None or _count(value)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _text_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _numbers_by_name(value: Any) -> bool:
    return isinstance(value, dict) and all(_number_or_none(v) for v in value.values())


def _table(value: Any) -> bool:
    return isinstance(value, dict)


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _status(value: Any) -> bool:
    return value in END_STATUSES


Check = Callable[[Any], bool]

#: For each event type, the fields a reader relies on and what they must hold when present
#: (``t`` and ``elapsed_s`` for all). A missing field is the reader's business.
FIELD_TYPES: Final[dict[str, dict[str, Check]]] = {
    "phase": {"name": _text, "done": _number, "total": _number_or_none, "eta_s": _number_or_none},
    "start": {
        "config": _table,
        "total_steps": _count,
        "epochs": _count_or_none,
        "steps_per_epoch": _count_or_none,
        "device": _text,
        "versions": _table,
        "resumed_from_step": _count,
    },
    "step": {
        "step": _count,
        "epoch": _count,
        "loss": _number_or_none,
        "loss_ema": _number_or_none,
        "lr": _numbers_by_name,
        "lr_d": _numbers_by_name,
        "samples_per_s": _number_or_none,
        "vram_gb": _number_or_none,
        "eta_s": _number_or_none,
    },
    "epoch_end": {
        "epoch": _count,
        "step": _count,
        "loss_mean": _number_or_none,
        "snapshot": _text_or_none,
    },
    "sample": {"epoch": _count_or_none, "step": _count, "images": _texts},
    "info": {"message": _text, "id": _text_or_none},
    "warning": {"message": _text, "id": _text_or_none},
    "error": {"message": _text, "id": _text_or_none},
    "end": {"status": _status, "step": _count, "final": _text_or_none, "message": _text},
}
_EVERY_EVENT: Final[dict[str, Check]] = {"t": _number, "elapsed_s": _number}


def well_typed(event: dict[str, Any]) -> bool:
    """Whether every field the readers use holds what the writer writes."""
    for checks in (_EVERY_EVENT, FIELD_TYPES[event["type"]]):
        for name, check in checks.items():
            if name in event and not check(event[name]):
                return False
    return True


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """Every complete event in the file (a torn last line is skipped), as a list: for the
    small files of tests and short runs; readers of a whole run use ``iter_events``."""
    return EventReader(Path(path)).read_new()


def iter_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """Every complete event in the file, one at a time (a torn last line is skipped)."""
    return EventReader(Path(path)).iter_new()


TAIL_BLOCK = 64 * 1024


def repair_torn_tail(path: str | Path) -> int:
    """Cut a torn last line (a trainer killed in the middle of an append), so the next event
    starts a line of its own instead of being glued to the fragment; the bytes removed."""
    try:
        handle = open(path, "r+b")  # noqa: SIM115 - closed below
    except (FileNotFoundError, IsADirectoryError):
        return 0
    with handle:
        size = end = handle.seek(0, os.SEEK_END)
        while end > 0:
            start = max(0, end - TAIL_BLOCK)
            handle.seek(start)
            chunk = handle.read(end - start)
            if end == size and chunk.endswith(b"\n"):
                return 0
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                end = start + newline + 1
                break
            end = start
        handle.truncate(end)
        return size - end


def last_event(path: str | Path) -> dict[str, Any] | None:
    """The file's last complete event, read from its tail."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BLOCK))
            lines = handle.read().split(b"\n")
    except OSError:
        return None
    for line in reversed(lines):
        event = parse_line(line)
        if event is not None:
            return event
    return None
