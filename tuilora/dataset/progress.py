"""A one-line progress bar on stderr for a scan that takes more than a second.

Only on a terminal (a pipe or a log file gets nothing), drawn with ``\\r`` so it stays on
one line, and erased when the scan ends so the report starts on a clean line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Final, TextIO

# A scan shorter than this shows no bar: it would only flicker.
SHOW_AFTER_S: Final = 1.0
# Redraws at most this often: a terminal write per chunk of 32 images would cost more
# than it shows.
REDRAW_S: Final = 0.1
WIDTH: Final = 30


class ProgressBar:
    """``bar(done, total)`` as the scan's progress callback; ``bar.close()`` at the end."""

    def __init__(
        self,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        label: str = "Checking images",
    ) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._clock = clock
        self._label = label
        self._start = clock()
        self._drawn_at: float | None = None
        self._enabled = self._stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self._enabled or total <= 0:
            return
        now = self._clock()
        if now - self._start < SHOW_AFTER_S:
            return
        if self._drawn_at is not None and now - self._drawn_at < REDRAW_S and done < total:
            return
        filled = WIDTH * done // total
        bar = "█" * filled + "░" * (WIDTH - filled)
        self._stream.write(f"\r{self._label} {bar} {done:,}/{total:,}")
        self._stream.flush()
        self._drawn_at = now

    def close(self) -> None:
        """Erase the bar (if it was drawn)."""
        if self._drawn_at is not None:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._drawn_at = None
