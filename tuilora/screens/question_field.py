"""One question of ``answers.QUESTIONS`` as a widget, generated from its declaration.

The kind decides the widget: a few choices become radio buttons, many a drop-down, a yes/no
a checkbox, a number an input that checks the value as it is typed (with the advisor's own
range checks, so the wizard and ``tuilora advise`` reject the same values with the same
words). The widget posts ``QuestionField.Answered`` when the answer changes.
"""

from __future__ import annotations

from typing import Any, Final

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, RadioSet, Select, Static

from tuilora.advisor.answers import Answers, Question, parse_number
from tuilora.errors import UserError
from tuilora.screens.marks import Check, Choices, Radio
from tuilora.wizard.fields import show

#: Words beside each choice (presentation only; the values are the advisor's).
CHOICE_NOTES: Final[dict[str, dict[str, str]]] = {
    "subject": {
        "character": "a person or a creature",
        "style": "an artist's or a medium's look",
        "concept": "a pose, outfit or effect",
        "vehicle": "a car, bike, ship or plane",
    },
    "prior": {
        "none": "it does not know it",
        "some": "it knows it roughly",
        "strong": "it draws it from the tags",
    },
    "quality": {"good": "clean, varied", "bad": "few, low-res, uneven"},
    "goal": {"likeness": "the face only", "accuracy": "outfit, body and poses too"},
    "base": {
        "sd15": "SD 1.5: realistic, other",
        "nai": "NAI: anime, 2D",
        "sd2": "SD 2.x",
        "sdxl": "SDXL",
    },
    "optimizer": {"auto": "Prodigy if the card allows it"},
    "network": {"auto": "LoRA (LierLa)", "lora": "LierLa", "locon": "C3Lier"},
}

#: Extra advice under a question (G-CAT-PRIOR asks the user to test the base model first).
NOTES: Final = {
    "prior": "Tip: prompt the base model with the subject's tags before training; if it"
    " already draws it, choose some or strong (G-CAT-PRIOR).",
}

#: Up to this many choices show as radio buttons, more as a drop-down. Radio buttons show
#: the answer and the arrow keys' place as text ("(•)", "›"); a drop-down's open list does
#: not, so every question of the wizard is a radio set (the form scrolls at 80x24).
MAX_RADIO: Final = 8


def choice_label(question: Question, choice: str) -> str:
    note = CHOICE_NOTES.get(question.name, {}).get(choice)
    return f"{choice} — {note}" if note else choice


def check_number(question: Question, text: str) -> int | float | None:
    """Typed text as the answer (None when empty); UserError in the advisor's words."""
    if not text.strip():
        return None
    try:
        value = parse_number(question, text.strip())
        Answers.from_dict({"category": "A", question.name: value}).validate(images_required=False)
    except UserError as exc:
        # The advisor names the flag (--images); in the wizard the question is on screen.
        raise UserError(str(exc).replace(question.flag, question.name)) from None
    return value


class QuestionField(Vertical):
    """A question's prompt, its widget, its help line and an inline error line."""

    class Answered(Message):
        """The answer to ``name`` is now ``value`` (None: cleared)."""

        def __init__(self, name: str, value: Any) -> None:
            super().__init__()
            self.name = name
            self.value = value

    def __init__(self, question: Question, value: Any) -> None:
        super().__init__(id=f"field-{question.name}", classes="question")
        self.question = question
        self.initial = value
        self.error: str = ""

    def compose(self) -> ComposeResult:
        question = self.question
        if question.kind != "bool":
            yield Label(question.prompt, classes="prompt")
        yield self._control()
        help_text = question.help
        if question.name in NOTES:
            help_text += "\n" + NOTES[question.name]
        yield Static(help_text, classes="help")
        yield Static("", classes="error")

    def _control(self) -> Widget:
        question, value = self.question, self.initial
        ident = f"q-{question.name}"
        if question.kind == "bool":
            return Check(question.prompt, bool(value), id=ident, compact=True)
        if question.kind == "choice" and len(question.choices) <= MAX_RADIO:
            buttons = [
                Radio(choice_label(question, choice), value=choice == value, compact=True)
                for choice in question.choices
            ]
            return Choices(*buttons, id=ident, compact=True)
        if question.kind == "choice":
            options = [(choice_label(question, choice), choice) for choice in question.choices]
            return Select(options, value=value, allow_blank=False, id=ident, compact=True)
        return Input(show(value), id=ident, compact=True)

    # ------------------------------------------------------------------------------------
    def _answer(self, value: Any) -> None:
        self.post_message(self.Answered(self.question.name, value))

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        self._answer(self.question.choices[event.index])

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._answer(event.value)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._answer(event.value)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        try:
            value = check_number(self.question, event.value)
        except UserError as exc:
            self.set_error(str(exc))
            return
        self.set_error("")
        self._answer(value)

    def set_error(self, message: str) -> None:
        self.error = message
        self.query_one(".error", Static).update(message)
        self.set_class(bool(message), "invalid")
