"""The finish step's work: exports, the run directory, and ``tuilora train --detach``.

No Textual here: the screens call these from workers, the tests call them directly. The
advice is written through the same ``export.render_text`` as ``tuilora advise --format``,
headed by the equivalent ``tuilora advise`` command line so the file says how to remake it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import tomli_w

from tuilora.advisor.answers import Answers
from tuilora.advisor.export import command_header, render_text
from tuilora.advisor.recommend import Recommendation, recommend
from tuilora.errors import UserError
from tuilora.fileio import write_atomic
from tuilora.runs.lifecycle import LIVE
from tuilora.runs.preflight import OldRun, check_training, existing_run_advice, find_old_run
from tuilora.runs.rundir import RunDir
from tuilora.wizard.state import WizardState

#: format -> (what the user sees, default file suffix after the LoRA name)
EXPORTS: Final = {
    "kohya-toml": ("sd-scripts TOML", ".sdscripts.toml"),
    "toml": ("tuilora TOML", ".toml"),
    "kohya-cmd": ("sd-scripts command line", ".sh"),
}
#: ``tuilora train --detach`` returns once the child is started; this only guards a hang.
LAUNCH_TIMEOUT_S: Final = 120.0
#: The wizard's config inside the run folder. Not ``config.toml``: that is the resolved
#: config the trainer writes itself, and its presence means "this folder holds a run".
WIZARD_CONFIG: Final = "wizard.toml"

Runner = Callable[..., subprocess.CompletedProcess[str]]


def advise_argv(state: WizardState) -> list[str]:
    """The ``tuilora advise`` flags that give the same advice as the wizard's answers."""
    answers = state.answers()
    argv = ["advise"]
    for question in answers.asked():
        value = getattr(answers, question.name)
        if question.name == "vram" and answers.vram_source != "flag":
            continue  # detected or assumed: advise finds the same figure by itself
        if value is None or (question.name == "images" and state.dataset is not None):
            continue
        if question.kind == "bool":
            if value:
                argv.append(question.flag)
            continue
        if value == getattr(Answers(), question.name) and question.name != "subject":
            continue
        argv += [question.flag, f"{value:g}" if isinstance(value, float) else str(value)]
    flags = {
        "pretrained_model_name_or_path": "--model",
        "train_data_dir": "--dataset",
        "output_name": "--name",
        "output_dir": "--output-dir",
    }
    for key, value in state.path_overrides().items():
        argv += [flags[key], str(value)]
    for key, value in state.overrides.items():
        argv += ["--set", f"{key}={_toml_value(value)}"]
    return argv


def _toml_value(value: Any) -> str:
    return tomli_w.dumps({"v": value}).strip().removeprefix("v = ")


def default_file(fmt: str, name: str) -> str:
    return (name or "lora") + EXPORTS[fmt][1]


def export_text(state: WizardState, rec: Recommendation, fmt: str) -> str:
    header = command_header(advise_argv(state))
    return render_text(rec, fmt, "" if fmt == "kohya-cmd" else header)


def save_export(
    state: WizardState, rec: Recommendation, fmt: str, path: str, *, overwrite: bool = False
) -> Path:
    """Write one export atomically; UserError names the file when it cannot."""
    if fmt not in EXPORTS:
        raise UserError(f"unknown export {fmt!r}: one of {', '.join(EXPORTS)}")
    if not path.strip():
        raise UserError("file name is empty: type where to save it")
    target = Path(os.path.expanduser(path.strip()))
    if target.exists() and not overwrite:
        raise UserError(f"{target} already exists")
    return write_atomic(target, export_text(state, rec, fmt), overwrite=overwrite)


# ------------------------------------------------------------------------------------------
# training


@dataclass(frozen=True)
class PreparedRun:
    run: RunDir
    config: Path
    command: tuple[str, ...]


def missing_for_training(state: WizardState) -> list[str]:
    """What ``tuilora train`` needs that the wizard does not have yet, in words."""
    missing = []
    if state.dataset is None:
        missing.append("a scanned dataset folder (dataset step)")
    if not state.model_path:
        missing.append("the base model path (hardware step)")
    if not state.output_name:
        missing.append("a LoRA name (hardware step)")
    return missing


class RunExists(UserError):
    """The run folder already holds a run that trained: the wizard asks what to do
    (resume it when a state is saved, start over, or choose another name)."""

    def __init__(self, root: Path, old: OldRun) -> None:
        super().__init__(existing_run_advice(old.status, root))
        self.root = root
        self.old = old


def run_dir_of(state: WizardState) -> RunDir:
    run = RunDir.for_output(state.output_dir or None, state.output_name)
    return RunDir(root=Path(os.path.expanduser(str(run.root))).absolute(), name=run.name)


def prepare_run(state: WizardState, *, start_over: bool = False) -> PreparedRun:
    """Write ``runs/<name>/wizard.toml`` (or ``<output_dir>/wizard.toml``) for ``train``,
    after every check ``train`` makes (a failure leaves no folder behind)."""
    missing = missing_for_training(state)
    if missing:
        raise UserError("to train, the wizard still needs " + " and ".join(missing))
    run = run_dir_of(state)
    root = run.root
    old = find_old_run(run)
    if old is not None and old.status.state in LIVE:
        raise UserError(f"{root} is being trained now: open it with Open run to follow it")
    if old is not None and not old.never_trained and not start_over:
        raise RunExists(root, old)
    config_path = root / WIZARD_CONFIG
    # Absolute paths: the run's config must work from wherever `tuilora train` is started.
    paths = {
        key: str(Path(os.path.expanduser(str(value))).absolute())
        for key, value in state.path_overrides().items()
        if key != "output_name"
    }
    paths["output_dir"] = str(root)
    rec = recommend(
        state.answers(),
        overrides={**state.path_overrides(), **paths, **state.overrides},
        dataset=state.dataset,
    )
    rec.training_config()  # a bad edit names its key before anything is written
    if rec.errors:
        raise UserError(rec.errors[0].message)
    text = render_text(rec, "toml", command_header(advise_argv(state)))
    tomllib.loads(text)  # what train will read must parse; a failure here is a bug
    check_config(text, start_over=start_over)  # everything train checks first
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{root}: cannot create the run folder ({exc.strerror})") from None
    write_atomic(config_path, text, overwrite=True)
    command = train_command(config_path, force=start_over)
    return PreparedRun(run=run, config=config_path, command=tuple(command))


def check_config(text: str, *, start_over: bool) -> None:
    """``tuilora train``'s own checks on the config text, before the run folder exists (the
    text is read from a temporary file: nothing is left behind when a check fails)."""
    with tempfile.TemporaryDirectory(prefix="tuilora-wizard-") as folder:
        path = Path(folder) / WIZARD_CONFIG
        path.write_text(text, encoding="utf-8")
        check_training(str(path), force=start_over)


def resume_command(root: Path) -> tuple[str, ...]:
    return (sys.executable, "-m", "tuilora", "train", "--resume", str(root), "--detach")


def train_command(config: Path, *, force: bool = False) -> list[str]:
    """The child process that trains: the UI never imports the engine (DESIGN §2)."""
    command = [sys.executable, "-m", "tuilora", "train", str(config), "--detach"]
    return [*command, "--force"] if force else command


def launch(command: Sequence[str], runner: Runner = subprocess.run) -> str:
    """Run ``tuilora train --detach``; its last stdout line, or UserError with its stderr."""
    try:
        result = runner(
            list(command),
            capture_output=True,
            text=True,
            timeout=LAUNCH_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UserError(f"tuilora train did not return within {LAUNCH_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise UserError(f"cannot start tuilora train: {exc.strerror}") from None
    if result.returncode != 0:
        raise UserError(
            _last_line(result.stderr) or f"tuilora train exited with {result.returncode}"
        )
    return _last_line(result.stdout)


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def watch_command(root: str | Path) -> str:
    """How to follow a run from a shell (the monitor reattaches to live and finished runs)."""
    return f"tuilora watch {shlex.quote(str(root))}"
