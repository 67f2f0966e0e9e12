"""The frame every wizard step shares: header, the step's form, the advice panel, footer.

A step screen only composes its form (``compose_form``) and says whether it may be left
(``check``); going forward and back, and keeping the advice panel current, is done here and
in the app. Screens stay on the app's stack while the user goes forward, so Esc returns to
the previous step exactly as it was left.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Static

from tuilora.screens.advice_panel import AdvicePanel
from tuilora.wizard.state import Advice
from tuilora.wizard.steps import position

if TYPE_CHECKING:
    from tuilora.screens.app import WizardApp


class WizardScreen(Screen[None]):
    """Any screen of the app: gives typed access to the app and its state."""

    @property
    def wizard(self) -> WizardApp:
        return cast("WizardApp", self.app)


class StepScreen(WizardScreen):
    STEP: ClassVar[str] = ""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+n", "next", "Next"),
    ]

    def compose(self) -> ComposeResult:
        yield Header(icon="")
        with Horizontal(id="body"):
            with VerticalScroll(id="form"):
                yield from self.compose_form()
                yield Static("", id="step-error")
                yield Button("Next ›", id="next", compact=True)
            yield AdvicePanel()
        yield Footer()

    def compose_form(self) -> ComposeResult:
        raise NotImplementedError  # every step composes its own form

    def on_mount(self) -> None:
        self.sub_title = position(self.STEP, self.wizard.state.subject)
        self.show_advice(self.wizard.advice)
        self.focus_first()

    def focus_first(self) -> None:
        """Start on the form's first field, not on whatever Textual finds first."""
        for widget in self.query_one("#form").query("*"):
            if widget.focusable:
                widget.focus()
                return

    def on_screen_resume(self) -> None:
        self.sub_title = position(self.STEP, self.wizard.state.subject)
        self.show_advice(self.wizard.advice)

    def show_advice(self, advice: Advice) -> None:
        user = frozenset(self.wizard.state.overrides)
        self.query_one(AdvicePanel).show(advice, user)

    def check(self) -> str:
        """Why the step cannot be left yet ("" when it can)."""
        return ""

    def show_error(self, message: str) -> None:
        error = self.query_one("#step-error", Static)
        error.update(message)
        error.display = bool(message)

    def action_back(self) -> None:
        self.wizard.go_back()

    def action_next(self) -> None:
        problem = self.check() or self.wizard.go_next(self.STEP)
        self.show_error(problem)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "next":
            event.stop()
            self.action_next()
