"""Step 6: every config field in a table, editable; edits become the advisor's pins.

An edit is parsed by the field's type, then the advice is recomputed with it pinned (as
``tuilora advise --set key=value`` does): the rules re-derive everything around it (alpha
follows a new rank, the step arithmetic a new batch size) and the warnings are evaluated
again. An edit that makes the config invalid (``TrainingConfig`` names the key) or that the
advisor calls an error (alpha above rank) is refused with the message, and the old value
stays. Fields the user set are marked "yours"; Delete gives a field back to the advisor.
"""

from __future__ import annotations

from typing import ClassVar, Final

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Label, Static

from tuilora.advisor.answers import QUESTIONS_BY_NAME
from tuilora.advisor.recommend import Recommendation
from tuilora.config import field_help
from tuilora.errors import UserError
from tuilora.screens.advice_panel import reasons_text
from tuilora.screens.base import StepScreen
from tuilora.wizard.fields import parse, show
from tuilora.wizard.state import Advice, WizardState

#: Paths are answers of the dataset and hardware steps (a scanned folder has its counts).
_PATH_STEPS = {
    "pretrained_model_name_or_path": "hardware",
    "train_data_dir": "dataset",
    "output_name": "hardware",
    "output_dir": "hardware",
}


#: Answers shown (and editable) at the top of the table: changing them re-derives the
#: whole config (a manual optimizer brings its own LRs and scheduler; LoKr its args).
ANSWER_ROWS: Final = ("network", "optimizer")
_ANSWER_PREFIX: Final = "answer:"


def apply_edit(state: WizardState, key: str, text: str) -> Recommendation:
    """The advice with ``key`` set to ``text`` (empty: the advisor's value again).

    ``key`` is a config field, or ``answer:NAME`` for an answer row. Raises UserError,
    naming the key, when the edit is refused; the state is then unchanged.
    """
    if key.startswith(_ANSWER_PREFIX):
        return _apply_answer(state, key.removeprefix(_ANSWER_PREFIX), text)
    overrides = dict(state.overrides)
    if text.strip():
        overrides[key] = parse(key, text)
    else:
        overrides.pop(key, None)
    rec = state.recommendation(overrides)
    rec.training_config()  # TrainingConfig's checks: types and ranges, naming the key
    if rec.errors:
        raise UserError(rec.errors[0].message)
    state.overrides = overrides
    return rec


def _apply_answer(state: WizardState, name: str, text: str) -> Recommendation:
    question = QUESTIONS_BY_NAME[name]
    value = text.strip().lower() or "auto"
    if value not in question.choices:
        raise UserError(f"{name} {text.strip()!r} is not one of: {', '.join(question.choices)}")
    previous = state.get(name)
    state.set(name, value)
    try:
        rec = state.recommendation()
        rec.training_config()
        if rec.errors:
            raise UserError(rec.errors[0].message)
    except UserError:
        state.set(name, previous)
        raise
    return rec


class ReviewScreen(StepScreen):
    STEP = "review"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("delete", "reset_field", "Use advice"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.editing: str | None = None

    def compose_form(self) -> ComposeResult:
        yield DataTable(id="review-table", cursor_type="row", zebra_stripes=False)
        yield Label("", id="edit-label", classes="prompt")
        yield Input(id="field-edit", compact=True, placeholder="Enter on a row to edit it")
        yield Static("", id="edit-error", classes="error")
        yield Static("", id="field-why")

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one(DataTable)
        table.add_column("field (* yours)", key="field", width=21)
        table.add_column("value", key="value", width=15)
        self.fill_table()
        table.focus()
        self.wizard.remember()

    @property
    def rec(self) -> Recommendation | None:
        return self.wizard.advice.rec

    def user_keys(self) -> set[str]:
        state = self.wizard.state
        return set(state.overrides) | set(state.path_overrides())

    def fill_table(self) -> None:
        table = self.query_one(DataTable)
        rec = self.rec
        cursor = table.cursor_row
        table.clear()
        if rec is None:
            return
        user = self.user_keys()
        state = self.wizard.state
        for name in ANSWER_ROWS:
            mark = "*" if name in state.values and state.get(name) != "auto" else " "
            label = Text(f"{mark}{name} (answer)", style="italic")
            table.add_row(label, str(state.get(name)), key=_ANSWER_PREFIX + name)
        for key, value in rec.config.items():
            label = Text(("*" if key in user else " ") + key, style="bold" if key in user else "")
            table.add_row(label, show(value), key=key)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self.show_why(self.current_key())

    def current_key(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    def show_why(self, key: str | None) -> None:
        why = self.query_one("#field-why", Static)
        rec = self.rec
        if key is None or rec is None:
            why.update("")
            return
        if key.startswith(_ANSWER_PREFIX):
            question = QUESTIONS_BY_NAME[key.removeprefix(_ANSWER_PREFIX)]
            why.update(f"{question.prompt} {question.help}. One of: {', '.join(question.choices)}")
            return
        text = Text(f"{key}: ", style="bold")
        text.append(field_help(key) + "\n", style="dim")
        text.append_text(reasons_text(rec, key))
        why.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.show_why(str(event.row_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.start_edit(str(event.row_key.value))

    def start_edit(self, key: str) -> None:
        rec = self.rec
        if rec is None:
            return
        if key in _PATH_STEPS:
            self.set_edit_error(f"{key} is set on the {_PATH_STEPS[key]} step (Esc goes back).")
            return
        self.editing = key
        shown = key.removeprefix(_ANSWER_PREFIX)
        self.query_one("#edit-label", Label).update(
            f"New value for {shown} (Enter sets, Esc cancels)"
        )
        edit = self.query_one("#field-edit", Input)
        if key.startswith(_ANSWER_PREFIX):
            edit.value = str(self.wizard.state.get(key.removeprefix(_ANSWER_PREFIX)))
        else:
            edit.value = show(rec.config.get(key))
        edit.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "field-edit":
            return
        event.stop()
        if self.editing is None:
            self.query_one(DataTable).focus()
            return
        key = self.editing
        try:
            apply_edit(self.wizard.state, key, event.value)
        except UserError as exc:
            self.set_edit_error(f"Not applied: {exc}")
            return
        self.set_edit_error("")
        self.stop_edit()
        self.wizard.refresh_advice()

    def set_edit_error(self, message: str) -> None:
        self.query_one("#edit-error", Static).update(message)

    def stop_edit(self) -> None:
        self.editing = None
        self.query_one("#edit-label", Label).update("")
        self.query_one("#field-edit", Input).value = ""
        self.query_one(DataTable).focus()

    def show_advice(self, advice: Advice) -> None:
        super().show_advice(advice)
        if self.is_mounted and self.query(DataTable):
            self.fill_table()

    def action_back(self) -> None:
        if self.editing is not None:
            self.set_edit_error("")
            self.stop_edit()
            return
        super().action_back()

    def action_reset_field(self) -> None:
        key = self.current_key()
        state = self.wizard.state
        if key is None:
            return
        if key.startswith(_ANSWER_PREFIX):
            state.set(key.removeprefix(_ANSWER_PREFIX), "auto")
        elif key in state.overrides:
            del state.overrides[key]
        else:
            return
        self.wizard.refresh_advice()

    def check(self) -> str:
        rec = self.rec
        if rec is None:
            return self.wizard.advice.error or "The advice is not complete yet."
        try:
            rec.training_config()
        except UserError as exc:
            return str(exc)
        if rec.errors:
            return rec.errors[0].message
        return ""
