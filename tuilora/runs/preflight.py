"""Every check a user can fail, before anything is written and before torch is imported.

``tuilora train`` (foreground and ``--detach``) and the wizard call ``check_training``
first: the config, the model and VAE paths, the dataset, the sample prompts, the state to
resume, the output folder (writable, not someone else's files, not a live run). Only when
all pass is the run folder created or touched (``runs.begin``). A resume check answers in
well under a second: it reads JSON files and a few headers.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tuilora.config import TrainingConfig, load_toml, output_name_problem
from tuilora.errors import UserError
from tuilora.modelfile.describe import PICKLE_SUFFIXES, describe_model, refuse_pickle
from tuilora.modelfile.header import read_safetensors_header
from tuilora.modelfile.lora import check_lora_file
from tuilora.runs import statedir
from tuilora.runs.events import iter_events, read_events
from tuilora.runs.lifecycle import LIVE
from tuilora.runs.rundir import RunDir, written_loras
from tuilora.runs.status import RunStatus, is_run_folder, run_status
from tuilora.runs.trainer import lock_is_held

SUBJECT_COUNT_PROBLEMS: Final = frozenset({"too-few-images", "too-many-images"})
#: Set by ``train --detach`` (and ``--processes``) for the trainer it starts: the dataset
#: passed the checks there, so the trainer writes its first event at once and scans the
#: dataset again as its first phase (a large dataset takes seconds to scan).
DATASET_CHECKED: Final = "TUILORA_DATASET_CHECKED"


@dataclass
class OldRun:
    """A run already in the folder that the new one replaces, and its files to remove."""

    status: RunStatus
    name: str
    loras: list[Path]

    @property
    def never_trained(self) -> bool:
        """It holds nothing worth keeping: no step, no saved state, no LoRA written."""
        status = self.status
        return not status.trained and status.resumable_step is None and not self.loras

    @property
    def can_resume(self) -> bool:
        return self.status.resumable_step is not None and self.status.state != "finished"


@dataclass
class Plan:
    """What ``train`` will do, decided before anything is written."""

    config: TrainingConfig
    run: RunDir
    resume: statedir.SavedState | None = None
    replace: OldRun | None = None
    #: Files named as this run's LoRAs that it did not write (``--force`` replaces them).
    foreign_loras: list[Path] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    force: bool = False

    @property
    def dataset_deferred(self) -> bool:
        """The dataset scan is the trainer's first phase (see ``DATASET_CHECKED``)."""
        return os.environ.get(DATASET_CHECKED) == "1"


# -- the config ------------------------------------------------------------------------
def load_config(
    config_path: str | None, resume: str | None
) -> tuple[TrainingConfig, RunDir, list[str]]:
    """The config to train, its run folder, and notices (e.g. ignored sd-scripts keys)."""
    if resume:
        root = Path(resume)
        if not root.is_dir():
            raise UserError(f"--resume {resume}: no such run folder")
        if not is_run_folder(root) or not (root / "config.toml").is_file():
            raise UserError(
                f"--resume {resume}: not a tuilora run folder (no config.toml and events.jsonl)"
            )
        config = load_toml(root / "config.toml").config
        if config_path:
            check_same_config(config_path, config, root)
        return config, RunDir(root, config.output_name or "lora"), []
    if not config_path:
        raise UserError("give a config file (tuilora train CONFIG) or --resume RUN")
    loaded = load_toml(config_path)
    notices = list(loaded.notices)
    config = loaded.config
    if config.seed is None:
        # sd-scripts draws a seed when none is given; it is written into the run's
        # config.toml (and ss_seed) so that --resume continues with the same one.
        config.seed = random.randint(0, 2**32)
    if config.output_name is None:
        name = Path(config_path).stem
        problem = output_name_problem(name)
        if problem:
            raise UserError(
                f"{config_path}: no output_name, and the file's name {name!r} cannot be one"
                f" ({problem}); set output_name"
            )
        config.output_name = name
    return config, RunDir.for_output(config.output_dir, config.output_name), notices


# -- resuming with the run's own settings ----------------------------------------------
#: Where files are may change between sessions (a moved dataset or model); what is trained
#: may not: a resume continues the run exactly (docs/engine.md).
RESUME_MAY_MOVE: Final = frozenset(
    {
        "pretrained_model_name_or_path",
        "vae",
        "model_config",
        "train_data_dir",
        "reg_data_dir",
        "output_dir",
        "sample_prompts",
    }
)


def config_differences(now: TrainingConfig, then: Mapping[str, Any]) -> list[str]:
    """``key: then -> now`` for each training setting that differs (paths may move)."""
    current = json.loads(json.dumps(now.to_dict(), default=str))
    changed = []
    for key, old in then.items():
        if key in RESUME_MAY_MOVE or key not in current:
            continue
        if json.dumps(current[key], sort_keys=True) != json.dumps(old, sort_keys=True):
            changed.append(f"{key}: {old!r} -> {current[key]!r}")
    return changed


def check_same_config(config_path: str, run_config: TrainingConfig, root: Path) -> None:
    """``train CONFIG --resume RUN``: --resume wins (the run continues with RUN/config.toml);
    CONFIG is accepted only when it describes the same training, so that it is never silently
    ignored (issue 17)."""
    given = load_toml(config_path).config
    if given.seed is None:
        given.seed = run_config.seed  # a file without a seed: the run drew one
    changed = config_differences(given, run_config.to_dict())
    if changed:
        raise UserError(
            f"{config_path} differs from the run's {root / 'config.toml'} ({changed[0]}): a"
            f" resumed run continues with its own settings; run `tuilora train --resume {root}`"
            " alone, or train CONFIG as a new run"
        )


def check_unchanged_since_start(run: RunDir, config: TrainingConfig) -> None:
    """The run's config.toml still holds what its last session trained with (the ``start``
    event's config): an edited optimizer, rank or schedule would load the saved state into
    different training, or be accepted silently (issue 17)."""
    starts = [e for e in read_events(run.events) if e.get("type") == "start"]
    if not starts:
        return
    changed = config_differences(config, starts[-1].get("config") or {})
    if changed:
        raise UserError(
            f"--resume {run.root}: {run.config} was changed since the run started"
            f" ({changed[0]}); put it back to resume, or train the new settings as a new run"
        )


# -- model files -----------------------------------------------------------------------
# One source for what a model path is: ``tuilora.modelfile`` (torch-free header reading and
# family detection, the pickle consent rule). The engine loads through the same functions.
def check_base_model(value: str | None, *, allow_pickle: bool) -> None:
    """The base model is a diffusers folder or a model file tuilora recognises."""
    key = "pretrained_model_name_or_path"
    if not value:
        raise UserError(
            f"{key} is not set: give the base model (a diffusers folder or a .safetensors file)"
        )
    refuse_pickle(Path(value).expanduser(), allow_pickle, what=key)
    model = describe_model(value, what=key)
    if model.pickled_parts:
        refuse_pickle(Path(model.pickled_parts[0]), allow_pickle, what=key)


def check_vae_file(value: str, *, allow_pickle: bool) -> None:
    """A VAE is a diffusers folder (``config.json``) or one weights file."""
    path = Path(value).expanduser()
    refuse_pickle(path, allow_pickle, what="vae")
    if not path.exists():
        raise UserError(f"vae {value}: no such file or folder")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserError(
                f"vae {value}: not a diffusers VAE folder (no config.json); give the folder"
                " saved by diffusers or a single .safetensors file"
            )
        return
    if path.suffix.lower() in PICKLE_SUFFIXES:
        try:
            with path.open("rb") as handle:
                handle.read(1)
        except OSError as exc:
            raise UserError(f"vae {path}: cannot read ({exc.strerror})") from None
        return
    if path.suffix.lower() != ".safetensors":
        raise UserError(f"vae {value}: expected a .safetensors (or .ckpt) file or a folder")
    read_safetensors_header(path)


def check_inputs(config: TrainingConfig, *, allow_pickle: bool, force: bool) -> list[str]:
    """Model, VAE, weights, dataset and prompt files; returns the dataset's warnings."""
    check_base_model(config.pretrained_model_name_or_path, allow_pickle=allow_pickle)
    if config.vae:
        check_vae_file(config.vae, allow_pickle=allow_pickle)
    if config.network_weights:
        check_lora_file(config.network_weights, "network_weights", allow_pickle=allow_pickle)
    for weights in config.base_weights:
        check_lora_file(weights, "base_weights", allow_pickle=allow_pickle)
    if config.reg_data_dir and not Path(config.reg_data_dir).is_dir():
        raise UserError(f"reg_data_dir {config.reg_data_dir}: no such folder")
    if config.sample_prompts:
        from tuilora.runs.prompts import load_prompts

        load_prompts(config.sample_prompts)
    if os.environ.get(DATASET_CHECKED) == "1":
        return []  # checked by the launching process; the trainer repeats it as a phase
    return check_dataset(config, force)


def check_dataset(config: TrainingConfig, force: bool) -> list[str]:
    """Refuse a dataset with errors unless forced (scenario 7); return warnings to show."""
    if not config.train_data_dir:
        raise UserError("train_data_dir is not set: give the folder of <repeats>_<name> folders")
    if not Path(config.train_data_dir).is_dir():
        raise UserError(f"train_data_dir {config.train_data_dir}: no such folder")
    from tuilora.dataset.scan import scan_dataset

    width, _ = config.resolution_wh()
    # Near-duplicates are only ever "info", dropped here: their pixel hash is skipped.
    report = scan_dataset(
        config.train_data_dir,
        resolution=width,
        caption_extension=config.caption_extension,
        near_duplicates=False,
    )
    # The subject is not part of a training config, so image-count advice is the advisor's.
    problems = [p for p in report.problems if p.id not in SUBJECT_COUNT_PROBLEMS]
    errors = [p for p in problems if p.severity == "error"]
    if errors and not force:
        raise UserError(
            f"the dataset has {len(errors)} error(s), first: {errors[0].message} — run"
            f" `tuilora dataset check {config.train_data_dir}` for all, or pass --force"
        )
    return [p.message for p in problems if p.severity in ("error", "warning")]


# -- the run folder --------------------------------------------------------------------
def check_writable(root: Path) -> None:
    """``root`` (or the folder it would be created in) can be written."""
    probe = root
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"output_dir {root}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"output_dir {root}: {probe} is not writable")


def describe(status: RunStatus) -> str:
    step = f" at step {status.step}" if status.step else ""
    return f"{status.state}{step}"


def existing_run_advice(status: RunStatus, root: Path) -> str:
    """What to do about a run already in the folder: ``--resume`` only when it can."""
    options = []
    if status.resumable_step is not None and status.state != "finished":
        options.append(f"continue it with `tuilora train --resume {root}`")
    options.append("start over with --force (its files are replaced)")
    options.append("or choose another output_name / output_dir")
    return f"{root} already holds a run ({describe(status)}): " + ", ".join(options)


def old_run(run: RunDir, status: RunStatus) -> OldRun:
    name = run.name
    config = run.root / "config.toml"
    if config.is_file():
        # A damaged config: its LoRA files are still named after this run.
        with contextlib.suppress(UserError):
            name = load_toml(config).config.output_name or name
    old = RunDir(run.root, name)
    return OldRun(status=status, name=name, loras=written_loras(old, iter_events(run.events)))


def find_old_run(run: RunDir) -> OldRun | None:
    """The run already in ``run``'s folder (None when it holds none)."""
    if not is_run_folder(run.root):
        return None
    return old_run(run, run_status(run.root))


def refuse_live(status: RunStatus, run: RunDir) -> None:
    """A run whose lock is held is never touched, with or without --force."""
    if status.pid is not None or status.state in LIVE or lock_is_held(run.lock):
        who = f" (pid {status.pid})" if status.pid else ""
        raise UserError(
            f"{run.root} is being trained now{who}: stop it first with"
            f" `tuilora stop {run.root}`, or choose another output_name / output_dir"
        )


def check_run_folder(plan: Plan, *, force: bool) -> None:
    run = plan.run
    if run.root.exists() and not run.root.is_dir():
        raise UserError(f"output_dir {run.root}: is a file, not a folder")
    check_writable(run.root)
    if not run.root.is_dir():
        return
    status = run_status(run.root)
    refuse_live(status, run)
    if is_run_folder(run.root):
        old = old_run(run, status)
        if old.never_trained:
            plan.notices.append(
                f"replacing the earlier run in {run.root}: it never trained a step ({status.state})"
            )
        elif not force:
            raise UserError(existing_run_advice(status, run.root))
        plan.replace = old
    else:
        foreign = run.foreign_items()
        if foreign:
            shown = ", ".join(
                f"{name}/" if (run.root / name).is_dir() else name for name in foreign
            )
            raise UserError(
                f"output_dir {run.root} holds {shown} that no tuilora run wrote: a run keeps its"
                " own files there and never touches anyone else's — choose an empty or new"
                " output_dir (e.g. a subfolder)"
            )
    replaced = set(plan.replace.loras) if plan.replace else set()
    plan.foreign_loras = [p for p in run.lora_files() if p not in replaced]
    if plan.foreign_loras and not force:
        names = ", ".join(p.name for p in plan.foreign_loras[:3])
        raise UserError(
            f"{run.root} holds {names} that this run did not write; pass --force to let the"
            " run replace files of that name as it saves, or choose another output_name"
        )


def check_resume(plan: Plan) -> None:
    run = plan.run
    status = run_status(run.root)
    refuse_live(status, run)
    # A finished run keeps its last states (save_state_every_n_minutes, save_state), but
    # resuming it would only train its last steps again and rewrite its final LoRA.
    finished = status.state == "finished"
    saved = statedir.newest_state(run.state) if not finished else None
    damaged = statedir.damaged_newer(run.state, saved) if not finished else []
    if saved is None:
        if finished:
            reason = f"it finished at step {status.step}: nothing to resume"
        elif damaged:
            reason = f"its saved state {damaged[0][0]} is damaged: {damaged[0][1]}"
        elif statedir.legacy_state(run.state):
            reason = "its state was saved by an older tuilora (pickled), which is not loaded"
        elif not status.trained:
            reason = "it stopped before its first step: nothing to resume"
        else:
            reason = (
                "no saved training state (state is saved when a run is stopped, every"
                " save_state_every_n_minutes, and each epoch with save_state)"
            )
        raise UserError(
            f"--resume {run.root}: {reason}; start it over with"
            f" `tuilora train {run.config} --force`, or choose another output_name"
        )
    problem = statedir.state_files_problem(saved.path)
    if problem:
        raise UserError(
            f"--resume {run.root}: its saved state {saved.path.name} is damaged: {problem}"
        )
    for path, why in damaged:
        plan.notices.append(f"state {path.name} is damaged ({why}); resuming at step {saved.step}")
    check_unchanged_since_start(run, plan.config)
    check_writable(run.root)
    plan.resume = saved


def check_training(
    config_path: str | None,
    *,
    resume: str | None = None,
    force: bool = False,
    allow_pickle: bool = False,
    v_parameterization: bool = False,
) -> Plan:
    """Everything ``train`` checks before it writes (raises UserError naming the problem)."""
    config, run, notices = load_config(config_path, resume)
    if v_parameterization:
        config.v_parameterization = True
    plan = Plan(config=config, run=run, notices=notices, force=force)
    if resume:
        check_resume(plan)
    plan.warnings = check_inputs(config, allow_pickle=allow_pickle, force=force)
    if not resume:
        check_run_folder(plan, force=force)
    return plan
