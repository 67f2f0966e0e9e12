"""Step 3: the questions the chosen subject asks (male, prior, goal, quality, ...).

The list is generated: every question of ``answers.QUESTIONS`` that applies to the subject
(``Answers.asked()``) and belongs to this step (``steps.STEP_OF``), in declaration order.
"""

from __future__ import annotations

from textual.app import ComposeResult

from tuilora.advisor.answers import Answers, Question
from tuilora.screens.base import StepScreen
from tuilora.screens.question_field import QuestionField
from tuilora.wizard.steps import STEP_OF


def questions_for(step: str, subject: str) -> tuple[Question, ...]:
    return tuple(q for q in Answers(subject=subject).asked() if STEP_OF[q.name] == step)


class DetailsScreen(StepScreen):
    STEP = "details"
    KEYS = (
        ("↑ ↓", "move the › in a list of choices"),
        ("Enter", "choose, then on to the next question"),
        ("Space", "choose; tick or untick a [ ] box"),
    )

    def compose_form(self) -> ComposeResult:
        state = self.wizard.state
        for question in questions_for(self.STEP, state.subject):
            yield QuestionField(question, state.get(question.name))
