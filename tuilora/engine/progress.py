"""Headless progress: a rich bar on a terminal, a plain line every few percent otherwise."""

from __future__ import annotations

import sys
from typing import Any


def _format_ld(lr_d: dict[str, float] | None) -> str:
    if not lr_d:
        return ""
    return " lr*d " + "/".join(f"{value:.2e}" for value in lr_d.values())


class Progress:
    def __init__(self, total: int, initial: int, *, enabled: bool = True) -> None:
        self.total = total
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._every = max(1, total // 20)
        if self.tty:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=total, completed=initial, info="")

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
        if self._bar is not None:
            self._bar.update(self._task, completed=step, info=info)
        elif step % self._every == 0 or step == self.total:
            print(f"step {step}/{self.total} {info} eta {eta_s:.0f}s", file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(message)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
