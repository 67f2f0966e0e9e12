"""The live advice beside every step: key values, the step arithmetic, warnings, and why.

The values are a focusable list: Tab into it and each highlighted value shows the rules
that decided it (their text and G-ids) — the same reasons ``tuilora advise --explain``
prints. Values the user fixed on the review step are marked with ``*``.
"""

from __future__ import annotations

from typing import Final

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tuilora.advisor.recommend import Recommendation
from tuilora.wizard.fields import show
from tuilora.wizard.state import Advice

#: (config key or plan entry, short label); the panel is about 30 columns wide.
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


def arithmetic(rec: Recommendation) -> str:
    """The step arithmetic of G-START-EPOCHS, short enough for the panel."""
    plan = rec.plan
    repeats = plan["repeats"] if plan["repeats"] is not None else "mixed"
    return (
        f"{plan['images']} img × {repeats} rep / batch {plan['batch_size']}"
        f" = {plan['steps_per_epoch']} steps/epoch × {plan['epochs']} epochs"
        f" = {plan['total_steps']} steps\n"
        f"~{plan['file_size_mb']} MB file, ~{plan['vram_gb']} GB VRAM"
    )


def reasons_text(rec: Recommendation, key: str) -> Text:
    text = Text()
    for reason in rec.reasons_for(key):
        text.append(reason.text)
        if reason.guide:
            text.append(f" [{', '.join(reason.guide)}]", style="dim")
        text.append("\n")
    if not text:
        text.append("No rule set this value.", style="dim")
    return text


def warnings_text(rec: Recommendation) -> Text:
    text = Text()
    for warning in rec.warnings:
        mark, style = _MARK.get(warning.severity, ("  ", ""))
        text.append(mark, style=style)
        text.append(warning.message, style=style if warning.severity == "error" else "")
        if warning.guide:
            text.append(f" [{', '.join(warning.guide)}]", style="dim")
        text.append("\n")
    return text


class AdvicePanel(VerticalScroll):
    """Shows an ``Advice``; call ``show`` whenever the answers change."""

    def __init__(self) -> None:
        super().__init__(id="advice")
        self.advice: Advice | None = None
        self.user_keys: frozenset[str] = frozenset()

    def compose(self) -> ComposeResult:
        yield Static("", id="advice-note")
        yield OptionList(id="advice-values")
        yield Static("", id="advice-why")
        yield Static("", id="advice-steps")
        yield Static("", id="advice-warnings")

    def on_mount(self) -> None:
        self.border_title = "Advice"
        if self.advice is not None:
            self.show(self.advice, self.user_keys)

    def show(self, advice: Advice, user_keys: frozenset[str] = frozenset()) -> None:
        self.advice, self.user_keys = advice, user_keys
        if not self.is_mounted:
            return
        note = Text(advice.note, style="dim")
        if advice.error:
            note.append(("\n" if note else "") + advice.error, style="bold red")
        self.query_one("#advice-note", Static).update(note)
        self.query_one("#advice-note").display = bool(note)
        values = self.query_one("#advice-values", OptionList)
        rec = advice.rec
        highlighted = values.highlighted
        values.clear_options()
        values.display = rec is not None
        if rec is None:
            for ident in ("#advice-why", "#advice-steps", "#advice-warnings"):
                self.query_one(ident, Static).update("")
            return
        for key, label in VALUES:
            mark = "*" if key in user_keys else " "
            values.add_option(Option(f"{label:<9}{mark}{show(value_of(rec, key))}", id=key))
        if highlighted is not None:
            values.highlighted = highlighted
        self.query_one("#advice-steps", Static).update(arithmetic(rec))
        self.query_one("#advice-warnings", Static).update(warnings_text(rec))
        self._show_why()

    def _show_why(self) -> None:
        values = self.query_one("#advice-values", OptionList)
        why = self.query_one("#advice-why", Static)
        rec = self.advice.rec if self.advice else None
        if rec is None or not values.has_focus or values.highlighted is None:
            why.update("")
            why.display = False
            return
        key = values.get_option_at_index(values.highlighted).id
        why.update(reasons_text(rec, key or ""))
        why.display = True

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self._show_why()

    def on_descendant_focus(self) -> None:
        values = self.query_one("#advice-values", OptionList)
        if values.has_focus and values.highlighted is None and values.option_count:
            values.highlighted = 0
        self._show_why()

    def on_descendant_blur(self) -> None:
        self._show_why()
