"""Steps 1 and 2: what the LoRA is of, and for characters the difficulty category A–I."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tuilora.advisor.answers import CATEGORIES, QUESTIONS_BY_NAME
from tuilora.advisor.rules import categories
from tuilora.screens.base import StepScreen
from tuilora.screens.marks import MarkedOptionList
from tuilora.screens.question_field import QuestionField


class SubjectScreen(StepScreen):
    STEP = "subject"
    SINGLE_CHOICE = True
    KEYS = (
        ("↑ ↓", "move the › to a subject"),
        ("Enter", "choose it and go on"),
        ("Space", "choose it and stay"),
    )

    def compose_form(self) -> ComposeResult:
        question = QUESTIONS_BY_NAME["subject"]
        yield QuestionField(question, self.wizard.state.get("subject"))


def category_line(letter: str, facts: Any) -> str:
    """ "C Elaborate details 8-32": one line at 80 columns (the guide's rank range last)."""
    low, high = facts["rank"]
    ranks = f"{low}" if low == high else f"{low}-{high}"
    return f"{letter} {facts['title']}  {ranks}"


def category_text(letter: str) -> Text:
    facts = categories()[letter]
    text = Text()
    text.append(f"{letter}: {facts['title']}\n", style="bold")
    text.append(f"{facts['description']}\n")
    text.append("e.g. ", style="dim")
    text.append(f"{facts['examples']}\n")
    if facts.get("uncertain"):
        text.append("The guide is unsure of this range.\n", style="dim")
    return text


class CategoryScreen(StepScreen):
    """The guide's category table; the highlighted category is the answer (G-CAT)."""

    STEP = "category"
    KEYS = (
        ("↑ ↓", "the highlighted category (›) is the answer; its description is below"),
        ("Enter", "go on with it"),
    )
    FIELD_EXPLAINS = {"q-category": "network_dim"}

    def compose_form(self) -> ComposeResult:
        question = QUESTIONS_BY_NAME["category"]
        table = categories()
        yield Static(f"{question.prompt} (rank range after each)", classes="prompt")
        options = [Option(category_line(c, table[c]), id=c) for c in CATEGORIES]
        yield MarkedOptionList(*options, id="q-category")
        yield Static("", id="category-text")
        yield Static(
            "A male character counts half a category harder for A-D (G-CAT-MALE): answer"
            " that on the next step.",
            classes="help",
        )

    def on_mount(self) -> None:
        super().on_mount()
        current = self.wizard.state.get("category")
        menu = self.query_one("#q-category", MarkedOptionList)
        menu.highlighted = CATEGORIES.index(current) if current in CATEGORIES else 0
        menu.focus()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id != "q-category" or event.option.id is None:
            return
        event.stop()
        self.query_one("#category-text", Static).update(category_text(event.option.id))
        self.wizard.answer("category", event.option.id)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id == "q-category":
            event.stop()
            self.action_next()
