"""``tuilora train``: resolve the run directory, guard it, check the dataset, run the loop.

Exit codes: 0 finished or stopped (saved), 1 diverged or out of memory, 2 a user error
(raised as UserError before or while building).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import IO

from tuilora.config import TrainingConfig, load_toml, to_toml_dict
from tuilora.errors import UserError
from tuilora.fileio import write_atomic
from tuilora.runs.events import EventWriter
from tuilora.runs.rundir import RunDir

# train.log is kept: a detached run's parent opened it for the child's output.
RUN_FILES = ("config.toml", "events.jsonl", "pid")
SUBJECT_COUNT_PROBLEMS = frozenset({"too-few-images", "too-many-images"})
RUN_FOLDERS = ("state", "tb", "samples", "cache")


def resolve_run(config: TrainingConfig) -> RunDir:
    name = config.output_name or "lora"
    return RunDir.for_output(config.output_dir, name)


def load_for_training(
    config_path: str | None, resume: str | None
) -> tuple[TrainingConfig, list[str]]:
    """The config to train and notices for the user (e.g. ignored sd-scripts keys)."""
    if resume:
        path = Path(resume) / "config.toml"
        if not path.is_file():
            raise UserError(
                f"--resume {resume}: no config.toml there (is it a tuilora run folder?)"
            )
        return load_toml(path).config, []
    if not config_path:
        raise UserError("give a config file (tuilora train CONFIG) or --resume RUN")
    loaded = load_toml(config_path)
    notices = []
    if loaded.ignored:
        notices.append(
            "ignored sd-scripts options (tuilora does not use them): " + ", ".join(loaded.ignored)
        )
    config = loaded.config
    if config.output_name is None:
        config.output_name = Path(config_path).stem
    return config, notices


def refuse_existing(run: RunDir, *, resume: bool, force: bool) -> None:
    """A run directory that holds a run is never overwritten without --force."""
    existing = [name for name in ("config.toml", "events.jsonl") if (run.root / name).exists()]
    if existing and not resume and not force:
        raise UserError(
            f"{run.root} already holds a run: pass --force to start over, or --resume"
            f" {run.root} to continue it"
        )


def clear_run_dir(run: RunDir) -> None:
    """With --force: remove the old run's own files (never anything else in the folder)."""
    for name in RUN_FILES:
        (run.root / name).unlink(missing_ok=True)
    for folder in RUN_FOLDERS:
        shutil.rmtree(run.root / folder, ignore_errors=True)
    for lora in [run.final, *run.snapshots()]:
        lora.unlink(missing_ok=True)


def check_dataset(config: TrainingConfig, force: bool) -> list[str]:
    """Refuse a dataset with errors unless forced (scenario 7); return warnings to show."""
    if not config.train_data_dir:
        raise UserError("train_data_dir is not set: give the folder of <repeats>_<name> folders")
    from tuilora.advisor.dataset_facts import dataset_facts

    width, _ = config.resolution_wh()
    facts = dataset_facts(
        config.train_data_dir, caption_extension=config.caption_extension, resolution=width
    )
    # The subject is not part of a training config, so image-count advice is the advisor's.
    problems = [p for p in facts.problems if p.id not in SUBJECT_COUNT_PROBLEMS]
    errors = [p for p in problems if p.severity == "error"]
    if errors and not force:
        raise UserError(
            f"the dataset has {len(errors)} error(s), first: {errors[0].message} — run"
            f" `tuilora dataset check {config.train_data_dir}` for all, or pass --force"
        )
    return [p.message for p in problems if p.severity in ("error", "warning")]


def _lock(run: RunDir) -> IO[str]:
    handle = open(run.lock, "w")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(
            f"{run.root} is being trained by another process (see its pid file)"
        ) from None
    return handle


def _file_logging(run: RunDir) -> logging.Handler:
    handler = logging.FileHandler(run.log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def quiet_libraries() -> None:
    """Keep the training stack's chatter out of the terminal and the TUI: only errors from
    the libraries themselves; tuilora's own events and log say what matters."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    for name in ("bitsandbytes", "LyCORIS", "diffusers", "transformers", "accelerate", "torch"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def run_training(
    config_path: str | None,
    *,
    resume: str | None = None,
    force: bool = False,
    allow_pickle: bool = False,
    v_parameterization: bool = False,
    progress: bool = True,
) -> int:
    config, notices = load_for_training(config_path, resume)
    if v_parameterization:
        config.v_parameterization = True
    run = RunDir(Path(resume), config.output_name or "lora") if resume else resolve_run(config)
    if not is_main_process():
        return _train_worker(config, run, resume=bool(resume), allow_pickle=allow_pickle)
    refuse_existing(run, resume=bool(resume), force=force)
    notices += check_dataset(config, force)
    if not resume:
        clear_run_dir(run)
    run.root.mkdir(parents=True, exist_ok=True)
    lock = _lock(run)
    handler = _file_logging(run)
    quiet_libraries()
    try:
        if not resume:
            write_atomic(run.config, _config_text(config), overwrite=True)
        run.pid.write_text(str(os.getpid()), encoding="utf-8")
        with EventWriter(run.events) as events:
            for notice in notices:
                print(f"tuilora: {notice}", file=sys.stderr)
                events.emit("warning", message=notice)
            status = _train(
                config,
                run,
                events,
                resume=bool(resume),
                allow_pickle=allow_pickle,
                progress=progress,
            )
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        lock.close()
    print(_summary(status, run), file=sys.stderr)
    return 0 if status in ("finished", "stopped") else 1


def is_main_process() -> bool:
    """Under ``accelerate launch`` every process runs this; only rank 0 owns the run dir."""
    return int(os.environ.get("RANK", "0")) == 0


def _train_worker(config: TrainingConfig, run: RunDir, *, resume: bool, allow_pickle: bool) -> int:
    """A non-main process: train its share, write nothing (events go nowhere)."""
    from tuilora.engine.loop import Trainer

    quiet_libraries()
    with EventWriter(os.devnull) as events:
        status = Trainer(
            config, run, events, resume=resume, allow_pickle=allow_pickle, progress=False
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


def _train(
    config: TrainingConfig,
    run: RunDir,
    events: EventWriter,
    *,
    resume: bool,
    allow_pickle: bool,
    progress: bool,
) -> str:
    from tuilora.engine.loop import Trainer

    try:
        trainer = Trainer(
            config, run, events, resume=resume, allow_pickle=allow_pickle, progress=progress
        )
        return trainer.run()
    except UserError as exc:
        events.emit("error", message=str(exc))
        events.emit("end", status="crashed", step=0, final=None, message=str(exc))
        raise
    except Exception as exc:
        logging.getLogger("tuilora.train").exception("training crashed")
        events.emit("error", message=f"{type(exc).__name__}: {exc}")
        events.emit("end", status="crashed", step=0, final=None, message=str(exc))
        raise


def _config_text(config: TrainingConfig) -> str:
    import tomli_w

    header = "# The resolved config of this run (tuilora TOML; sd-scripts reads it too).\n\n"
    return header + tomli_w.dumps(to_toml_dict(config))


def _summary(status: str, run: RunDir) -> str:
    if status == "finished":
        return f"done: {run.final}"
    if status == "stopped":
        return f"stopped and saved; continue with: tuilora train --resume {run.root}"
    return f"training ended: {status} (see {run.events} and {run.log})"
