"""Step 4: the dataset folder, scanned in a worker, or just the number of images.

The scan is the dataset package's (``scan_dataset``: headers only, captions, buckets,
tags); it runs in a thread so the screen stays responsive, and its counts go to the advisor
as ``DatasetFacts`` exactly as ``tuilora advise --dataset`` passes them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import ComposeResult
from textual.widgets import Input, Label, Static
from textual.worker import Worker, WorkerState, get_current_worker

from tuilora.advisor.answers import QUESTIONS_BY_NAME
from tuilora.errors import UserError
from tuilora.screens.base import StepScreen
from tuilora.screens.dataset_view import summary
from tuilora.screens.path_input import PathSuggester
from tuilora.screens.question_field import QuestionField
from tuilora.wizard.fields import short_path

if TYPE_CHECKING:
    from tuilora.dataset.model import DatasetReport


class DatasetScreen(StepScreen):
    STEP = "dataset"
    KEYS = (
        ("typing", "the dataset folder; → takes the greyed completion"),
        ("Enter", "scan the folder (problems with file names and fixes appear below)"),
        ("Tab", "…or type just the number of images"),
    )
    FIELD_EXPLAINS = {"dataset-path": "total_steps"}

    def __init__(self) -> None:
        super().__init__()

    def compose_form(self) -> ComposeResult:
        state = self.wizard.state
        yield Label("Dataset folder (holds <repeats>_<name>/ folders)", classes="prompt")
        yield Input(
            state.dataset_path,
            placeholder="e.g. ~/data — → completes, Enter scans",
            suggester=PathSuggester(dirs_only=True),
            id="dataset-path",
            compact=True,
        )
        yield Static("", id="scan-status")
        yield Static("", id="scan-report")
        images = state.values.get("images")
        yield QuestionField(QUESTIONS_BY_NAME["images"], images)

    def on_mount(self) -> None:
        if not self.wizard.state.reached_dataset:
            self.wizard.state.reached_dataset = True  # from here the image count is real
            self.wizard.refresh_advice()
        super().on_mount()
        field = self.query_one("#field-images", QuestionField)
        field.query_one(".prompt", Label).update("…or just the number of images")
        report = self.wizard.dataset_report
        if report is not None and self.wizard.state.dataset is not None:
            self._show_report(report)
        elif self.wizard.state.dataset_path and os.path.isdir(
            os.path.expanduser(self.wizard.state.dataset_path)
        ):
            self.start_scan(self.wizard.state.dataset_path)
        self.query_one("#dataset-path", Input).focus()

    # ------------------------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "dataset-path":
            return
        event.stop()
        if event.value.strip():
            self.start_scan(event.value.strip())
        else:
            self.focus_next()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "dataset-path":
            return
        event.stop()
        state = self.wizard.state
        if event.value.strip() != state.dataset_path and state.dataset is not None:
            # The counts were for another folder: forget them until the new one is scanned.
            state.dataset = None
            self.wizard.dataset_report = None
            self._status("Press Enter to scan this folder.")
            self.query_one("#scan-report", Static).update("")
            self.wizard.refresh_advice()
        state.dataset_path = event.value.strip()

    def start_scan(self, path: str) -> None:
        self.wizard.state.dataset_path = path
        self._status(f"Scanning {path} …")
        self.scan(path)

    @work(thread=True, exclusive=True, group="scan", exit_on_error=False)
    def scan(self, path: str) -> None:
        worker = get_current_worker()
        state = self.wizard.state

        def progress(done: int, total: int) -> None:
            if not worker.is_cancelled:
                self.app.call_from_thread(self._status, f"Scanning {path} … {done}/{total}")

        try:
            report = self.wizard.scan_dataset(
                os.path.expanduser(path),
                resolution=1024 if state.get("base") == "sdxl" else 512,
                subject=state.subject,
                caption_extension=".txt",
                progress=progress,
            )
        except UserError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        if not worker.is_cancelled:
            self.app.call_from_thread(self._scanned, path, report)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "scan" and event.state == WorkerState.ERROR:
            self._failed(f"the scan failed: {event.worker.error}")

    def _failed(self, message: str) -> None:
        self._status(message, error=True)

    def _scanned(self, path: str, report: DatasetReport) -> None:
        state = self.wizard.state
        if path != state.dataset_path:
            return  # the user typed another folder meanwhile
        self.wizard.dataset_report = report
        from tuilora.advisor.dataset_facts import facts_from_report  # the scan modules load lazily

        state.dataset = facts_from_report(report)
        state.trigger = ", ".join(report.tags.trigger)
        self._show_report(report)
        self.wizard.refresh_advice()

    def _show_report(self, report: DatasetReport) -> None:
        errors = report.count("error")
        verdict = f" — {errors} error(s) to fix before training" if errors else ""
        self._status(f"Scanned {short_path(report.path)}: {report.total_images} images{verdict}")
        self.query_one("#scan-report", Static).update(summary(report))
        if report.total_images:
            images = self.query_one("#field-images", QuestionField)
            images.query_one(Input).value = str(report.total_images)

    def _status(self, message: str, *, error: bool = False) -> None:
        status = self.query_one("#scan-status", Static)
        status.update(message)
        status.set_class(error, "error-text")

    # ------------------------------------------------------------------------------------
    def check(self) -> str:
        state = self.wizard.state
        if any(w.is_running for w in self.workers if w.group == "scan"):
            return "The scan is still running: wait for it, or clear the folder."
        field = self.query_one("#field-images", QuestionField)
        if field.error:
            return field.error
        if state.images() is None:
            return "Scan a dataset folder, or type the number of images."
        if state.dataset is not None and state.dataset.images == 0:
            return "The folder has no training images: see the problems above."
        return ""

    def answered(self, name: str, value: Any) -> None:
        """The images field changed: a typed count replaces the scanned dataset."""
        state = self.wizard.state
        if state.dataset is not None and value != state.dataset.images:
            state.dataset = None
            self.wizard.dataset_report = None
            self.query_one("#scan-report", Static).update("")
            self._status("Using the typed number of images (no dataset).")
