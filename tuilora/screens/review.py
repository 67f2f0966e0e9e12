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
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from tuilora.advisor.answers import QUESTIONS_BY_NAME
from tuilora.advisor.recommend import Recommendation
from tuilora.config import field_help
from tuilora.errors import UserError
from tuilora.screens.advice_panel import arithmetic, reasons_text, warnings_text
from tuilora.screens.base import StepScreen
from tuilora.screens.marks import CURSOR
from tuilora.wizard.fields import parse, short_path, show
from tuilora.wizard.state import Advice, WizardState

#: The row of the sample prompts (an answer of the samples step).
_SAMPLES: Final = "answer:samples"
SAMPLES_WHY: Final = (
    "Sample prompts: images drawn with each snapshot, to compare epochs (G-TEST). The"
    " prompts are written to a file beside the config and named in sample_prompts."
)
#: Paths are answers of the dataset and hardware steps (a scanned folder has its counts).
_PATH_STEPS = {
    "pretrained_model_name_or_path": "hardware",
    "train_data_dir": "dataset",
    "output_name": "hardware",
    "output_dir": "hardware",
    "sample_prompts": "samples",
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
    """The whole width for the table: long values (paths, optimizer args) wrap, never cut.

    The advice panel would leave the values 12 columns; its contents are here instead, in
    full-width lines under the table: the why of the highlighted row, the step arithmetic
    and the warnings.
    """

    STEP = "review"
    KEYS = (
        ("↑ ↓ PgUp PgDn", "move in the table; the why of the row (›) is shown below it"),
        ("Enter", "edit the row; then Enter sets the value, Esc cancels"),
        ("Delete", "give the field back to the advice"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("delete", "reset_field", "Use advice"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.editing: str | None = None
        self._cursor_key: str | None = None

    def compose(self) -> ComposeResult:
        yield Header(icon="")
        with Vertical(id="review-body"):
            yield DataTable(id="review-table", cursor_type="row", zebra_stripes=False)
            with Horizontal(id="edit-row"):
                yield Label("", id="edit-label", classes="prompt")
                yield Input(id="field-edit", compact=True)
            yield Static("", id="edit-error", classes="error")
            with VerticalScroll(id="review-notes"):
                yield Static("", id="field-why")
                yield Static("", id="review-steps")
                yield Static("", id="review-warnings")
            yield Static("", id="step-error")
            yield Button("Next ›", id="next", compact=True)
        yield Footer()

    def compose_form(self) -> ComposeResult:
        yield from ()  # compose() lays the whole screen out

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#edit-row").display = False
        self.fill_table()
        self.wizard.remember()

    def focus_first(self) -> None:
        self.query_one(DataTable).focus()

    def on_resize(self) -> None:
        self.fill_table()

    @property
    def rec(self) -> Recommendation | None:
        return self.wizard.advice.rec

    def user_keys(self) -> set[str]:
        state = self.wizard.state
        return set(state.overrides) | set(state.path_overrides())

    def _widths(self) -> tuple[int, int]:
        """(field, value) column widths: the longest field name, and the rest of the line."""
        table = self.query_one(DataTable)
        rec = self.rec
        names = [*(f"{name} (answer)" for name in ANSWER_ROWS), *(rec.config if rec else ())]
        field = max((len(name) for name in names), default=20) + 1
        # cell padding: one column each side of each of the three columns, plus a scrollbar
        room = (table.size.width or self.size.width) - field - 1 - 6 - 2
        return field, max(room, 12)

    def fill_table(self) -> None:
        table = self.query_one(DataTable)
        rec = self.rec
        cursor = table.cursor_row
        table.clear(columns=True)
        if rec is None:
            return
        field_width, value_width = self._widths()
        table.add_column(" ", key="cursor", width=1)
        table.add_column("field (* yours)", key="field", width=field_width)
        table.add_column("value", key="value", width=value_width)
        user = self.user_keys()
        state = self.wizard.state
        for name in ANSWER_ROWS:
            mark = "*" if name in state.values and state.get(name) != "auto" else " "
            label = Text(f"{mark}{name} (answer)", style="italic")
            table.add_row(" ", label, str(state.get(name)), key=_ANSWER_PREFIX + name)
        prompts = len(state.sample_prompts or [])
        shown_prompts = f"{prompts} prompt(s), a file beside the config" if prompts else "none"
        mark = "*" if prompts else " "
        table.add_row(
            " ", Text(f"{mark}samples (answer)", style="italic"), shown_prompts, key=_SAMPLES
        )
        for key, value in rec.config.items():
            label = Text(("*" if key in user else " ") + key, style="bold" if key in user else "")
            path = key in _PATH_STEPS and isinstance(value, str)
            shown = short_path(value) if path else show(value)
            table.add_row(" ", label, Text(shown, overflow="fold"), key=key, height=None)
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1))
        self._mark_cursor(self.current_key())
        self.show_notes(self.current_key())

    def current_key(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    def _mark_cursor(self, key: str | None) -> None:
        """ "›" on the cursor row: the row reads as chosen without colour."""
        table = self.query_one(DataTable)
        for previous in (self._cursor_key, key):
            if previous is not None and previous in table.rows:
                table.update_cell(previous, "cursor", CURSOR if previous == key else " ")
        self._cursor_key = key

    def show_notes(self, key: str | None) -> None:
        """The why of the row, the step arithmetic and the warnings, under the table."""
        why = self.query_one("#field-why", Static)
        rec = self.rec
        if rec is None:
            why.update("")
            return
        self.query_one("#review-steps", Static).update(arithmetic(rec))
        self.query_one("#review-warnings", Static).update(warnings_text(rec))
        if key is None:
            why.update("")
        elif key == _SAMPLES:
            why.update(Text(SAMPLES_WHY))
        elif key.startswith(_ANSWER_PREFIX):
            question = QUESTIONS_BY_NAME[key.removeprefix(_ANSWER_PREFIX)]
            why.update(f"{question.prompt} {question.help}. One of: {', '.join(question.choices)}")
        else:
            text = Text(f"{key}: ", style="bold")
            text.append(field_help(key) + "\n", style="dim")
            text.append_text(reasons_text(rec, key))
            text.rstrip()
            why.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key = str(event.row_key.value)
        self._mark_cursor(key)
        self.show_notes(key)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.start_edit(str(event.row_key.value))

    def start_edit(self, key: str) -> None:
        rec = self.rec
        if rec is None:
            return
        if key == _SAMPLES:
            self.set_edit_error("The sample prompts are set on the samples step (Esc goes back).")
            return
        if key in _PATH_STEPS:
            self.set_edit_error(f"{key} is set on the {_PATH_STEPS[key]} step (Esc goes back).")
            return
        self.editing = key
        shown = key.removeprefix(_ANSWER_PREFIX)
        self.query_one("#edit-label", Label).update(f"{shown} = ")
        self.query_one("#edit-row").display = True
        edit = self.query_one("#field-edit", Input)
        if key.startswith(_ANSWER_PREFIX):
            edit.value = str(self.wizard.state.get(key.removeprefix(_ANSWER_PREFIX)))
        else:
            edit.value = show(rec.config.get(key))
        self.set_edit_error("Enter sets the value, Esc cancels.")
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
        self.wizard.remember()  # "start from my last answers" brings the edit back
        self.wizard.refresh_advice()

    def set_edit_error(self, message: str) -> None:
        self.query_one("#edit-error", Static).update(message)

    def stop_edit(self) -> None:
        self.editing = None
        self.query_one("#edit-row").display = False
        self.query_one("#field-edit", Input).value = ""
        self.query_one(DataTable).focus()

    def show_advice(self, advice: Advice) -> None:
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
        if key is None or self.editing is not None:
            return
        if key.startswith(_ANSWER_PREFIX):
            state.set(key.removeprefix(_ANSWER_PREFIX), "auto")
        elif key in state.overrides:
            del state.overrides[key]
        else:
            return
        self.wizard.remember()
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
