"""The wizard app: ``tuilora`` with no arguments.

The app owns the ``WizardState`` and the current advice; screens write answers into the
state (QuestionField messages bubble up here) and the app recomputes the advice with the
same ``recommend()`` as ``tuilora advise`` and hands it to the screen on top. Slow work
(nvidia-smi, the dataset scan, starting ``tuilora train``) runs in worker threads. Nothing
here imports torch or the engine: training is a child process (DESIGN §2).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tuilora.errors import UserError
from tuilora.runs.status import is_run_folder
from tuilora.screens.base import StepScreen
from tuilora.screens.dataset_step import DatasetScreen
from tuilora.screens.details import DetailsScreen
from tuilora.screens.dialogs import ConfirmQuit, show_help
from tuilora.screens.finish import FinishScreen
from tuilora.screens.hardware import HardwareScreen
from tuilora.screens.question_field import QuestionField
from tuilora.screens.review import ReviewScreen
from tuilora.screens.run_summary import RunScreen
from tuilora.screens.samples_step import SamplesScreen
from tuilora.screens.styles import CSS as WIZARD_CSS
from tuilora.screens.subject import CategoryScreen, SubjectScreen
from tuilora.screens.welcome import WelcomeScreen
from tuilora.wizard.actions import Runner
from tuilora.wizard.memory import load_last, save_last
from tuilora.wizard.state import Mode, WizardState
from tuilora.wizard.steps import next_step

if TYPE_CHECKING:
    from tuilora.dataset.model import DatasetReport

STEP_SCREENS: dict[str, type[StepScreen]] = {
    "subject": SubjectScreen,
    "category": CategoryScreen,
    "details": DetailsScreen,
    "dataset": DatasetScreen,
    "hardware": HardwareScreen,
    "samples": SamplesScreen,
    "review": ReviewScreen,
    "finish": FinishScreen,
}


def _detect_vram() -> float | None:
    from tuilora.advisor.hardware import detect_vram_gb

    return detect_vram_gb()


def _scan_dataset(path: str, **options: Any) -> DatasetReport:
    from tuilora.dataset.scan import scan_dataset

    return scan_dataset(path, **options)


class WizardApp(App[int]):
    CSS = WIZARD_CSS
    TITLE = "tuilora"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "request_quit", "Quit", priority=True),
        Binding("ctrl+c", "request_quit", "Quit", show=False, priority=True),
        Binding("f1", "help", "Help", priority=True),
        Binding("question_mark", "help", "Help", show=False),
    ]

    def __init__(
        self,
        *,
        detect_vram: Callable[[], float | None] = _detect_vram,
        scan_dataset: Callable[..., DatasetReport] = _scan_dataset,
        runner: Runner = subprocess.run,
        memory_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.state = WizardState()
        self.memory_path = memory_path
        self.last = load_last(memory_path)
        self.detect = detect_vram
        self.scan_dataset = scan_dataset
        self.runner = runner
        #: How long to watch a just-started trainer for an early refusal.
        self.detecting_vram = True
        self.dataset_report: DatasetReport | None = None
        #: A file was saved or training started: quitting needs no confirmation.
        self.finished = False
        self.advice = self.state.advise()

    def get_default_screen(self) -> Screen[Any]:
        return WelcomeScreen()

    def on_mount(self) -> None:
        self.detect_vram_worker()

    # ------------------------------------------------------------------------------------
    # flow

    def start(self, *, mode: Mode, last: bool = False) -> None:
        """Begin the questions; ``last`` starts from the remembered answers."""
        if last and self.last is not None:
            detected = self.state.detected_vram
            self.state = self.last
            self.state.detected_vram = detected
            self.dataset_report = None
        self.state.mode = mode
        self.finished = False
        self.refresh_advice()
        self.push_screen(SubjectScreen())

    def go_next(self, step: str) -> str:
        """Push the step after ``step``; returns why not ("" when it went)."""
        following = next_step(step, self.state.subject)
        if following is None:
            return ""
        self.refresh_advice()  # paths typed on this step join the config now
        if following in ("review", "finish"):
            try:
                self.state.answers()
            except UserError as exc:
                return str(exc)
            if self.advice.rec is None:
                return self.advice.error or "The advice is not complete yet."
        self.push_screen(STEP_SCREENS[following]())
        return ""

    def go_back(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()

    def action_go_back(self) -> None:
        self.go_back()

    def open_run(self, path: str = "") -> None:
        """The live monitor of a run folder; without one, the screen that asks for it."""
        if path and is_run_folder(Path(path)):
            from tuilora.screens.monitor import MonitorScreen

            self.push_screen(MonitorScreen(Path(path)))
        else:
            self.push_screen(RunScreen(path))

    # ------------------------------------------------------------------------------------
    # answers and advice

    def answer(self, name: str, value: Any) -> None:
        self.state.set(name, value)
        screen = self.screen
        if isinstance(screen, DatasetScreen | HardwareScreen):
            screen.answered(name, value)
        self.refresh_advice()

    def on_question_field_answered(self, message: QuestionField.Answered) -> None:
        self.answer(message.name, message.value)

    def refresh_advice(self) -> None:
        self.advice = self.state.advise()
        screen = self.screen
        if isinstance(screen, StepScreen) and screen.is_mounted:
            screen.on_screen_resume()

    def remember(self) -> None:
        save_last(self.state, self.memory_path)

    # ------------------------------------------------------------------------------------
    # nvidia-smi

    @work(thread=True, group="vram", exit_on_error=False)
    def detect_vram_worker(self) -> None:
        self.call_from_thread(self.vram_detected, self.detect())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "vram" and event.state == WorkerState.ERROR:
            self.vram_detected(None)  # a broken nvidia-smi is the same as none

    def vram_detected(self, gigabytes: float | None) -> None:
        self.detecting_vram = False
        self.state.detected_vram = gigabytes
        self.refresh_advice()
        if isinstance(self.screen, HardwareScreen):
            self.screen.update_vram_note()

    # ------------------------------------------------------------------------------------
    # keys

    def action_help(self) -> None:
        show_help(self)

    def action_request_quit(self) -> None:
        if isinstance(self.screen, ConfirmQuit) or not self.mid_wizard():
            self.quit_wizard()
            return

        def answered(quit_app: bool | None) -> None:
            if quit_app:
                self.quit_wizard()

        self.push_screen(ConfirmQuit(), answered)

    def mid_wizard(self) -> bool:
        return not self.finished and any(isinstance(s, StepScreen) for s in self.screen_stack)

    def quit_wizard(self) -> None:
        if self.state.values:
            self.remember()
        self.exit(0)


def run_app() -> int:
    """Run the wizard in the terminal; the exit status for ``tuilora``."""
    app = WizardApp()
    app.run()
    return app.return_code or 0
