""" "This name already holds a run": resume it, start over, or train under a new name.

Shown by the finish step when ``prepare_run`` raises ``RunExists``; dismisses with
``("resume", "")``, ``("over", "")``, ``("name", NEW)`` or None (Esc). Resume is offered
only when the run has a saved state (``runs.preflight.OldRun.can_resume``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from tuilora.config import output_name_problem
from tuilora.runs.preflight import OldRun, describe
from tuilora.screens.dialogs import DIALOG_CSS

Choice = tuple[str, str]


class ExistingRunDialog(ModalScreen[Choice | None]):
    DEFAULT_CSS = DIALOG_CSS.replace("{name}", "ExistingRunDialog")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, root: Path, old: OldRun) -> None:
        super().__init__()
        self.root = root
        self.old = old

    def compose(self) -> ComposeResult:
        with Vertical(id="existing-box", classes="dialog"):
            yield Static(f"{self.root.name} already holds a run", classes="dialog-title")
            what = describe(self.old.status)
            resume = f"; resume continues it from step {self.old.status.resumable_step}"
            yield Static(
                f"It is {what}{resume if self.old.can_resume else ''}. Start over replaces its"
                " files (nothing else in the folder).",
                classes="help",
            )
            with Horizontal(classes="buttons"):
                if self.old.can_resume:
                    yield Button("Resume", id="resume", variant="primary", compact=True)
                yield Button("Start over", id="over", variant="error", compact=True)
                yield Button("Cancel", id="cancel", compact=True)
            yield Static("Or train under a new name (Enter):", classes="prompt")
            yield Input(placeholder="new LoRA name", id="new-name", compact=True)
            yield Static("", id="name-problem", classes="error")

    def on_mount(self) -> None:
        first = "#resume" if self.old.can_resume else "#new-name"
        self.query_one(first).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self.dismiss((str(event.button.id), ""))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        name = event.value.strip()
        problem = output_name_problem(name)
        if problem:
            self.query_one("#name-problem", Static).update(problem)
            return
        self.dismiss(("name", name))

    def action_cancel(self) -> None:
        self.dismiss(None)
