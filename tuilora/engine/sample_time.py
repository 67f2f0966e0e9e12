"""How long ``tuilora sample`` will take, said before it starts, and one progress bar.

The estimate comes from the machine itself: one image with 1 denoising step and one with 3
on the run's model at the grid's size (with CFG, as every cell), so the time per step and
the fixed cost per image (text encoding, VAE decode) are measured, not guessed. On a CPU,
where a grid at the default 30 steps can take many minutes, the default step count is
lowered so the whole job stays near ``CPU_BUDGET_S`` — unless ``--steps`` was given — and
the command says so, and how to ask for more.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tuilora.engine import console
from tuilora.runs.phases import clock_text

CPU_BUDGET_S: Final = 100.0
MIN_CPU_STEPS: Final = 8


@dataclass(frozen=True)
class Timing:
    per_step_s: float
    per_image_s: float  # the fixed part: prompts, VAE decode

    def cell_s(self, steps: int) -> float:
        return self.per_image_s + steps * self.per_step_s


def measure(job: Any, lora_file: Path) -> Timing:
    """Time one image of 1 and one of 3 steps with ``lora_file`` applied, as the grid's
    cells are made (the LoRA's modules cost time of their own on every layer)."""
    from tuilora.engine.grids import LoRAStrengths

    lora = LoRAStrengths(job.model, job.config, job.device)
    try:
        lora.load(lora_file)

        def seconds(steps: int) -> float:
            started = time.perf_counter()
            dataclasses.replace(job, item=dataclasses.replace(job.item, steps=steps)).cell(
                lora, 1.0, 1.0
            )
            return time.perf_counter() - started

        seconds(1)  # warm-up: first calls allocate and pick kernels
        one, three = seconds(1), seconds(3)
    finally:
        lora.remove()
    per_step = max((three - one) / 2, 1e-4)
    return Timing(per_step_s=per_step, per_image_s=max(one - per_step, 0.0))


def cpu_steps(timing: Timing, cells: int, wanted: int) -> int:
    """The most steps (at most ``wanted``) that keep ``cells`` images near the CPU budget."""
    fits = (CPU_BUDGET_S / max(cells, 1) - timing.per_image_s) / timing.per_step_s
    return min(wanted, max(MIN_CPU_STEPS, math.floor(fits)))


class CellProgress:
    """One bar over every cell of every grid, with the time left (from the estimate until
    the first cell is done, then from the cells' own pace); a line per cell without a
    terminal. ``__call__`` is ``GridJob.report``: called once before each cell."""

    def __init__(
        self,
        total: int,
        estimate_s: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.estimate_s = estimate_s
        self.done = -1
        self._clock = clock
        self._started = clock()
        self._bar: Any = None
        if console.stream().isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("[bold]sampling"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                console=Console(file=console.stream()),
            )
            self._bar.start()
            self._task = self._bar.add_task("", total=total)
            console.set_live(self._bar)

    def left_s(self) -> float | None:
        """The time left: the cells' own pace once one is done, before that the estimate."""
        if self.done > 0:
            pace = (self._clock() - self._started) / self.done
            return pace * (self.total - self.done)
        return self.estimate_s

    def __call__(self, message: str) -> None:
        self.done += 1
        left = self.left_s()
        eta = f"about {clock_text(left)} left" if left is not None else ""
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, description=eta)
            return
        console.say(f"cell {self.done + 1}/{self.total}: {message}" + (f", {eta}" if eta else ""))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.total)
            self._bar.stop()
            console.set_live(None)
            self._bar = None
