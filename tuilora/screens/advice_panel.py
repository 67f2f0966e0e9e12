"""The live advice beside every step: key values, the step arithmetic, warnings, and why.

The "why" of a value (the rules that decided it, their text and G-ids: what ``tuilora
advise --explain`` prints) is on screen without leaving the form: while a question has the
focus, the panel marks the value that answer moves most (``steps.EXPLAINS``) and explains
it. Tab into the list to read the why of any other value. Values the user fixed on the
review step are marked with ``*``.
"""

from __future__ import annotations

from typing import Final

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static
from textual.widgets.option_list import Option

from tuilora.advisor.recommend import Recommendation
from tuilora.advisor.render import plan_line
from tuilora.errors import UserError
from tuilora.screens.marks import MarkedOptionList
from tuilora.wizard.fields import short_paths_in, show
from tuilora.wizard.state import Advice

#: (config key or plan entry, short label); the panel is 30 columns wide at 80x24.
VALUES: Final = (
    ("network_dim", "rank"),
    ("network_alpha", "alpha"),
    ("network_type", "network"),
    ("optimizer_type", "optimizer"),
    ("unet_lr", "unet lr"),
    ("text_encoder_lr", "te lr"),
    ("lr_scheduler", "scheduler"),
    ("train_batch_size", "batch"),
    ("max_train_epochs", "epochs"),
    ("total_steps", "steps"),
)
_MARK: Final = {"error": ("✗ ", "bold red"), "warning": ("! ", "yellow"), "info": ("i ", "dim")}


def value_of(rec: Recommendation, key: str) -> object:
    if key in rec.config:
        return rec.config[key]
    return rec.plan.get(key)


def arithmetic(rec: Recommendation, *, assumed: bool = False) -> str:
    """The step arithmetic of G-START-EPOCHS (``render.plan_line``) and the size estimates.

    Before the dataset step the image count is an assumption: then only the target is
    shown, so nothing reads like the arithmetic of a dataset the wizard has not seen.
    """
    plan = rec.plan
    sizes = f"~{plan['file_size_mb']} MB file, ~{plan['vram_gb']} GB VRAM"
    if assumed:
        return (
            f"About {plan['total_steps']} steps in {plan['epochs']} epochs; the dataset step"
            f" works out the steps per epoch from your images.\n{sizes}"
        )
    return f"{plan_line(rec)}\n{sizes}"


def reasons_text(rec: Recommendation, key: str) -> Text:
    text = Text()
    try:
        reasons = rec.reasons_for(key)
    except UserError:
        reasons = []
    for reason in reasons:
        text.append(short_paths_in(reason.text))
        if reason.guide:
            text.append(f" [{', '.join(reason.guide)}]", style="dim")
        text.append("\n")
    if not text:
        text.append("No rule set this value.", style="dim")
    return text


def why_text(rec: Recommendation, key: str) -> Text:
    """ "key = value" in bold, then the reasons for it."""
    label = dict(VALUES).get(key, key)
    text = Text(f"Why {label} = {show(value_of(rec, key))}:\n", style="bold")
    text.append_text(reasons_text(rec, key))
    text.rstrip()
    return text


def warnings_text(rec: Recommendation) -> Text:
    text = Text()
    for warning in rec.warnings:
        mark, style = _MARK.get(warning.severity, ("  ", ""))
        text.append(mark, style=style)
        message = short_paths_in(warning.message)
        text.append(message, style=style if warning.severity == "error" else "")
        if warning.guide:
            text.append(f" [{', '.join(warning.guide)}]", style="dim")
        text.append("\n")
    text.rstrip()
    return text


class AdvicePanel(VerticalScroll):
    """Shows an ``Advice``; call ``show`` whenever the answers change, ``explain`` when the
    focus moves to a question."""

    def __init__(self) -> None:
        super().__init__(id="advice")
        self.advice: Advice | None = None
        self.user_keys: frozenset[str] = frozenset()
        self.assumed = False
        #: The value the focused question moves (None: nothing to explain).
        self.explaining: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="advice-note")
        yield MarkedOptionList(id="advice-values")
        yield Static("", id="advice-count")
        yield Static("", id="advice-why")
        yield Static("", id="advice-steps")
        yield Static("", id="advice-warnings")

    def on_mount(self) -> None:
        self.border_title = "Advice"
        if self.advice is not None:
            self.show(self.advice, self.user_keys, assumed=self.assumed)

    def show(
        self, advice: Advice, user_keys: frozenset[str] = frozenset(), *, assumed: bool = False
    ) -> None:
        self.advice, self.user_keys, self.assumed = advice, user_keys, assumed
        if not self.is_mounted:
            return
        note = Text(advice.note, style="dim")
        if advice.error:
            note.append(("\n" if note else "") + advice.error, style="bold red")
        self.query_one("#advice-note", Static).update(note)
        self.query_one("#advice-note").display = bool(note)
        values = self.query_one("#advice-values", MarkedOptionList)
        rec = advice.rec
        highlighted = values.highlighted
        values.clear_options()
        values.display = rec is not None
        if rec is None:
            for ident in ("#advice-count", "#advice-why", "#advice-steps", "#advice-warnings"):
                self.query_one(ident, Static).update("")
            return
        for key, label in VALUES:
            mark = "*" if key in user_keys else " "
            values.add_option(Option(f"{label:<9}{mark}{show(value_of(rec, key))}", id=key))
        if highlighted is not None and values.has_focus:
            values.highlighted = highlighted
        self.query_one("#advice-steps", Static).update(arithmetic(rec, assumed=assumed))
        self.query_one("#advice-warnings", Static).update(warnings_text(rec))
        count = len(rec.warnings)
        # The warnings come last and may be below the fold at 80x24: say they are there.
        self.query_one("#advice-count", Static).update(
            f"↓ {count} note{'s' if count != 1 else ''} below (Tab here, then ↓)" if count else ""
        )
        self.query_one("#advice-count").display = bool(count)
        self._show_why()

    def on_focus(self) -> None:
        self.border_title = "› Advice (↑↓ scrolls)"

    def on_blur(self) -> None:
        self.border_title = "Advice"

    def explain(self, key: str | None) -> None:
        """Mark and explain ``key`` (the value the focused question moves); None: stop."""
        self.explaining = key
        self._show_why()

    def _show_why(self) -> None:
        values = self.query_one("#advice-values", MarkedOptionList)
        why = self.query_one("#advice-why", Static)
        rec = self.advice.rec if self.advice else None
        key: str | None = None
        if values.has_focus and values.highlighted is not None:
            key = values.get_option_at_index(values.highlighted).id
        elif not values.has_focus:
            key = self.explaining
            ids = [option.id for option in values.options]
            with values.prevent(MarkedOptionList.OptionHighlighted):
                values.highlighted = ids.index(key) if key in ids else None
        if rec is None or key is None:
            why.update("")
            why.display = False
            return
        why.update(why_text(rec, key))
        why.display = True

    def on_option_list_option_highlighted(self, event: MarkedOptionList.OptionHighlighted) -> None:
        event.stop()
        self._show_why()

    def on_descendant_focus(self) -> None:
        values = self.query_one("#advice-values", MarkedOptionList)
        if values.has_focus and values.highlighted is None and values.option_count:
            values.highlighted = 0
        self._show_why()

    def on_descendant_blur(self) -> None:
        self._show_why()
