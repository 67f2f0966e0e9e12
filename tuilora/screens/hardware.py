"""Step 5: GPU memory (detected with nvidia-smi, overridable), base model, names, optimizer."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Input, Label, Static

from tuilora.config import output_name_problem
from tuilora.modelfile.checks import model_line
from tuilora.screens.base import StepScreen
from tuilora.screens.details import questions_for
from tuilora.screens.path_input import PathSuggester
from tuilora.screens.question_field import QuestionField

#: Text inputs for paths: (state attribute, label, placeholder).
PATHS = (
    ("model_path", "Base model file or diffusers folder", "e.g. ~/models/nai.safetensors"),
    ("output_name", "LoRA name (output_name)", "e.g. aria"),
    ("output_dir", "Output folder (empty: runs/<name>)", "runs/<name>"),
)


#: As ``advise --processes``: more is accelerate's job across machines, not the wizard's.
MAX_PROCESSES = 64
PROCESSES_HELP = (
    "One per GPU. Each process trains its share of every epoch, so an epoch takes fewer"
    " steps; the command and TOML carry accelerate's launch flags."
)


def vram_note(detected: float | None, detecting: bool, typed: float | None = None) -> str:
    if detecting:
        return "Looking for a GPU with nvidia-smi …"
    found = "nvidia-smi found no GPU" if detected is None else f"nvidia-smi reports {detected:g} GB"
    if typed is not None:
        return f"Using the {typed:g} GB you typed ({found}); empty the field to use that."
    if detected is None:
        return "No GPU found with nvidia-smi: 24 GB is assumed unless you type a figure."
    return f"nvidia-smi reports {detected:g} GB; type another figure to override it."


class HardwareScreen(StepScreen):
    STEP = "hardware"
    KEYS = (
        ("typing", "GPU memory in GB (empty: what nvidia-smi found), paths, the name"),
        ("↑ ↓", "move the › in a list of choices (base, optimizer, network)"),
        ("Enter / Space", "choose (Enter then goes on to the next field)"),
        ("→", "take the greyed path completion"),
    )
    FIELD_EXPLAINS = {"processes": "total_steps"}

    def compose_form(self) -> ComposeResult:
        state = self.wizard.state
        for question in questions_for(self.STEP, state.subject):
            value = state.get(question.name)
            if question.name == "vram":
                value = state.values.get("vram") if state.vram_typed else None
            yield QuestionField(question, value)
            if question.name == "vram":
                yield Static("", id="vram-note", classes="help")
        for attribute, label, placeholder in PATHS:
            yield Label(label, classes="prompt")
            yield Input(
                getattr(state, attribute),
                placeholder=placeholder,
                id=f"path-{attribute}",
                compact=True,
                suggester=PathSuggester() if attribute != "output_name" else None,
            )
            if attribute == "model_path":  # what the file is, read from its header
                yield Static(model_line(state.model_path), id="model-info", classes="help")
        yield Static("", id="name-error", classes="error")
        yield Label("GPUs training together (processes)", classes="prompt")
        yield Input(
            str(state.processes),
            id="processes",
            compact=True,
            type="integer",
            placeholder="1",
        )
        yield Static(PROCESSES_HELP, classes="help")
        yield Static("", id="processes-error", classes="error")

    def on_mount(self) -> None:
        super().on_mount()
        vram = self.query_one("#field-vram", QuestionField).query_one(Input)
        vram.placeholder = "GB, e.g. 12"
        self.update_vram_note()
        self.query_one("#q-vram").focus()

    def update_vram_note(self) -> None:
        state = self.wizard.state
        typed = state.values.get("vram") if state.vram_typed else None
        self.query_one("#vram-note", Static).update(
            vram_note(state.detected_vram, self.wizard.detecting_vram, typed)
        )

    def on_input_changed(self, event: Input.Changed) -> None:
        ident = event.input.id or ""
        if ident == "processes":
            event.stop()
            self._processes(event.value.strip())
            return
        if not ident.startswith("path-"):
            return
        event.stop()
        attribute = ident.removeprefix("path-")
        setattr(self.wizard.state, attribute, event.value.strip())
        if attribute == "output_name":
            self.query_one("#name-error", Static).update(name_problem(event.value.strip()))
        if attribute == "model_path":
            line = model_line(event.value.strip())
            self.query_one("#model-info", Static).update(line)
            # Other paths change no number (go_next refreshes them in); a model file that
            # was read decides the family, so the advice follows it at once.
            if line:
                self.wizard.refresh_advice()

    def _processes(self, text: str) -> None:
        error = self.query_one("#processes-error", Static)
        if text.isdigit() and 1 <= int(text) <= MAX_PROCESSES:
            error.update("")
            if int(text) != self.wizard.state.processes:
                self.wizard.state.processes = int(text)
                self.wizard.refresh_advice()
        else:
            error.update(f"processes: a whole number from 1 to {MAX_PROCESSES}")

    def answered(self, name: str, value: Any) -> None:
        if name == "vram":
            self.wizard.state.vram_typed = value is not None
            self.update_vram_note()

    def check(self) -> str:
        for field in self.query(QuestionField):
            if field.error:
                return field.error
        processes = str(self.query_one("#processes-error", Static).render())
        if processes:
            return processes
        problem = name_problem(self.wizard.state.output_name)
        if problem:
            return problem
        if self.wizard.state.mode == "train" and not self.wizard.state.output_name:
            self.query_one("#path-output_name", Input).focus()
            return "Give the LoRA a name: it names the files and the run folder."
        return ""


def name_problem(name: str) -> str:
    """The config's own rule (``output_name_problem``); an empty field is asked for later."""
    problem = output_name_problem(name) if name else ""
    return f"{problem[0].upper()}{problem[1:]}." if problem else ""
