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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import tomli_w

from tuilora.advisor.answers import Answers
from tuilora.advisor.export import command_header, render_text
from tuilora.advisor.recommend import Recommendation
from tuilora.errors import UserError
from tuilora.fileio import write_atomic
from tuilora.runs.lifecycle import LIVE
from tuilora.runs.preflight import OldRun, check_training, existing_run_advice, find_old_run
from tuilora.runs.rundir import RunDir
from tuilora.wizard.samples import check_prompts, prompt_file_text
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
#: The sample prompts of a run the wizard starts, inside its run folder.
SAMPLE_PROMPTS: Final = "sample_prompts.txt"

Runner = Callable[..., subprocess.CompletedProcess[str]]


def advise_argv(state: WizardState, extra: Mapping[str, Any] | None = None) -> list[str]:
    """The ``tuilora advise`` flags that give the same advice as the wizard's answers.

    ``extra`` are config fields the writing adds (absolute paths, the sample prompt file);
    they replace the typed paths so the header repeats exactly what the file holds.
    """
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
    if state.processes > 1:
        argv += ["--processes", str(state.processes)]
    extra = dict(extra or {})
    paths = {**state.path_overrides(), **{k: v for k, v in extra.items() if k in _PATH_FLAGS}}
    for key, value in paths.items():
        argv += [_PATH_FLAGS[key], str(value)]
    edits = {**{k: v for k, v in extra.items() if k not in _PATH_FLAGS}, **state.overrides}
    if state.sample_prompts and "sample_every_n_epochs" not in edits:
        every = state.recommendation().config.get("sample_every_n_epochs")
        edits = {"sample_every_n_epochs": every, **edits} if every else edits
    for key, value in edits.items():
        argv += ["--set", f"{key}={_toml_value(value)}"]
    return argv


_PATH_FLAGS: Final = {
    "pretrained_model_name_or_path": "--model",
    "train_data_dir": "--dataset",
    "output_name": "--name",
    "output_dir": "--output-dir",
}


def _toml_value(value: Any) -> str:
    return tomli_w.dumps({"v": value}).strip().removeprefix("v = ")


def default_file(fmt: str, name: str) -> str:
    return (name or "lora") + EXPORTS[fmt][1]


def run_root(state: WizardState) -> Path:
    """The run folder: the output folder typed, else ``runs/<name>``; absolute."""
    run = RunDir.for_output(state.output_dir or None, state.output_name or "lora")
    return Path(os.path.expanduser(str(run.root))).absolute()


def written_paths(state: WizardState) -> dict[str, str]:
    """The paths a written config carries: absolute, so it works from any folder, and the
    output folder the wizard asked for (``runs/<name>`` when left empty)."""
    paths = {
        key: str(Path(str(value)).absolute())
        for key, value in state.path_overrides().items()
        if key != "output_name"
    }
    if state.output_name:
        paths["output_dir"] = str(run_root(state))
    return paths


def prompts_file_for(config_file: Path) -> Path:
    """Where the sample prompts of a saved config go: beside it, named after the LoRA."""
    stem = config_file.name.split(".", 1)[0] or "lora"
    return config_file.parent / f"{stem}.prompts.txt"


def export_text(state: WizardState, fmt: str, extra: Mapping[str, Any] | None = None) -> str:
    """The file a format holds, with ``extra`` fields (paths, the prompt file) pinned."""
    extra = {**written_paths(state), **(extra or {})}
    rec = checked(state.recommendation({**extra, **state.overrides}))
    if fmt == "kohya-cmd":
        header = command_header(advise_argv(state, extra))
        lines = "".join(f"# {line}\n" for line in header.splitlines())
        return f"#!/usr/bin/env bash\n{lines}" + render_text(rec, fmt)
    return render_text(rec, fmt, command_header(advise_argv(state, extra)))


def checked(rec: Recommendation) -> Recommendation:
    """``rec`` if it makes a valid config; else UserError naming the key (nothing written)."""
    rec.training_config()
    if rec.errors:
        raise UserError(rec.errors[0].message)
    return rec


def command_text(state: WizardState) -> str:
    """The sd-scripts command line alone (what the command view lays out for copying)."""
    extra = written_paths(state)
    return render_text(state.recommendation({**extra, **state.overrides}), "kohya-cmd")


def save_export(state: WizardState, fmt: str, path: str, *, overwrite: bool = False) -> Path:
    """Write one export atomically (and its sample prompt file); UserError names the file.

    The command-line export is a script: it starts with a shebang and is executable.
    """
    if fmt not in EXPORTS:
        raise UserError(f"unknown export {fmt!r}: one of {', '.join(EXPORTS)}")
    if not path.strip():
        raise UserError("file name is empty: type where to save it")
    target = Path(os.path.expanduser(path.strip())).absolute()
    if target.exists() and not overwrite:
        raise UserError(f"{target} already exists")
    extra: dict[str, Any] = {}
    lines = state.sample_prompts or []
    prompts = prompts_file_for(target) if lines else None
    if prompts is not None:
        check_prompts(lines)
        if prompts.exists() and not overwrite and _read(prompts) != prompt_file_text(lines):
            raise UserError(f"{prompts} already exists")
        extra["sample_prompts"] = str(prompts)
    content = export_text(state, fmt, extra)  # a bad edit names its key before writing
    if prompts is not None:
        write_atomic(prompts, prompt_file_text(lines), overwrite=True)
    written = write_atomic(target, content, overwrite=overwrite)
    if fmt == "kohya-cmd":
        written.chmod(0o777 & ~_umask())
    return written


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    return RunDir(root=run_root(state), name=state.output_name or "lora")


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
    extra: dict[str, Any] = {}
    prompts = root / SAMPLE_PROMPTS
    if state.sample_prompts:
        check_prompts(state.sample_prompts)
        extra["sample_prompts"] = str(prompts)
    text = export_text(state, "toml", extra)  # a bad edit names its key before writing
    tomllib.loads(text)  # what train will read must parse; a failure here is a bug
    check_config(state, start_over=start_over)  # everything train checks first
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{root}: cannot create the run folder ({exc.strerror})") from None
    if state.sample_prompts:
        write_atomic(prompts, prompt_file_text(state.sample_prompts), overwrite=True)
    write_atomic(config_path, text, overwrite=True)
    command = train_command(config_path, state.processes, force=start_over)
    return PreparedRun(run=run, config=config_path, command=tuple(command))


def check_config(state: WizardState, *, start_over: bool) -> None:
    """``tuilora train``'s own checks on the run's config, before the run folder exists: the
    config (and its sample prompts) go to a temporary folder, so nothing is left behind when
    a check fails."""
    with tempfile.TemporaryDirectory(prefix="tuilora-wizard-") as folder:
        extra: dict[str, Any] = {}
        if state.sample_prompts:
            prompts = Path(folder) / SAMPLE_PROMPTS
            prompts.write_text(prompt_file_text(state.sample_prompts), encoding="utf-8")
            extra["sample_prompts"] = str(prompts)
        path = Path(folder) / WIZARD_CONFIG
        path.write_text(export_text(state, "toml", extra), encoding="utf-8")
        check_training(str(path), force=start_over)


def resume_command(root: Path) -> tuple[str, ...]:
    return (sys.executable, "-m", "tuilora", "train", "--resume", str(root), "--detach")


def train_command(config: Path, processes: int = 1, *, force: bool = False) -> list[str]:
    """The child process that trains: the UI never imports the engine (DESIGN §2)."""
    argv = [sys.executable, "-m", "tuilora", "train", str(config), "--detach"]
    argv += ["--processes", str(processes)] if processes > 1 else []
    return [*argv, "--force"] if force else argv


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
