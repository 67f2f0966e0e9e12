"""What the monitor knows about a run, built event by event (no Textual, no rendering).

``RunTail`` reads only the bytes appended to ``events.jsonl`` since the last read (a
``stat`` first, so an idle poll costs one system call) and feeds ``RunView``, which keeps
the curves as ``Series`` (for the charts) and the latest of everything else (for the text).
A file that shrank (a new run written over the folder) resets both.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuilora.runs.events import EventReader
from tuilora.runs.lifecycle import Summary
from tuilora.runs.status import state_of, trainer_pid
from tuilora.screens.charts import Series

#: The monitor shows the last few; older ones stay in events.jsonl and train.log.
MESSAGES_KEPT = 50


@dataclass
class RunView:
    """The run as the events so far describe it."""

    total_steps: int | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    device: str | None = None
    optimizer: str | None = None
    sampling: bool | None = None  # the config has sample prompts (None: no start event)
    resumed_from: int = 0
    loss: Series = field(default_factory=Series)
    loss_ema: Series = field(default_factory=Series)
    lr: dict[str, Series] = field(default_factory=dict)
    adaptive: bool = False  # lr × d was logged (Prodigy, DAdaptation)
    epoch_ends: list[tuple[int, int]] = field(default_factory=list)  # (step, epoch)
    last_step: dict[str, Any] = field(default_factory=dict)
    first_step: int | None = None
    snapshots: list[str] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    sample_epoch: int | None = None
    messages: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=MESSAGES_KEPT))
    infos: int = 0
    warnings: int = 0
    errors: int = 0
    nan_steps: int = 0
    end: dict[str, Any] | None = None
    started_t: float | None = None
    last_t: float | None = None
    events: int = 0
    version: int = 0  # bumped on every change, so widgets redraw only when it moves
    #: The run's lifecycle as the events tell it (runs.lifecycle: state, phase, elapsed).
    session: Summary = field(default_factory=Summary)

    def apply(self, events: Iterable[dict[str, Any]]) -> int:
        """Apply ``events`` (a list, or a stream read from the file); how many there were."""
        count = 0
        for event in events:
            count += 1
            self.session.feed(event)
            handler = _HANDLERS.get(str(event.get("type")))
            if handler is not None:
                handler(self, event)
            t = event.get("t")
            if isinstance(t, int | float):
                self.last_t = float(t)
                if self.started_t is None:
                    self.started_t = float(t)
            self.events += 1
        if count:
            self.version += 1
        return count

    # ------------------------------------------------------------------ derived values
    @property
    def step(self) -> int:
        return int(self.last_step.get("step", 0))

    @property
    def epoch(self) -> int | None:
        value = self.last_step.get("epoch")
        return int(value) if isinstance(value, int | float) else None

    @property
    def x_range(self) -> tuple[int, int]:
        first = self.loss.xs[0] if self.loss.xs else (self.first_step or 1)
        return first, max(self.step, first + 1)

    def epoch_marks(self) -> list[tuple[int, str]]:
        """Where each epoch after the first starts: (step, "e2")."""
        return [(step, f"e{epoch + 1}") for step, epoch in self.epoch_ends]

    def elapsed_s(self) -> float | None:
        """Training time (the time a run sat stopped is not in it)."""
        return self.session.elapsed_s

    @property
    def phase(self) -> dict[str, Any] | None:
        """The latest ``phase`` event while the run loads (None once it trains)."""
        return self.session.phase


def _on_start(view: RunView, event: dict[str, Any]) -> None:
    view.total_steps = _int(event.get("total_steps"))
    view.epochs = _int(event.get("epochs"))
    view.steps_per_epoch = _int(event.get("steps_per_epoch"))
    view.device = str(event["device"]) if event.get("device") else None
    config = _dict(event.get("config"))
    view.optimizer = str(config.get("optimizer_type")) if config.get("optimizer_type") else None
    view.sampling = bool(config.get("sample_prompts"))
    view.resumed_from = _int(event.get("resumed_from_step")) or 0
    view.end = None  # a resumed run goes on after its earlier end event
    if view.resumed_from:
        _truncate(view, view.resumed_from + 1)
        view.messages.append(("info", f"resumed at step {view.resumed_from}"))


def _on_step(view: RunView, event: dict[str, Any]) -> None:
    step = _int(event.get("step"))
    if step is None:
        return
    if view.last_step and step <= view.step:
        _truncate(view, step)
    if view.first_step is None:
        view.first_step = step
    loss = event.get("loss")
    if not isinstance(loss, int | float) or not math.isfinite(loss):
        view.nan_steps += 1
    view.loss.append(step, _float(loss))
    view.loss_ema.append(step, _float(event.get("loss_ema")))
    adaptive = isinstance(event.get("lr_d"), dict)
    view.adaptive = view.adaptive or adaptive
    rates = _dict(event.get("lr_d") if adaptive else event.get("lr"))
    for group, value in rates.items():
        view.lr.setdefault(str(group), Series()).append(step, _float(value))
    view.last_step = event


def _on_epoch_end(view: RunView, event: dict[str, Any]) -> None:
    step, epoch = _int(event.get("step")), _int(event.get("epoch"))
    if step is not None and epoch is not None:
        view.epoch_ends = [e for e in view.epoch_ends if e[0] < step] + [(step, epoch)]
    if event.get("snapshot"):
        view.snapshots.append(str(event["snapshot"]))


def _on_sample(view: RunView, event: dict[str, Any]) -> None:
    images = event.get("images")
    if isinstance(images, list) and images:
        view.samples = [str(i) for i in images]
        view.sample_epoch = _int(event.get("epoch"))


def _on_message(view: RunView, event: dict[str, Any]) -> None:
    kind = str(event.get("type"))
    view.messages.append((kind, str(event.get("message", ""))))
    if kind == "error":
        view.errors += 1
    elif kind == "warning":
        view.warnings += 1
    else:
        view.infos += 1


def _on_end(view: RunView, event: dict[str, Any]) -> None:
    view.end = event
    if event.get("message"):
        view.messages.append(("end", str(event["message"])))


_HANDLERS = {
    "start": _on_start,
    "step": _on_step,
    "epoch_end": _on_epoch_end,
    "sample": _on_sample,
    "info": _on_message,
    "warning": _on_message,
    "error": _on_message,
    "end": _on_end,
}


def _truncate(view: RunView, step: int) -> None:
    """Forget everything from ``step`` on: a resumed run writes those steps again."""
    for series in (view.loss, view.loss_ema, *view.lr.values()):
        series.truncate_from(step)
    view.epoch_ends = [e for e in view.epoch_ends if e[0] < step]


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


@dataclass
class RunTail:
    """Follows ``run_dir/events.jsonl`` from an offset; knows whether the trainer lives."""

    run_dir: Path
    view: RunView = field(default_factory=RunView)
    _reader: EventReader | None = None

    def __post_init__(self) -> None:
        self._reader = EventReader(self.events_path)

    @property
    def events_path(self) -> Path:
        return self.run_dir / "events.jsonl"

    def poll(self) -> bool:
        """Read what was appended since the last poll; True when the view changed."""
        assert self._reader is not None
        try:
            size = os.stat(self.events_path).st_size
        except OSError:
            return False
        if size < self._reader.offset:  # replaced by a new, shorter file: start over
            self._reader = EventReader(self.events_path)
            self.view = RunView()
        if size == self._reader.offset:
            return False
        applied = self.view.apply(self._reader.iter_new())
        return self._say_damage() or applied > 0

    _told: tuple[int, str] = (0, "")

    def _say_damage(self) -> bool:
        """A damaged or unreadable events file is said once in the messages, so the monitor
        never waits in silence on it (issue 17); True when something new was said."""
        assert self._reader is not None
        skipped, problem = self._reader.skipped, self._reader.problem
        said = False
        if problem and problem != self._told[1]:
            self.view.messages.append(("warning", problem))
            said = True
        if skipped and not self._told[0]:
            self.view.messages.append(
                ("warning", f"{self.events_path}: {skipped} line(s) are not events; skipped")
            )
            said = True
        self._told = (skipped or self._told[0], problem)
        return said

    def pid(self) -> int | None:
        """The verified trainer's pid (runs.trainer), None when no trainer lives."""
        return trainer_pid(self.run_dir)

    def state(self) -> str:
        """The run's state (runs.lifecycle): waiting, loading, running, or how it ended."""
        return state_of(self.run_dir, self.view.session)
