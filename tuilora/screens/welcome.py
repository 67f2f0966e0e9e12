"""The first screen: start a new LoRA, start from the last answers, just advise, open a run."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from tuilora.screens.base import WizardScreen
from tuilora.screens.dialogs import KeyHelp
from tuilora.screens.marks import MarkedOptionList

INTRO = (
    "tuilora turns what you know about your subject into a complete sd-scripts training"
    " config, with the guide's reason for every value. Answer a few questions; the advice"
    " on the right follows every answer."
)


class WelcomeScreen(WizardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "app.request_quit", "Quit", show=False)]

    def compose(self) -> ComposeResult:
        yield Header(icon="")
        with Vertical(id="welcome"):
            yield Static(Text("LoRA training, one question at a time", style="bold"))
            yield Static(INTRO, id="intro")
            yield MarkedOptionList(*self._options(), id="welcome-menu")
            yield Static("↑↓ choose · Enter start · F1 or ? help · q or Ctrl+Q quit", id="keys")
        yield Footer()

    def _options(self) -> list[Option]:
        options = [Option("New LoRA: questions, dataset check, training", id="new")]
        last = self.wizard.last
        if last is not None:
            options.append(Option(f"Start from my last answers ({last.summary()})", id="last"))
        options += [
            Option("Just advise: settings for sd-scripts, no training", id="advise"),
            Option("Open a run: its config and progress", id="open"),
            Option("Quit", id="quit"),
        ]
        return options

    def on_mount(self) -> None:
        self.sub_title = "welcome"

    def key_help(self) -> KeyHelp:
        return KeyHelp(
            "welcome",
            (
                ("↑ ↓", "move the › to a choice"),
                ("Enter", "start it"),
                ("q", "quit"),
            ),
            "Every screen lists its own keys on F1; the footer shows the main ones.",
        )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        choice = event.option.id
        if choice == "quit":
            self.wizard.exit(0)
        elif choice == "open":
            self.wizard.open_run()
        elif choice in ("new", "last", "advise"):
            self.wizard.start(
                mode="advise" if choice == "advise" else "train", last=choice == "last"
            )
