"""Step 8: save the config (sd-scripts TOML, tuilora TOML, the command line) or train.

"Train" writes ``runs/<name>/wizard.toml`` and starts ``tuilora train CONFIG --detach`` as a
child process (the UI never imports the engine); the run then lives on without the wizard,
and ``tuilora watch RUN`` follows it. Ctrl+O shows the chosen file full-width, alone on
the screen, so a terminal's copy takes no borders with it (``command_view``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, RadioSet, Static

from tuilora.errors import UserError
from tuilora.screens.base import StepScreen
from tuilora.screens.command_view import CommandView
from tuilora.screens.existing_run import Choice, ExistingRunDialog
from tuilora.screens.marks import Choices, Radio
from tuilora.screens.path_input import PathSuggester
from tuilora.wizard.actions import (
    EXPORTS,
    PreparedRun,
    RunExists,
    command_text,
    default_file,
    export_text,
    launch,
    missing_for_training,
    prepare_run,
    resume_command,
    run_dir_of,
    save_export,
    watch_command,
)
from tuilora.wizard.fields import short_path


class FinishScreen(StepScreen):
    STEP = "finish"
    KEYS = (
        ("↑ ↓, Enter", "the format to save (Enter goes on to the file name)"),
        ("Ctrl+S / Enter", "save to the file (in the file field)"),
        ("Ctrl+O", "show the file, or the command line, full-width for copying"),
        ("Ctrl+T", "write the run folder and start training (not in advise-only mode)"),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save"),
        Binding("ctrl+o", "show", "Show"),
        Binding("ctrl+t", "train", "Train"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.fmt = "kohya-toml"
        self.confirm_overwrite: str | None = None
        self.run_root: str | None = None

    def compose_form(self) -> ComposeResult:
        yield Label("Save the config as", classes="prompt")
        yield Choices(
            *[
                Radio(label, value=fmt == self.fmt, compact=True)
                for fmt, (label, _) in EXPORTS.items()
            ],
            id="export-format",
            compact=True,
        )
        yield Label("File", classes="prompt")
        yield Input(
            default_file(self.fmt, self.wizard.state.output_name),
            id="export-file",
            compact=True,
            suggester=PathSuggester(),
        )
        with Horizontal(classes="buttons"):
            yield Button("Save", id="save", compact=True)
            yield Button("Show", id="show", compact=True)
            if self.wizard.state.mode == "train":
                yield Button("Train now", id="train", variant="primary", compact=True)
            yield Button("Open run", id="open-run", compact=True)
        yield Static("", id="finish-result")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#next").display = False  # the last step: nothing after it
        self.query_one("#open-run").display = False
        self.query_one("#export-format", RadioSet).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The footer offers only what works here: no Next on the last step, no Train when
        only advising or while a start is under way."""
        if action == "next":
            return False
        if action == "train":
            if self.wizard.state.mode != "train":
                return False
            return not self.query("#train") or not self.query_one("#train", Button).disabled
        return True

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        name = self.wizard.state.output_name
        file_input = self.query_one("#export-file", Input)
        previous = default_file(self.fmt, name)
        self.fmt = list(EXPORTS)[event.index]
        if file_input.value in ("", previous):
            file_input.value = default_file(self.fmt, name)
        self.confirm_overwrite = None

    def result(self, message: str, *, error: bool = False) -> None:
        style = "bold red" if error else "green"
        self.query_one("#finish-result", Static).update(Text(message, style=style))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"save": self.action_save, "show": self.action_show, "train": self.action_train}
        if event.button.id in actions:
            event.stop()
            actions[event.button.id]()
        elif event.button.id == "open-run" and self.run_root:
            event.stop()
            self.wizard.open_run(self.run_root)
        else:
            super().on_button_pressed(event)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "export-file":
            event.stop()
            self.action_save()

    # ------------------------------------------------------------------------------------
    def action_show(self) -> None:
        """The chosen format full-width: the command as continued lines, a file as it is."""
        try:
            if self.fmt == "kohya-cmd":
                view = CommandView.for_command(command_text(self.wizard.state))
            else:
                label = EXPORTS[self.fmt][0]
                view = CommandView(export_text(self.wizard.state, self.fmt), label)
        except UserError as exc:
            self.result(str(exc), error=True)
            return
        self.app.push_screen(view)

    def action_save(self) -> None:
        if self.wizard.advice.rec is None:
            self.result("There is no complete advice to save (Esc goes back).", error=True)
            return
        path = self.query_one("#export-file", Input).value.strip()
        overwrite = self.confirm_overwrite == path
        try:
            written = save_export(self.wizard.state, self.fmt, path, overwrite=overwrite)
        except UserError as exc:
            if str(exc).endswith("already exists"):
                self.confirm_overwrite = path
                self.result(f"{exc}: press Save again to overwrite it.", error=True)
            else:
                self.result(str(exc), error=True)
            return
        self.confirm_overwrite = None
        self.wizard.finished = True
        self.wizard.remember()
        message = f"Saved {EXPORTS[self.fmt][0]} to {short_path(written)}"
        if self.wizard.state.sample_prompts:
            message += " (and its sample prompts beside it)"
        if self.fmt == "kohya-cmd":
            message += ". Ctrl+O shows the command for copying."
        self.result(message)

    def action_train(self) -> None:
        if self.wizard.state.mode != "train" or self.query_one("#train", Button).disabled:
            return
        missing = missing_for_training(self.wizard.state)
        if missing:
            self.result("To train, first give " + " and ".join(missing) + ".", error=True)
            return
        self.prepare_and_start()

    def prepare_and_start(self, *, start_over: bool = False) -> None:
        try:
            prepared = prepare_run(self.wizard.state, start_over=start_over)
        except RunExists as exists:
            self.app.push_screen(ExistingRunDialog(exists.root, exists.old), self._existing)
            return
        except UserError as exc:
            self.result(str(exc), error=True)
            return
        self.wizard.remember()
        self.query_one("#train", Button).disabled = True
        self.refresh_bindings()
        self.result(f"Wrote {short_path(prepared.config)}; starting tuilora train …")
        self.start_training(prepared)

    def _existing(self, choice: Choice | None) -> None:
        """The answer of the "already holds a run" dialog."""
        if choice is None:
            self.result("Not started: choose resume, start over or a new name.", error=True)
        elif choice[0] == "resume":
            run = run_dir_of(self.wizard.state)
            self.query_one("#train", Button).disabled = True
            self.result(f"Resuming {run.root} …")
            self.start_training(PreparedRun(run, run.config, resume_command(run.root)))
        elif choice[0] == "over":
            self.prepare_and_start(start_over=True)
        else:
            self.wizard.state.output_name = choice[1]
            self.prepare_and_start()

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def start_training(self, prepared: PreparedRun) -> None:
        try:
            launch(prepared.command, runner=self.wizard.runner)
        except UserError as exc:
            self.app.call_from_thread(self._train_failed, str(exc))
            return
        # `train --detach` returned once the trainer wrote its pid: its refusals (checks
        # before any write) came back through the exit code; later ones show in the monitor.
        self.app.call_from_thread(self._train_started, str(prepared.run.root))

    def _train_failed(self, message: str) -> None:
        self.query_one("#train", Button).disabled = False
        self.refresh_bindings()
        self.result(f"tuilora train failed: {message}", error=True)

    def _train_started(self, root: str) -> None:
        self.wizard.finished = True
        self.run_root = root
        self.result(
            f"Training started in {short_path(root)}.\nFollow it (also after reconnecting):\n"
            f"  {watch_command(short_path(root))}"
        )
        self.query_one("#open-run").display = True
        # Straight into the live monitor (it waits for the first event); q comes back here.
        from tuilora.screens.monitor import MonitorScreen

        self.app.push_screen(MonitorScreen(Path(root)))
