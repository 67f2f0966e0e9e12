"""``tuilora watch RUN`` in a terminal: a small app that shows only the monitor screen.

Leaving the monitor (q, Ctrl+C, Ctrl+Q) ends this app and never the training: the trainer
is a separate process that only this app's reader follows. On the way out it prints how
to come back, since the screen with that hint is gone by then.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from tuilora.screens.monitor import MonitorScreen


class MonitorApp(App[int]):
    TITLE = "tuilora monitor"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "leave", "Leave", show=False, priority=True),
    ]

    def __init__(self, run_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.monitor = MonitorScreen(self.run_dir, clock=clock)

    def on_mount(self) -> None:
        self.push_screen(self.monitor, lambda _: self.exit(0))

    def action_leave(self) -> None:
        self.exit(0)


def run_monitor(run_dir: Path) -> int:
    """Show the monitor on ``run_dir`` until the user leaves; 0 (leaving stops nothing)."""
    app = MonitorApp(run_dir)
    app.run()
    if app.return_code:  # the app itself failed (its traceback is already printed)
        return app.return_code
    state = app.monitor.state
    if state in ("running", "waiting"):
        print(
            f"left the monitor; {run_dir.name} keeps training."
            f" Come back with: tuilora watch {run_dir}",
            file=sys.stdout,
        )
    return 0
