"""The one state machine of a run, read by ``runs``, ``watch``, ``stop``, the monitor, the
wizard and ``train`` itself (docs/monitor.md has the table).

::

    waiting ──▶ loading ──▶ running ──▶ finished | stopped | diverged | oom | crashed
                   │
                   └──▶ stopped (before step 1: nothing to resume) | failed-to-start | oom
                        | crashed

    stopped / crashed / diverged / oom ──(train --resume, when a state is saved)──▶ loading

The trainer writes the transitions as events (``phase`` while loading, ``start`` when the
first step begins, ``end`` with the final status); a run whose trainer is gone without an
``end`` event is ``crashed``. Only the events after the last ``end`` belong to the session
in progress, so a resumed run is "loading" / "running" again although its file still holds
the earlier session's ``end``; a resume that cannot start removes its events again
(``runs.begin``), so the run stays exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from tuilora.runs.events import END_STATUSES

STATES: Final = (
    "waiting",
    "loading",
    "running",
    "finished",
    "stopped",
    "diverged",
    "oom",
    "crashed",
    "failed-to-start",
)
#: The trainer is at work in these (``stop`` applies, the monitor shows an ETA).
LIVE: Final = ("loading", "running")
#: The states a ``tuilora watch --plain`` or ``stop`` ends with exit 0.
GOOD_ENDS: Final = ("finished", "stopped")
#: (from, what happens, to): the table docs/monitor.md shows; tests walk every row.
TRANSITIONS: Final = (
    ("waiting", "the trainer takes the run's lock and writes its pid", "loading"),
    ("loading", "the first step begins (`start` event)", "running"),
    ("loading", "stop requested (Ctrl+C, `tuilora stop`, monitor `s`)", "stopped"),
    ("loading", "the model, state or data cannot be loaded", "failed-to-start"),
    ("loading", "out of memory while loading or caching", "oom"),
    ("loading", "the trainer is killed", "crashed"),
    ("running", "all steps done; the final LoRA is saved", "finished"),
    ("running", "stop requested: state and LoRA are saved", "stopped"),
    ("running", "the loss becomes NaN/inf", "diverged"),
    ("running", "out of GPU memory", "oom"),
    ("running", "an error, or the trainer is killed", "crashed"),
    ("stopped / crashed / diverged / oom", "`train --resume` (a state is saved)", "loading"),
    ("any ended state", "`train --force`: the old run's own files are removed", "loading"),
)


@dataclass
class Summary:
    """What the state needs from a run's events, fed one event at a time (the monitor feeds
    it as it tails the file; ``runs`` feeds the head and tail of long files)."""

    end: dict[str, Any] | None = None  # the last end event
    after_end: int = 0  # events written since it (the session in progress)
    started: bool = False  # a start or step event since the last end
    phase: dict[str, Any] | None = None  # the latest phase of the session, before its start
    ever_stepped: bool = False  # a step event anywhere: the run trained at least once
    elapsed_s: float | None = None
    events: int = 0
    _legacy_closed: float = field(default=0.0, repr=False)
    _legacy_t0: float | None = field(default=None, repr=False)

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        self.events += 1
        self._elapsed(event)
        if kind == "end":
            self.end, self.after_end, self.started, self.phase = event, 0, False, None
            return
        self.after_end += 1
        if kind in ("start", "step"):
            self.started = True
            self.phase = None
        if kind == "step":
            self.ever_stepped = True
        elif kind == "phase" and not self.started:
            self.phase = event

    def _elapsed(self, event: dict[str, Any]) -> None:
        value = event.get("elapsed_s")
        if isinstance(value, int | float):
            self.elapsed_s = float(value)
            return
        t = event.get("t")  # events written before elapsed_s: sum the sessions' spans
        if not isinstance(t, int | float):
            return
        if self._legacy_t0 is None:
            self._legacy_t0 = float(t)
        self.elapsed_s = self._legacy_closed + float(t) - self._legacy_t0
        if event.get("type") == "end":
            self._legacy_closed, self._legacy_t0 = self.elapsed_s, None


def summarize(events: Iterable[dict[str, Any]]) -> Summary:
    summary = Summary()
    for event in events:
        summary.feed(event)
    return summary


def run_state(summary: Summary, *, trainer_alive: bool, pid_file: bool = False) -> str:
    """The run's state from its events and whether its trainer (verified, ``runs.trainer``)
    is alive. ``pid_file``: a pid file exists (a trainer started, maybe before any event)."""
    if summary.after_end == 0:
        if summary.end is not None:
            status = str(summary.end.get("status"))
            return status if status in END_STATUSES else "crashed"
        if trainer_alive:
            return "loading"
        return "crashed" if pid_file else "waiting"
    if not trainer_alive:
        return "crashed"
    return "running" if summary.started else "loading"
