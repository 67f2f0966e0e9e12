"""The frame every wizard step shares: header, the step's form, the advice panel, footer.

A step screen only composes its form (``compose_form``), says whether it may be left
(``check``) and lists its keys (``KEYS``, shown by F1 with the keys every step has); going
forward and back, and keeping the advice panel current, is done here and in the app.
Screens stay on the app's stack while the user goes forward, so Esc returns to the previous
step exactly as it was left.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, cast

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Static

from tuilora.screens.advice_panel import AdvicePanel
from tuilora.screens.dialogs import KeyHelp, Keys
from tuilora.screens.marks import Choices
from tuilora.screens.question_field import QuestionField
from tuilora.wizard.state import Advice
from tuilora.wizard.steps import EXPLAINS, TITLES, position

if TYPE_CHECKING:
    from tuilora.screens.app import WizardApp

#: Keys every step has, after the step's own.
STEP_KEYS: Keys = (
    ("Tab / Shift+Tab", "next / previous field (Tab into Advice: why each value)"),
    ("Ctrl+N", "next step (also the Next button)"),
    ("Esc", "previous step; every answer is kept"),
)


class WizardScreen(Screen[None]):
    """Any screen of the app: gives typed access to the app and its state."""

    @property
    def wizard(self) -> WizardApp:
        return cast("WizardApp", self.app)


class StepScreen(WizardScreen):
    STEP: ClassVar[str] = ""
    #: The step's own keys for F1 (the common ones are added).
    KEYS: ClassVar[Keys] = ()
    #: Fields that are not questions, by widget id -> the advice value they explain.
    FIELD_EXPLAINS: ClassVar[Mapping[str, str]] = {}
    #: A step that asks one thing: Enter on a choice goes on to the next step.
    SINGLE_CHOICE: ClassVar[bool] = False
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

    def key_help(self) -> KeyHelp:
        from tuilora.screens.dialogs import WIZARD_NOTE

        return KeyHelp(TITLES[self.STEP], (*self.KEYS, *STEP_KEYS), WIZARD_NOTE)

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
        state = self.wizard.state
        for panel in self.query(AdvicePanel):
            panel.show(advice, frozenset(state.overrides), assumed=state.images_assumed)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """Explain the value the focused question moves (nothing for other fields)."""
        panels = self.query(AdvicePanel)
        if not panels:
            return
        panel = panels.first()
        widget = event.widget
        if panel in widget.ancestors_with_self:
            return  # the panel explains its own highlighted value
        key = None
        for node in widget.ancestors_with_self:
            if isinstance(node, QuestionField):
                key = EXPLAINS.get(node.question.name)
                break
            if node.id is not None and node.id in self.FIELD_EXPLAINS:
                key = self.FIELD_EXPLAINS[node.id]
                break
        panel.explain(key)

    def on_choices_chosen(self, event: Choices.Chosen) -> None:
        event.stop()
        for node in event.choices.ancestors:
            if isinstance(node, QuestionField):  # answer now: Changed may not have arrived
                question = node.question
                if self.wizard.state.get(question.name) != question.choices[event.index]:
                    self.wizard.answer(question.name, question.choices[event.index])
                break
        if self.SINGLE_CHOICE:
            self.action_next()
        else:
            self.focus_next()

    def check(self) -> str:
        """Why the step cannot be left yet ("" when it can)."""
        return ""

    def show_error(self, message: str) -> None:
        """Why the step cannot be left, under the form and scrolled into view (a long form
        would otherwise hide it below the fold and Ctrl+N would seem to do nothing)."""
        error = self.query_one("#step-error", Static)
        error.update(message)
        error.display = bool(message)
        if message:
            self.call_after_refresh(error.scroll_visible, animate=False)

    def action_back(self) -> None:
        self.wizard.go_back()

    def action_next(self) -> None:
        problem = self.check() or self.wizard.go_next(self.STEP)
        self.show_error(problem)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "next":
            event.stop()
            self.action_next()
