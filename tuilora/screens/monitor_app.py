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

from tuilora.runs.lifecycle import LIVE
from tuilora.screens.dialogs import show_help
from tuilora.screens.marks import FOCUS_CSS
from tuilora.screens.monitor import MonitorScreen

#: How long a finished run stays on screen before `close_when_done` leaves.
CLOSE_DELAY_S = 2.0


class MonitorApp(App[int]):
    TITLE = "tuilora monitor"
    CSS = FOCUS_CSS
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c,ctrl+q", "leave", "Leave", show=False, priority=True),
        Binding("f1", "help", "Help", priority=True),
        Binding("question_mark", "help", "Help", show=False),
    ]

    def __init__(
        self,
        run_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        close_when_done: bool = False,
    ) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.monitor = MonitorScreen(self.run_dir, clock=clock)
        self.close_when_done = close_when_done
        self._done_since: float | None = None

    def on_mount(self) -> None:
        self.push_screen(self.monitor, lambda _: self.exit(0))
        if self.close_when_done:
            self.set_interval(0.5, self._close_if_done)

    def _close_if_done(self) -> None:
        """For `tuilora demo`: leave on our own a moment after the run has ended."""
        if self.monitor.state in (*LIVE, "waiting"):
            return
        now = time.monotonic()
        if self._done_since is None:
            self._done_since = now
        elif now - self._done_since >= CLOSE_DELAY_S:
            self.exit(0)

    def action_leave(self) -> None:
        self.exit(0)

    def action_help(self) -> None:
        show_help(self)


def run_monitor(run_dir: Path, *, close_when_done: bool = False) -> int:
    """Show the monitor on ``run_dir`` until the user leaves (or, with ``close_when_done``,
    shortly after the run ends); 0 (leaving stops nothing)."""
    app = MonitorApp(run_dir, close_when_done=close_when_done)
    app.run()
    if app.return_code:  # the app itself failed (its traceback is already printed)
        return app.return_code
    state = app.monitor.state
    if state in (*LIVE, "waiting"):
        print(
            f"left the monitor; {run_dir.name} keeps training."
            f" Come back with: tuilora watch {run_dir}",
            file=sys.stdout,
        )
    return 0


def follow_training(config_path: Path, run_dir: Path) -> int:
    """Train ``config_path`` in a child process and follow it here until it ends
    (``tuilora demo``, DESIGN §6.7); the exit code of the training."""
    import subprocess

    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "train.log", "ab") as log:  # where a detached run logs, too
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tuilora",
                "train",
                str(config_path),
                "--force",
                "--no-progress",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        run_monitor(run_dir, close_when_done=True)
        if child.poll() is None:
            print("waiting for the training to finish ...", file=sys.stderr, flush=True)
        return child.wait()
