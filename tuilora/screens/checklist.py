"""The overfitting checklist (DESIGN §8): the guide's test procedure, ticked off step by step.

A self-contained screen the app pushes from the monitor or "open a run":
``app.push_screen(ChecklistScreen(Path("runs/aria")), callback)``. The left column walks the
guide's procedure (per-epoch grid, strength 1.0, Unet/TE split, other checkpoints and
objects); the right column shows the findings, the snapshot to prefer and the config diff,
recomputed on every change. "Start next run" writes the next run's folder (its config and
``lineage.json``) and launches ``python -m tuilora train CONFIG --detach``; the screen then
posts ``NextRunStarted`` and dismisses with the new run's folder.

The run is read in a worker thread (events files can be large); diagnosing is pure and fast,
so it runs on each change in the UI thread.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.validation import Integer, Number
from textual.widgets import Button, Checkbox, Footer, Input, RadioSet, Static

from tuilora.advisor.diagnose import Diagnosis, Observations
from tuilora.advisor.diagnose_inputs import DiagnoseInput, load_run_input, run_diagnosis
from tuilora.advisor.diagnose_output import header_for, start_files
from tuilora.advisor.diagnose_render import (
    changes_text,
    findings_text,
    grid_hint,
    run_state,
    snapshot_text,
)
from tuilora.errors import UserError
from tuilora.screens.dialogs import Confirm, KeyHelp
from tuilora.screens.marks import Check, Choices, Radio
from tuilora.wizard.fields import short_path

Launcher = Callable[[Sequence[str]], Any]

#: The strength answers in the order the radio buttons show them.
STRENGTH_CHOICES: tuple[tuple[str, str], ...] = (
    ("ok", "works at 1.0"),
    ("lower", "needs a lower strength"),
    ("higher", "needs a higher strength"),
    ("invisible", "barely visible"),
)


def launch_detached(argv: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start the trainer without tying it to the TUI's terminal (it detaches itself too)."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


class ChecklistScreen(Screen[Path | None]):
    """Walk the checklist for ``run_dir``; dismisses with the next run's folder or None."""

    DEFAULT_CSS = """
    ChecklistScreen #title { height: auto; padding: 0 1; background: $panel; }
    ChecklistScreen #body { height: 1fr; }
    ChecklistScreen #steps {
        width: 45%; min-width: 38; max-width: 60; padding: 0 1;
        border-right: solid $panel-lighten-2;
    }
    ChecklistScreen #result { width: 1fr; padding: 0 1; }
    ChecklistScreen .step { text-style: bold; margin-top: 1; }
    ChecklistScreen .hint { color: $text-muted; }
    ChecklistScreen Input { width: 1fr; }
    ChecklistScreen #split { height: auto; }
    ChecklistScreen #split Input { width: 1fr; }
    ChecklistScreen RadioSet { width: 1fr; }
    ChecklistScreen #start { margin-top: 1; }
    ChecklistScreen #status { color: $warning; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+s", "start", "Start next run"),
    ]
    KEYS = (
        ("Tab / Shift+Tab", "next / previous field; the findings on the right follow"),
        ("↑ ↓, Space", "choose how strength 1.0 looked; Space ticks a [ ] box"),
        ("typing", "the best epoch, the Unet / TE strengths, an unwanted object"),
        ("Ctrl+S", "start the next run with the changes shown (asks first)"),
        ("Esc", "back to the monitor"),
        ("F1 / ?", "this help"),
    )

    @dataclass
    class NextRunStarted(Message):
        """The next run's folder was written and its training launched."""

        run_dir: Path
        config: Path

    def __init__(self, run_dir: str | Path, *, launcher: Launcher | None = None) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self._launcher: Launcher = launcher or launch_detached
        self._source: DiagnoseInput | None = None
        self.diagnosis: Diagnosis | None = None
        self.observations = Observations()
        #: The right column as plain text (what a reader of the screen sees, for tests).
        self.summary = ""

    # ------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(f"Checklist: {self.run_dir.name} (reading the run...)", id="title")
        with Horizontal(id="body"):
            with VerticalScroll(id="steps"):
                yield Static("1. Make the per-epoch grid", classes="step")
                yield Static("", id="grid-hint", classes="hint")
                yield Input(
                    placeholder="epoch that looked best",
                    id="epoch",
                    type="integer",
                    validators=[Integer(minimum=1)],
                    compact=True,
                )
                yield Static("2. Test at strength 1.0", classes="step")
                with Choices(id="strength", compact=True):
                    for value, label in STRENGTH_CHOICES:
                        yield Radio(label, name=value)
                yield Check("pure noise output", id="noise", compact=True)
                yield Static("3. Unet / TE strengths that looked right", classes="step")
                with Horizontal(id="split"):
                    yield Input(
                        placeholder="Unet",
                        id="unet",
                        type="number",
                        validators=[Number(minimum=0.01, maximum=4)],
                        compact=True,
                    )
                    yield Input(
                        placeholder="TE",
                        id="te",
                        type="number",
                        validators=[Number(minimum=0.01, maximum=4)],
                        compact=True,
                    )
                yield Static("4. Other checkpoints, odd objects", classes="step")
                yield Check("overfit from the first epoch", id="overfit", compact=True)
                yield Check("works on one checkpoint only", id="one-checkpoint", compact=True)
                yield Input(placeholder="persistent object, e.g. bag", id="object", compact=True)
                yield Button("Start next run", id="start", variant="primary", disabled=True)
                yield Static("", id="status")
            with VerticalScroll(id="result"):
                yield Static("", id="findings")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#epoch", Input).focus()  # the procedure starts at its first step
        self.load_run()

    @work(thread=True, exclusive=True, group="checklist-load", exit_on_error=False)
    def load_run(self) -> None:
        try:
            source = load_run_input(self.run_dir)
        except UserError as exc:
            self.app.call_from_thread(self._show_error, str(exc))
            return
        self.app.call_from_thread(self._loaded, source)

    def _loaded(self, source: DiagnoseInput) -> None:
        self._source = source
        state = run_state(source.metrics)
        self.query_one("#title", Static).update(f"Checklist: {self.run_dir.name} ({state})")
        self.query_one("#grid-hint", Static).update(grid_hint(source))
        self.query_one("#start", Button).disabled = False
        self.refresh_diagnosis()
        self.refresh_bindings()

    def _show_error(self, message: str) -> None:
        self.summary = message
        self.query_one("#title", Static).update(f"Checklist: {self.run_dir.name}")
        self.query_one("#findings", Static).update(Text(message, style="bold red"))

    # ------------------------------------------------------------------------------------
    def read_observations(self) -> Observations:
        """What the widgets say now; a value that does not validate counts as not given."""
        strength_set = self.query_one("#strength", RadioSet)
        pressed = strength_set.pressed_button
        return Observations(
            strength=pressed.name if pressed is not None else None,
            unet=self._number("#unet"),
            te=self._number("#te"),
            noise=self.query_one("#noise", Checkbox).value,
            object=self.query_one("#object", Input).value.strip() or None,
            overfit_from_start=self.query_one("#overfit", Checkbox).value,
            one_checkpoint=self.query_one("#one-checkpoint", Checkbox).value,
            epoch=int(self._number("#epoch") or 0) or None,
        )

    def _number(self, selector: str) -> float | None:
        field = self.query_one(selector, Input)
        if not field.value.strip() or not field.is_valid:
            return None
        try:
            return float(field.value)
        except ValueError:
            return None

    def refresh_diagnosis(self) -> None:
        if self._source is None:
            return
        self.observations = self.read_observations()
        try:
            self.diagnosis = run_diagnosis(self._source, self.observations)
        except UserError as exc:
            self.query_one("#status", Static).update(str(exc))
            return
        self.query_one("#status", Static).update("")
        parts = [
            Text("Findings", style="bold underline"),
            findings_text(self.diagnosis),
            snapshot_text(self.diagnosis),
            Text(""),
            Text("Next run", style="bold underline"),
            changes_text(self.diagnosis),
        ]
        self.summary = "\n".join(part.plain for part in parts)
        self.query_one("#findings", Static).update(Group(*parts))

    def on_choices_chosen(self, event: Choices.Chosen) -> None:
        event.stop()
        self.focus_next()

    @on(Input.Changed)
    @on(Checkbox.Changed)
    @on(RadioSet.Changed)
    def _changed(self) -> None:
        self.refresh_diagnosis()

    # ------------------------------------------------------------------------------------
    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        self.action_start()

    def key_help(self) -> KeyHelp:
        return KeyHelp(
            f"checklist of {self.run_dir.name}",
            self.KEYS,
            "The steps follow the guide's test procedure (G-TEST); the next run's config is"
            " the run's own with the changes listed under Next run.",
            common=(),
        )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return self._source is not None and self.diagnosis is not None
        return True

    def action_start(self) -> None:
        """Ask first: starting a run writes a folder and uses the GPU for hours."""
        if self._source is None or self.diagnosis is None:
            return
        config = self.diagnosis.config
        target = short_path(config.output_dir) if config.output_dir else "a new run folder"
        self.app.push_screen(
            Confirm(
                "Start the next run now?",
                f"This writes {target} (its config.toml and lineage.json) and starts"
                " tuilora train in the background with the changes under Next run.",
                yes="Start",
                no="Not yet",
            ),
            self._start_confirmed,
        )

    def _start_confirmed(self, yes: bool | None) -> None:
        if yes:
            self.start_next_run()

    def start_next_run(self) -> None:
        if self._source is None or self.diagnosis is None:
            return
        header = header_for(["checklist", str(self.run_dir)], self._source)
        try:
            written = start_files(self.diagnosis, self.observations, self._source, header)
        except UserError as exc:
            self.query_one("#status", Static).update(str(exc))
            return
        argv = [sys.executable, "-m", "tuilora", "train", str(written.config), "--detach"]
        try:
            self._launcher(argv)
        except OSError as exc:
            self.query_one("#status", Static).update(f"could not start training: {exc}")
            return
        run_dir = written.config.parent
        self.post_message(self.NextRunStarted(run_dir=run_dir, config=written.config))
        self.dismiss(run_dir)

    def action_back(self) -> None:
        self.dismiss(None)
