"""``phase`` events: what a trainer does before step 1, with progress and an ETA.

Loading the model and caching latents can take minutes; each phase is announced when it
begins and, when it has a count (latents 12/40), again at most every ``EVERY_S`` seconds
with an estimate of the time left. Between phases and between items the trainer asks
whether a stop was requested: a stop before step 1 ends the run as "stopped" at once
(nothing to save, nothing to resume).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

EVERY_S: Final = 0.5

#: The phases a trainer goes through, in order (not every run has every one); the monitor,
#: ``watch --plain`` and the console show their ``name`` as written.
PHASES: Final = (
    "starting",
    "checking the dataset",
    "loading libraries",
    "loading the model",
    "preparing the network",
    "reading the dataset",
    "caching latents",
    "caching text encoder outputs",
    "restoring the saved state",
)


class StopBeforeStart(Exception):
    """A stop request arrived before the first step."""


class PhaseReporter:
    def __init__(
        self,
        emit: Callable[..., Any],
        should_stop: Callable[[], bool] = lambda: False,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._emit = emit
        self._should_stop = should_stop
        self._clock = clock
        self.name = ""
        self.total: int | None = None
        self._began = 0.0
        self._last = 0.0

    def check_stop(self) -> None:
        if self._should_stop():
            raise StopBeforeStart(self.name)

    def begin(self, name: str, total: int | None = None) -> None:
        self.check_stop()
        self.name, self.total = name, total
        self._began = self._last = self._clock()
        self._emit("phase", name=name, done=0, total=total, eta_s=None)

    def advance(self, done: int) -> None:
        """``done`` of ``total`` items finished; emits when due (and at the last one)."""
        self.check_stop()
        now = self._clock()
        if now - self._last < EVERY_S and done != self.total:
            return
        self._last = now
        spent = now - self._began
        eta = None
        if self.total and 0 < done <= self.total:
            eta = round(spent / done * (self.total - done), 1)
        self._emit("phase", name=self.name, done=done, total=self.total, eta_s=eta)


def describe_phase(event: dict[str, Any]) -> str:
    """``caching latents 12/40, about 0:35 left`` (for watch, the console, the monitor)."""
    name = str(event.get("name") or "starting")
    done, total = event.get("done"), event.get("total")
    text = name
    if isinstance(total, int) and total > 0 and isinstance(done, int):
        text += f" {done}/{total}"
    eta = event.get("eta_s")
    if isinstance(eta, int | float) and eta > 0:
        text += f", about {clock_text(eta)} left"
    return text


def clock_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
