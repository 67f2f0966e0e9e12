"""``tuilora train``: check everything, open the run folder, run the loop, report.

The order is the contract (issues 12 and 15): ``runs.preflight`` checks the config, the
files and the run folder without writing anything and before torch is imported; only then
``runs.begin`` takes the run's lock and writes its pid and first event; the loop follows.
Library output goes to ``train.log``; tuilora's own lines go to the console.

Exit codes: 0 finished or stopped (saved), 1 diverged, out of memory or crashed, 2 a user
error (raised as UserError, before or while loading).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from tuilora.errors import UserError
from tuilora.fileio import NoSpaceError
from tuilora.runs import statedir
from tuilora.runs.begin import Session, begin
from tuilora.runs.events import EventWriter
from tuilora.runs.phases import StopBeforeStart
from tuilora.runs.preflight import Plan, check_dataset, check_training, load_config
from tuilora.runs.rundir import RunDir

log = logging.getLogger("tuilora.train")
#: Library loggers that chatter at INFO; their warnings still reach train.log.
LIBRARY_LOGGERS = ("bitsandbytes", "LyCORIS", "diffusers", "transformers", "accelerate", "torch")


class StopRequest:
    """SIGINT / SIGTERM set a flag the trainer reads between steps (and between phases
    before step 1); installed before anything slow, so no Ctrl+C is ever lost."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def install(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            # Outside the main thread (tests) signals cannot be caught: stop via .requested.
            with contextlib.suppress(ValueError):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def quiet_libraries(level: int = logging.ERROR) -> None:
    """Keep the training stack's chatter out of the terminal and the TUI (``level`` and up
    still reach the log handlers); no progress bars from the libraries."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity(level)
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity(level)
    transformers_logging.disable_progress_bar()


def _file_logging(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def is_main_process() -> bool:
    """Under ``accelerate launch`` every process runs this; only rank 0 owns the run dir."""
    return int(os.environ.get("RANK", "0")) == 0


def run_training(
    config_path: str | None,
    *,
    resume: str | None = None,
    force: bool = False,
    allow_pickle: bool = False,
    v_parameterization: bool = False,
    progress: bool = True,
    debug: bool = False,
) -> int:
    """Train; the exit code. An unexpected error ends the run honestly (crashed, or
    failed-to-start before step 1) and is one line here, its traceback in train.log
    (raised instead with ``debug``)."""
    if not is_main_process():
        return _train_worker(config_path, resume, allow_pickle, v_parameterization)
    stop = StopRequest().install()
    try:
        plan = check_training(
            config_path,
            resume=resume,
            force=force,
            allow_pickle=allow_pickle,
            v_parameterization=v_parameterization,
        )
        from tuilora.engine import console
        from tuilora.engine.progress import PhaseDisplay

        phases = PhaseDisplay(enabled=progress)
        session = begin(plan, echo=_echo(phases))
        try:
            with console.output_to_log(plan.run.log):
                status = _train(
                    session, stop, allow_pickle=allow_pickle, progress=progress, debug=debug
                )
        finally:
            session.close()
    finally:
        stop.restore()
    print(_summary(status, plan, session.error), file=sys.stderr, flush=True)
    return 0 if status in ("finished", "stopped", "stopped-early") else 1


def _echo(phases: Any) -> Callable[[dict[str, Any]], None]:
    """What the console shows of the events: tuilora's notices always, phases with progress."""
    from tuilora.engine import console

    def echo(event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind in ("info", "warning", "error"):
            prefix = "" if kind == "info" else f"{kind}: "
            console.say(f"tuilora: {prefix}{event.get('message')}")
        elif kind == "phase":
            phases.show(event)

    return echo


def _train(
    session: Session, stop: StopRequest, *, allow_pickle: bool, progress: bool, debug: bool
) -> str:
    """Import the engine, train, and end the session honestly whatever happens."""
    plan = session.plan
    events = session.events
    handler = _file_logging(plan.run.log)
    try:
        for notice in plan.notices:
            events.emit("info", message=notice)
        return _run_trainer(
            session, stop, allow_pickle=allow_pickle, progress=progress, debug=debug
        )
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _run_trainer(
    session: Session, stop: StopRequest, *, allow_pickle: bool, progress: bool, debug: bool
) -> str:
    plan = session.plan
    events = session.events
    seen = {"started": False, "step": 0}
    previous_echo = events.echo

    def watch_start(event: dict[str, Any]) -> None:
        if event.get("type") == "start":
            seen["started"] = True
        elif event.get("type") == "step":
            seen["step"] = int(event.get("step") or 0)
        if previous_echo is not None:
            previous_echo(event)

    events.echo = watch_start
    try:
        if plan.dataset_deferred:
            events.emit("phase", name="checking the dataset", done=0, total=None, eta_s=None)
            plan.warnings = check_dataset(plan.config, plan.force)
        for warning in plan.warnings:
            events.emit("warning", message=warning)
        events.emit("phase", name="loading libraries", done=0, total=None, eta_s=None)
        if stop():
            raise StopBeforeStart("loading libraries")
        quiet_libraries(logging.WARNING)
        from tuilora.engine.loop import Trainer

        trainer = Trainer(
            plan.config,
            plan.run,
            events,
            resume=plan.resume is not None,
            allow_pickle=allow_pickle,
            progress=progress,
            should_stop=stop,
        )
        return trainer.run()
    except StopBeforeStart:
        message = _stopped_early_message(plan)
        session.fail_before_start("stopped", message)
        return "stopped-early"
    except UserError as exc:
        # The CLI prints this error as its one line: the events record it without an echo.
        events.echo = None
        if isinstance(exc, NoSpaceError):
            exc = NoSpaceError(_no_space_message(exc, plan))
        extra = {"id": "no-space"} if isinstance(exc, NoSpaceError) else {}
        if seen["started"]:
            events.echo = None  # the command line prints the error itself, once
            events.emit("error", message=str(exc), **extra)
            events.emit("end", status="crashed", step=seen["step"], final=None, message=str(exc))
        else:
            session.fail_before_start("failed-to-start", str(exc))
        raise exc from None
    except Exception as exc:
        log.exception("training crashed")  # the traceback, in train.log
        status = "oom" if type(exc).__name__ == "OutOfMemoryError" else "crashed"
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        message = f"{type(exc).__name__}: {first_line}"
        if seen["started"]:
            events.emit("error", message=message)
            events.emit("end", status=status, step=seen["step"], final=None, message=message)
        else:
            status = "failed-to-start" if status == "crashed" else status
            session.fail_before_start(status, message)
        if debug:
            raise
        session.error = message
        return status


def _no_space_message(exc: NoSpaceError, plan: Plan) -> str:
    """A save ran out of space: what failed, that nothing saved before was lost (saves are
    atomic: the failed one left no file), and how to go on."""
    root = plan.run.root
    saved = statedir.newest_state(plan.run.state)
    if saved is not None:
        then = (
            f"free some space, then continue from step {saved.step}: tuilora train --resume {root}"
        )
    else:
        then = f"free some space, then start it over: tuilora train {plan.run.config} --force"
    return f"{exc}; the files saved before are intact: {then}"


def _stopped_early_message(plan: Plan) -> str:
    if plan.resume is not None:
        return (
            f"stopped before the first step of the resumed session: {plan.run.root} is as it was"
            f" (resume it again with: tuilora train --resume {plan.run.root})"
        )
    return (
        "stopped before the first step: nothing was trained and there is nothing to resume"
        " (start it again with the same command)"
    )


def _train_worker(
    config_path: str | None, resume: str | None, allow_pickle: bool, v_parameterization: bool
) -> int:
    """A non-main process: train its share, write nothing (events go nowhere)."""
    config, run, _ = load_config(config_path, resume)
    if v_parameterization:
        config.v_parameterization = True
    quiet_libraries()
    # Optimizers print() notices ("Using decoupled weight decay"): once, from rank 0, is enough.
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
    from tuilora.engine.loop import Trainer

    with EventWriter(os.devnull) as events:
        status = Trainer(
            config, run, events, resume=bool(resume), allow_pickle=allow_pickle, progress=False
        ).run()
    return 0 if status in ("finished", "stopped") else 1


def launch_command(train_args: list[str], processes: int) -> list[str]:
    """The ``accelerate launch`` command that runs ``tuilora train`` in N processes.

    Precision is left to the trainer (it reads the config and falls back on a CPU), so the
    launcher is told "no"; ``--multi_gpu`` is accelerate's data-parallel mode, which runs
    gloo processes on a machine without CUDA.
    """
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        str(processes),
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "tuilora.engine",
        *train_args,
    ]


def run_processes(train_args: list[str], processes: int) -> int:
    """Run the N-process training in the foreground and return its exit code."""
    import subprocess

    return subprocess.call(launch_command(train_args, processes))


def _summary(status: str, plan: Plan, error: str = "") -> str:
    run: RunDir = plan.run
    if status == "finished":
        return f"done: {run.final}"
    if status == "stopped":
        return f"stopped and saved; continue with: tuilora train --resume {run.root}"
    if status == "stopped-early":
        return _stopped_early_message(plan)
    why = f": {error}" if error else ""
    return f"training ended: {status}{why} (see {run.log})"
