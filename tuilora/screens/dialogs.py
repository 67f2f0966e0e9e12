"""Modal dialogs: the key help of the screen underneath (F1 / ?), and yes/no questions.

Every screen says its own keys (``help_keys``), so F1 on the monitor lists the monitor's
keys and on the checklist the checklist's; ``show_help`` is what both apps bind F1 to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from rich.table import Table
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

Keys = Sequence[tuple[str, str]]

#: Keys every screen of the wizard app has.
COMMON_KEYS: Keys = (
    ("F1 / ?", "this help (Esc closes it)"),
    ("Ctrl+Q / Ctrl+C", "quit (asks first mid-wizard; a started training keeps running)"),
)


@dataclass(frozen=True)
class KeyHelp:
    """What F1 shows for one screen: a title, its keys, and a closing note."""

    title: str
    keys: Keys
    note: str = ""
    common: Keys = field(default=COMMON_KEYS)


@runtime_checkable
class HasKeyHelp(Protocol):
    def key_help(self) -> KeyHelp: ...


WIZARD_NOTE = (
    "The advice follows the community LoRA guide; G-ids name its sections"
    " (tuilora advise --explain FIELD prints the same reasons)."
)


def keys_table(keys: Keys) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 1), expand=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(ratio=1)
    for key, what in keys:
        table.add_row(key, what)
    return table


def show_help(app: App[Any]) -> None:
    """Push the help of the screen on top (nothing when the help is already showing)."""
    screen = app.screen
    if isinstance(screen, HelpScreen):
        return
    if isinstance(screen, HasKeyHelp):
        app.push_screen(HelpScreen(screen.key_help()))
    else:  # a dialog: its keys are on its buttons
        app.push_screen(HelpScreen(KeyHelp("Keys", (("Esc", "close this dialog"),))))


#: Dialog boxes: centred, as wide as the text needs up to most of the terminal.
DIALOG_CSS = """
{name} { align: center middle; }
{name} .dialog {
    width: 80%; min-width: 60; max-width: 96; height: auto; max-height: 90%;
    border: thick $primary; background: $surface; padding: 0 1;
}
{name} .dialog-title { text-style: bold; margin: 0 0 1 0; }
{name} .help { color: $text-muted; }
{name} .buttons { height: auto; margin: 1 0 0 0; }
{name} .buttons Button { margin: 0 2 0 0; }
"""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = DIALOG_CSS.replace("{name}", "HelpScreen")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "close", "Close"),
    ]

    def __init__(self, help: KeyHelp) -> None:
        super().__init__()
        self.help = help

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="dialog"):
            yield Static(f"Keys: {self.help.title}", classes="dialog-title")
            yield Static(keys_table([*self.help.keys, *self.help.common]))
            if self.help.note:
                yield Static(self.help.note, classes="help")
            yield Button("Close", id="close", compact=True)

    def on_mount(self) -> None:
        # Focus Close without scrolling to it: a help taller than the screen (80x24) must
        # open at its title, not at its end.
        self.query_one("#close").focus(scroll_visible=False)

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)


class Confirm(ModalScreen[bool]):
    """A yes/no question; y answers yes, n or Esc no (the safe answer has the focus)."""

    DEFAULT_CSS = DIALOG_CSS.replace("{name}", "Confirm")

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, text: str, *, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question = question
        self.text = text
        self.yes_label = yes
        self.no_label = no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="dialog"):
            yield Static(self.question, classes="dialog-title")
            yield Static(self.text, classes="help")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes_label} (y)", id="yes", variant="error", compact=True)
                yield Button(f"{self.no_label} (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no").focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")


class ConfirmQuit(Confirm):
    def __init__(self) -> None:
        super().__init__(
            "Quit the wizard?",
            "Your answers are kept and offered next time.",
            yes="Quit",
            no="Stay",
        )
