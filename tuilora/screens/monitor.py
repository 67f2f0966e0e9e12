"""The live monitor (DESIGN §7): charts and state of one run, read from its events file.

``MonitorScreen(run_dir)`` is self-contained: the wizard app pushes it after starting a
run, ``tuilora watch`` shows it through ``monitor_app.run_monitor``. It only reads the run
folder (``events.jsonl`` and ``pid``), so it works on a live run, a finished one, a run
that has not written its first event yet, and after an SSH drop; it never owns the
training process. Leaving it (``q``) leaves the training running.

Reading: the first (possibly large) read of the events file happens in a worker thread;
after that a timer polls every ``POLL_S`` seconds, and a poll that finds the file the same
size costs one ``stat`` — nothing is redrawn until new events arrive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Button, Footer, Static

from tuilora.errors import UserError
from tuilora.runs.lifecycle import LIVE
from tuilora.runs.watch import send_stop
from tuilora.screens import monitor_text as mt
from tuilora.screens.dialogs import KeyHelp
from tuilora.screens.monitor_data import RunTail, RunView
from tuilora.wizard.fields import short_path

POLL_S = 0.5
MONITOR_KEYS = (
    ("s", "stop the training: asks first; the trainer saves its state and LoRA, then exits"),
    ("c", "the overfitting checklist for this run (Esc comes back)"),
    ("l", "log scale on both charts (the labels stay real values)"),
    ("i", "the newest sample image, drawn in the terminal (Esc closes it)"),
    ("q", "leave the monitor; the training keeps running"),
    ("F1 / ?", "this help"),
    ("Ctrl+Q / Ctrl+C", "quit tuilora; the training keeps running"),
)
MONITOR_NOTE = (
    "The monitor only reads the run folder: leaving it, closing the terminal or losing the"
    " SSH connection never stops the training. `tuilora watch RUN` comes back to it."
)
#: The pid is checked every this many idle polls (a crash leaves no event to read).
PID_EVERY = 4


class RunChart(Widget):
    """A legend row over a braille chart of the loss or the learning rate."""

    DEFAULT_CSS = "RunChart { height: 1fr; }"

    def __init__(self, kind: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.kind = kind
        self.view: RunView | None = None
        self.log_scale = False
        self._cache: tuple[tuple[int, int, int, bool], Text] | None = None

    def show(self, view: RunView, log: bool) -> None:
        self.view, self.log_scale = view, log
        self.refresh()

    def render(self) -> Text:
        width, height = self.content_size
        view = self.view
        if view is None:
            return Text("reading the events ..." if self.kind == "loss" else "", style="dim")
        key = (view.version, width, height, self.log_scale)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        legend = mt.loss_legend(view, self.log_scale) if self.kind == "loss" else mt.lr_legend(view)
        body_height = max(height - 1, 1)
        if self.kind == "loss":
            body = mt.loss_chart(view, width, body_height, self.log_scale)
        else:
            body = mt.lr_chart(view, width, body_height, self.log_scale)
        text = Text.assemble(legend, "\n", body, no_wrap=True, overflow="crop")
        self._cache = (key, text)
        return text


class ConfirmStop(ModalScreen[bool]):
    """Stop the training? (y / n); dismisses with the answer."""

    DEFAULT_CSS = """
    ConfirmStop { align: center middle; }
    ConfirmStop > Vertical {
        width: 60; height: auto; padding: 1 2; border: thick $error; background: $surface;
    }
    ConfirmStop #question { text-style: bold; }
    ConfirmStop Horizontal { height: auto; margin-top: 1; }
    ConfirmStop Button { margin-right: 2; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Stop"),
        Binding("n,escape", "answer(False)", "Keep training"),
    ]

    def __init__(self, name: str, pid: int | None, *, loading: bool = False) -> None:
        super().__init__()
        self.run_name = name
        self.pid = pid
        self.loading = loading

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Stop training {self.run_name}?", id="question")
            if self.loading:  # before its first step: nothing new to save
                yield Static(
                    f"The trainer (pid {self.pid}) is still loading: it stops at once; the"
                    " run is left as it was before this start."
                )
            else:
                yield Static(
                    f"The trainer (pid {self.pid}) saves its state and the current LoRA,"
                    " then exits; `tuilora train --resume` continues it later."
                )
            with Horizontal():
                yield Button("Stop (y)", id="yes", variant="error", compact=True)
                yield Button("Keep training (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")


class SampleView(ModalScreen[None]):
    """One sample image over the monitor; any of Esc, q, i closes it."""

    DEFAULT_CSS = """
    SampleView { align: center middle; }
    SampleView > Vertical { width: 90%; height: 90%; border: round $accent; }
    SampleView #sample-path { height: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,i", "close", "Close"),
    ]

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        from textual_image.widget import Image as TerminalImage

        with Vertical():
            yield Static(str(self.path), id="sample-path")
            yield TerminalImage(str(self.path), id="sample-image")

    def action_close(self) -> None:
        self.dismiss(None)


class MonitorScreen(Screen[None]):
    """Follow ``run_dir``: loss and lr charts, progress, files, warnings; stop and leave."""

    # The texts wrap (paths and the resume command must be read whole); the charts take
    # what is left, never less than their minimum.
    DEFAULT_CSS = """
    MonitorScreen { padding: 0 1; }
    MonitorScreen #status { height: auto; max-height: 3; }
    MonitorScreen #loss { height: 2fr; min-height: 6; }
    MonitorScreen #lr { height: 1fr; min-height: 4; max-height: 12; }
    MonitorScreen #files { height: auto; max-height: 3; }
    MonitorScreen #messages { height: auto; max-height: 6; }
    MonitorScreen #notice { height: auto; max-height: 3; color: $text-muted; }
    MonitorScreen #notice.said { color: $text; text-style: bold; }
    """

    #: How long a key's answer ("nothing to stop", ...) stays on the notice line.
    SAY_S = 6.0

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop", "Stop"),
        Binding("c", "checklist", "Checklist"),
        Binding("l", "toggle_log", "Log scale"),
        Binding("i", "show_sample", "Sample"),
        Binding("q", "leave", "Leave"),
    ]

    def __init__(self, run_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.tail = RunTail(self.run_dir)
        self.log_scale = False
        self.stopping = False
        self.loaded = False
        self._clock = clock
        self._idle_polls = 0
        self._state = "waiting"
        self._timer: Timer | None = None
        self._announced_end = False
        self._said = ""
        self._said_timer: Timer | None = None

    @property
    def view(self) -> RunView:
        return self.tail.view

    @property
    def state(self) -> str:
        return self._state

    def compose(self) -> ComposeResult:
        yield Static(Text(f"{self.run_dir.name}  reading the events ..."), id="status")
        yield RunChart("loss", id="loss")
        yield RunChart("lr", id="lr")
        yield Static("", id="files")
        yield Static("", id="messages")
        yield Static("", id="notice")
        yield Footer()

    def on_mount(self) -> None:
        self._initial_load()

    # ------------------------------------------------------------------ reading
    @work(thread=True, exclusive=True, group="monitor-load", exit_on_error=False)
    def _initial_load(self) -> None:
        """The first read (possibly 100,000 steps) off the UI thread."""
        self.tail.poll()
        state = self.tail.state()
        self.app.call_from_thread(self._loaded, state)

    def _loaded(self, state: str) -> None:
        self.loaded = True
        self._state = state
        self._announced_end = self.view.end is not None  # no toast for an old ending
        self._redraw()
        self._timer = self.set_interval(POLL_S, self.refresh_from_disk)

    def refresh_from_disk(self) -> None:
        """Read new events (if the file grew) and redraw what they changed."""
        if not self.loaded:
            return
        changed = self.tail.poll()
        self._idle_polls = 0 if changed else self._idle_polls + 1
        if changed or self._idle_polls % PID_EVERY == 0:
            state = self.tail.state()
            changed = changed or state != self._state
            self._state = state
        if changed:
            self._redraw()
        else:
            self._update_status()  # only the staleness hint can change

    def _redraw(self) -> None:
        view = self.view
        self._update_status()
        self.query_one("#loss", RunChart).show(view, self.log_scale)
        self.query_one("#lr", RunChart).show(view, self.log_scale)
        self.query_one("#files", Static).update(mt.files_lines(view, self.run_dir))
        self.query_one("#messages", Static).update(mt.messages_lines(view, 3, self.run_dir))
        if view.end is not None and not self._announced_end:
            self._announced_end = True
            self.stopping = False
            self.say(f"the run ended: {view.end.get('status')}")
        self._update_notice()
        self.refresh_bindings()  # the footer follows the run's state (no Stop once it ended)

    def _update_notice(self) -> None:
        notice = self.query_one("#notice", Static)
        default = mt.notice_line(self._state, self.view, self.run_dir, stopping=self.stopping)
        notice.update(self._said or default)
        notice.set_class(bool(self._said), "said")

    def say(self, message: str) -> None:
        """An answer to a key, on the notice line for a few seconds (toasts would cover the
        status lines and leave debris in some terminals)."""
        self._said = message
        if self._said_timer is not None:
            self._said_timer.stop()
        self._said_timer = self.set_timer(self.SAY_S, self._unsay)
        if self.is_mounted:
            self._update_notice()

    def _unsay(self) -> None:
        self._said = ""
        self._said_timer = None
        self._update_notice()

    def _update_status(self) -> None:
        lines = mt.status_lines(
            self.run_dir.name, self.view, self._state, now=self._clock(), stopping=self.stopping
        )
        self.query_one("#status", Static).update(lines)

    # ------------------------------------------------------------------ keys
    def key_help(self) -> KeyHelp:
        return KeyHelp(f"monitor of {self.run_dir.name}", MONITOR_KEYS, MONITOR_NOTE, common=())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers what works now: Stop only on a live run, Sample once there is
        an image (F1 lists every key)."""
        if action == "stop":
            return self._state in LIVE and not self.stopping
        if action == "show_sample":
            return bool(self.view.samples)
        return True

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        self._redraw()

    def action_leave(self) -> None:
        self.dismiss(None)

    def action_stop(self) -> None:
        if not self.loaded:
            return
        self._state = self.tail.state()
        if self._state not in LIVE:
            self.say(f"the run is not running ({self._state}): nothing to stop")
            return
        confirm = ConfirmStop(self.run_dir.name, self.tail.pid(), loading=self._state == "loading")
        self.app.push_screen(confirm, self._confirmed)

    def _confirmed(self, yes: bool | None) -> None:
        if yes:
            self._send_stop()

    @work(thread=True, exclusive=True, group="monitor-stop", exit_on_error=False)
    def _send_stop(self) -> None:
        try:
            pid = send_stop(self.run_dir)
        except UserError as exc:
            self.app.call_from_thread(self.say, str(exc))
            return
        self.app.call_from_thread(self._stop_sent, pid)

    def _stop_sent(self, pid: int) -> None:
        self.stopping = True
        self.say(f"asked pid {pid} to stop: it saves its state and LoRA first")
        self._redraw()

    def action_show_sample(self) -> None:
        """The newest sample image, drawn in the terminal (Sixel / Kitty graphics where the
        terminal has them, half-block characters elsewhere)."""
        if not self.view.samples:
            self.say("no sample images yet (they need sample_prompts in the config)")
            return
        self.app.push_screen(SampleView(Path(self.view.samples[-1])))

    def action_checklist(self) -> None:
        from tuilora.screens.checklist import ChecklistScreen

        self.app.push_screen(ChecklistScreen(self.run_dir), self._after_checklist)

    def _after_checklist(self, next_run: Path | None) -> None:
        """The checklist started the next run: follow that one instead."""
        if next_run is None:
            return
        self.say(f"following the next run: {short_path(next_run)}")
        self.run_dir = Path(next_run)
        self.tail = RunTail(self.run_dir)
        self.loaded = self.stopping = False
        if self._timer is not None:
            self._timer.stop()
        self._initial_load()
