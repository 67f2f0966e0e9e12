"""Modal dialogs: the key help (? / F1) and "quit the wizard?"."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

KEYS = (
    ("Tab / Shift+Tab", "next / previous field"),
    ("↑ ↓", "move in a list or table"),
    ("Enter / Space", "choose; on a review row: edit it"),
    ("→", "accept a path completion"),
    ("Ctrl+N", "next step (also the Next button)"),
    ("Esc", "previous step; answers are kept"),
    ("Delete", "review: give a field back to the advice"),
    ("Ctrl+S / Ctrl+T", "finish: save the file / train now"),
    ("Tab into Advice", "each value shows why (rules, G-ids)"),
    ("? / F1", "this help"),
    ("Ctrl+Q / Ctrl+C", "quit (asks first mid-wizard)"),
)


def keys_table() -> Table:
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for key, what in KEYS:
        table.add_row(key, what)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "close", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="dialog"):
            yield Static("Keys", classes="dialog-title")
            yield Static(keys_table())
            yield Static(
                "The advice follows the community LoRA guide; G-ids name its sections"
                " (tuilora advise --explain FIELD prints the same reasons).",
                classes="help",
            )
            yield Button("Close", id="close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#close").focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)


class ConfirmQuit(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Quit"),
        Binding("n,escape", "answer(False)", "Stay"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-box", classes="dialog"):
            yield Static("Quit the wizard?", classes="dialog-title")
            yield Static("Your answers are kept and offered next time.", classes="help")
            with Horizontal(classes="buttons"):
                yield Button("Quit (y)", id="yes", variant="error", compact=True)
                yield Button("Stay (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no").focus()

    def action_answer(self, quit_app: bool) -> None:
        self.dismiss(quit_app)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")
