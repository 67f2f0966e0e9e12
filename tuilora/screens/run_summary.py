"""Open a run: choose a run directory and see its config and progress.

It shows what the run's files say (``config.toml`` and ``events.jsonl``) and the command
that follows the run; Enter again on a shown run opens the live monitor
(``WizardApp.open_run``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Input, Label, Static

from tuilora.config import load_toml
from tuilora.errors import UserError
from tuilora.runs.events import iter_events
from tuilora.runs.rundir import RunDir
from tuilora.runs.status import is_run_folder
from tuilora.screens.base import WizardScreen
from tuilora.screens.dialogs import KeyHelp
from tuilora.screens.path_input import PathSuggester
from tuilora.wizard.actions import watch_command
from tuilora.wizard.fields import short_path


def run_summary(root: Path) -> Text:
    """What a run directory holds, in a few lines; UserError when it is not a run."""
    run = RunDir(root=root, name=root.name)
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    if not run.config.exists() and not run.events.exists():
        raise UserError(f"{root}: not a run folder (no config.toml or events.jsonl)")
    text = Text()
    if run.config.exists():
        config = load_toml(run.config).config
        name = config.output_name or root.name
        text.append(f"{name}\n", style="bold")
        text.append(
            f"{config.network_type} rank {config.network_dim} alpha {config.network_alpha:g},"
            f" {config.optimizer_type}, {config.max_train_epochs or '?'} epochs,"
            f" batch {config.train_batch_size}, {config.base_type}\n"
        )
    text.append_text(_progress(iter_events(run.events)))
    snapshots = sorted(p.name for p in root.glob("*.safetensors"))
    if snapshots:
        text.append(f"LoRA files: {', '.join(snapshots[-4:])}\n")
    text.append("\nFollow it: ", style="bold")
    text.append(watch_command(short_path(root)) + "\n")
    text.append("Enter opens the live monitor.\n", style="dim")
    return text


def _progress(events: Iterable[dict[str, Any]]) -> Text:
    """One pass over the events (a stream: a long run's file is never held whole)."""
    text = Text()
    start: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    messages: list[dict[str, Any]] = []
    seen = False
    for event in events:
        seen = True
        kind = event.get("type")
        if kind == "start" and start is None:
            start = event
        elif kind == "step":
            last = event
        elif kind == "end":
            end = event
        elif kind in ("warning", "error"):
            messages.append(event)
    if not seen:
        return Text("Not started yet (no events).\n", style="dim")
    total = (start or {}).get("total_steps", "?")
    if last is not None:
        loss = last.get("loss")
        loss_text = f", loss {loss:.4f}" if isinstance(loss, float) else ""
        text.append(f"Step {last.get('step')}/{total}, epoch {last.get('epoch')}{loss_text}\n")
    if end is not None:
        text.append(f"Ended: {end.get('status')}", style="bold")
        if end.get("message"):
            text.append(f" — {end['message']}")
        text.append("\n")
    else:
        text.append("Running, or stopped without an end event.\n")
    for event in messages:
        if event.get("type") in ("warning", "error"):
            text.append(f"{event['type']}: {event.get('message', '')}\n", style="yellow")
    return text


class RunScreen(WizardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.go_back", "Back"),
        Binding("ctrl+r", "reload", "Reload"),
    ]

    def __init__(self, path: str = "") -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        yield Header(icon="")
        with VerticalScroll(id="run-view"):
            yield Label("Run folder (e.g. runs/aria)", classes="prompt")
            yield Input(
                self.path,
                placeholder="runs/<name> — → completes, Enter opens",
                suggester=PathSuggester(dirs_only=True),
                id="run-path",
                compact=True,
            )
            yield Static("", id="run-summary")
        yield Footer()

    def key_help(self) -> KeyHelp:
        return KeyHelp(
            "open a run",
            (
                ("typing", "a run folder; → takes the greyed completion"),
                ("Enter", "show what the run's files say; Enter again opens the live monitor"),
                ("Ctrl+R", "read the run's files again"),
                ("Esc", "back to the welcome screen"),
            ),
        )

    def on_mount(self) -> None:
        self.sub_title = "open a run"
        if self.path:
            self.action_reload()
        self.query_one("#run-path", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        path = event.value.strip()
        if path and path == self.path and is_run_folder(Path(path)):
            self.wizard.open_run(path)  # second Enter on a shown run: the live monitor
            return
        self.path = path
        self.action_reload()

    def action_reload(self) -> None:
        shown = self.query_one("#run-summary", Static)
        if not self.path:
            shown.update(Text("Type a run folder and press Enter.", style="dim"))
            return
        try:
            shown.update(run_summary(Path(os.path.expanduser(self.path))))
        except UserError as exc:
            shown.update(Text(str(exc), style="bold red"))
