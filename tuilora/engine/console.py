"""tuilora's own output while a command trains or samples, apart from the libraries' noise.

``output_to_log(path)`` points file descriptors 1 and 2 at a log file for the duration —
so everything the training stack writes (Python warnings, library loggers, ``print`` calls
inside optimizers, C extensions, progress bars) lands in ``train.log`` — and keeps a
duplicate of the original stderr as *the* console: progress, tuilora's notices and the
summary go there through ``say`` and ``stream``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

_stream: TextIO | None = None
_live: Any = None  # a rich Progress on screen: lines go above it


def stream() -> TextIO:
    """Where tuilora's own output goes now (the terminal train was started in)."""
    return _stream if _stream is not None else sys.stderr


def say(text: str) -> None:
    if _live is not None:
        _live.console.print(text, markup=False, highlight=False)
    else:
        print(text, file=stream(), flush=True)


def set_live(bar: Any) -> None:
    global _live
    _live = bar


@contextlib.contextmanager
def output_to_log(path: Path) -> Iterator[TextIO]:
    """Send fds 1 and 2 to ``path`` (appending) and yield the console stream."""
    global _stream
    for handle in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            handle.flush()
    saved = (os.dup(1), os.dup(2))
    # Nested (the demo's log around train's): the console stays the terminal's.
    terminal = _stream.fileno() if _stream is not None else 2
    console = os.fdopen(os.dup(terminal), "w", buffering=1, encoding="utf-8", errors="replace")
    log_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    previous = _stream
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        _stream = console
        logging.captureWarnings(True)
        yield console
    finally:
        logging.captureWarnings(False)
        for handle in (sys.stdout, sys.stderr, console):
            with contextlib.suppress(Exception):
                handle.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log_fd):
            os.close(fd)
        _stream = previous
        console.close()
