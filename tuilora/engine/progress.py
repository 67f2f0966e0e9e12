"""Headless progress on the console (``engine.console``): a rich bar on a terminal, a plain
line every few percent otherwise; phases before step 1 the same way."""

from __future__ import annotations

from typing import Any

from tuilora.engine import console
from tuilora.runs.phases import clock_text, describe_phase

#: Without a terminal, a counted phase prints a line at most this often (seconds of ETA are
#: not worth a line each).
PLAIN_PHASE_EVERY = 0.25


def _format_ld(lr_d: dict[str, float] | None) -> str:
    if not lr_d:
        return ""
    return " lr*d " + "/".join(f"{value:.2e}" for value in lr_d.values())


def _rich_bar(label: str, *columns: Any) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as RichProgress

    return RichProgress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        *columns,
        TimeRemainingColumn(),
        console=Console(file=console.stream()),
        transient=False,
    )


class PhaseDisplay:
    """The phases before step 1: one line per phase, with its count and ETA as it goes."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.tty = enabled and console.stream().isatty()
        self._name = ""
        self._shown_fraction = 0.0

    def show(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        name = str(event.get("name"))
        done, total = event.get("done"), event.get("total")
        fraction = done / total if isinstance(done, int) and isinstance(total, int) and total else 0
        if name != self._name:
            self._name, self._shown_fraction = name, 0.0
            console.say(f"{describe_phase(event)} …" if not done else describe_phase(event))
        elif fraction - self._shown_fraction >= PLAIN_PHASE_EVERY or (fraction == 1 and done):
            self._shown_fraction = fraction
            console.say(describe_phase(event))


class Progress:
    def __init__(self, total: int, initial: int, *, enabled: bool = True) -> None:
        self.total = total
        self.enabled = enabled
        self.tty = enabled and console.stream().isatty()
        self._bar: Any = None
        self._task: Any = None
        self._every = max(1, total // 20)
        if self.tty:
            from rich.progress import TextColumn

            self._bar = _rich_bar("training", TextColumn("{task.fields[info]}"))
            self._bar.start()
            self._task = self._bar.add_task("train", total=total, completed=initial, info="")
            console.set_live(self._bar)

    def update(
        self,
        step: int,
        epoch: int,
        loss: float,
        lr_d: dict[str, float] | None,
        samples_per_s: float,
        eta_s: float,
    ) -> None:
        if not self.enabled:
            return
        info = f"epoch {epoch} loss {loss:.4f}{_format_ld(lr_d)} {samples_per_s:.1f} img/s"
        if self._bar is not None:  # short: at 80 columns the bar needs its room
            self._bar.update(self._task, completed=step, info=f"ep {epoch} loss {loss:.4f}")
        elif step % self._every == 0 or step == self.total:
            console.say(f"step {step}/{self.total} {info} eta {clock_text(eta_s)}")

    def note(self, message: str) -> None:
        if self.enabled:
            console.say(message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            console.set_live(None)
            self._bar = None
