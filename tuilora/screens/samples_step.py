"""Step 6: sample prompts, drawn at the snapshots so epochs can be compared (G-TEST).

The box starts with four varied prompts around the dataset's trigger tags (or the LoRA's
name); every line is checked with the trainer's own prompt parser as it is typed. The
prompts go to a file beside the saved config (``NAME.prompts.txt``) or into the run folder
(``sample_prompts.txt``), named by ``sample_prompts``; ``sample_every_n_epochs`` defaults to
the snapshot interval so every snapshot has its samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input, Label, Static, TextArea

from tuilora.errors import UserError
from tuilora.screens.base import StepScreen
from tuilora.wizard.samples import ADVICE, check_prompts, default_prompts, prompt_lines


class SamplesScreen(StepScreen):
    STEP = "samples"
    KEYS = (
        ("typing, Enter", "edit the prompts, one per line (Enter: a new line)"),
        ("Tab", "leave the box: the sampling interval, then Next"),
        ("Ctrl+D", "back to the suggested prompts"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+d", "suggest", "Suggest")]
    FIELD_EXPLAINS: ClassVar[Mapping[str, str]] = {
        "prompts": "save_every_n_epochs",
        "sample-every": "save_every_n_epochs",
    }

    def compose_form(self) -> ComposeResult:
        state = self.wizard.state
        yield Label("Sample prompts (one per line; empty: no samples)", classes="prompt")
        if state.sample_prompts is None:
            state.sample_prompts = self.suggested()
        yield TextArea(
            "\n".join(state.sample_prompts),
            id="prompts",
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
        )
        yield Static(ADVICE, classes="help")
        yield Static("", id="prompts-error", classes="error")
        yield Label("Sample every N epochs (empty: with every snapshot)", classes="prompt")
        yield Input(
            str(state.sample_every or ""),
            placeholder="e.g. 1",
            id="sample-every",
            compact=True,
            type="integer",
        )

    def suggested(self) -> list[str]:
        state = self.wizard.state
        rec = self.wizard.advice.rec
        resolution = int(rec.config.get("resolution", 512)) if rec else 512
        tags = state.trigger or state.output_name
        return default_prompts(state.subject, tags, resolution)

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        lines = prompt_lines(event.text_area.text)
        self.wizard.state.sample_prompts = lines
        try:
            check_prompts(lines)
        except UserError as exc:
            self._error(str(exc))
            return
        self._error("")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "sample-every":
            return
        event.stop()
        text = event.value.strip()
        if not text:
            self.wizard.state.sample_every = None
        elif text.isdigit() and int(text) >= 1:
            self.wizard.state.sample_every = int(text)
        else:
            self._error("sample_every_n_epochs must be a whole number of at least 1")
            return
        self._error("")
        self.wizard.refresh_advice()

    def _error(self, message: str) -> None:
        self.query_one("#prompts-error", Static).update(message)

    def action_suggest(self) -> None:
        self.query_one("#prompts", TextArea).text = "\n".join(self.suggested())

    def check(self) -> str:
        try:
            check_prompts(self.wizard.state.sample_prompts or [])
        except UserError as exc:
            return str(exc)
        return ""
