"""``tuilora train --detach``: find the run directory (no torch), then start the trainer
detached and say where to follow it."""

from __future__ import annotations

import sys
from pathlib import Path

from tuilora.config import load_toml
from tuilora.errors import UserError
from tuilora.runs.launch import launch_detached
from tuilora.runs.rundir import RunDir


def run_root_for(config_path: str | None, resume: str | None) -> Path:
    if resume:
        return Path(resume)
    if not config_path:
        raise UserError("give a config file (tuilora train CONFIG) or --resume RUN")
    config = load_toml(config_path).config
    name = config.output_name or Path(config_path).stem
    return RunDir.for_output(config.output_dir, name).root


def start_detached(
    config_path: str | None,
    *,
    resume: str | None,
    force: bool,
    allow_pickle: bool,
    v_parameterization: bool,
    processes: int = 1,
) -> int:
    root = run_root_for(config_path, resume)
    if not resume and (root / "events.jsonl").exists() and not force:
        raise UserError(
            f"{root} already holds a run: pass --force to start over, or --resume {root}"
        )
    args = [config_path] if config_path else []
    args += ["--resume", resume] if resume else []
    args += ["--force"] if force else []
    args += ["--allow-pickle"] if allow_pickle else []
    args += ["--v-parameterization"] if v_parameterization else []
    args += ["--processes", str(processes)] if processes > 1 else []
    args.append("--no-progress")
    pid = launch_detached([a for a in args if a is not None], root)
    print(f"training in the background (pid {pid}): {root}", file=sys.stderr)
    print(f"follow it with: tuilora watch {root}    log: {root / 'train.log'}", file=sys.stderr)
    return 0
