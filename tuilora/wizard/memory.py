"""Remember the last answers between runs, in the platform's config directory.

``$XDG_CONFIG_HOME/tuilora/last-answers.json`` (else ``~/.config/tuilora``; on Windows
``%APPDATA%\\tuilora``). The file is a convenience: a missing, unreadable or outdated one is
ignored (the wizard then starts from the defaults), and answers that no longer validate
are dropped one by one rather than refusing the whole file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Final

from tuilora.advisor.answers import QUESTIONS_BY_NAME, Answers
from tuilora.errors import UserError
from tuilora.fileio import write_atomic
from tuilora.parsing import loads_json
from tuilora.wizard.fields import parse, show
from tuilora.wizard.state import WizardState

FILE_NAME: Final = "last-answers.json"
_PATHS: Final = ("dataset_path", "model_path", "output_name", "output_dir")


def config_dir() -> Path:
    """tuilora's folder in the platform config directory (not created here)."""
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg:
        return Path(xdg) / "tuilora"
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "tuilora"
    return Path.home() / ".config" / "tuilora"


def memory_file() -> Path:
    return config_dir() / FILE_NAME


def save_last(state: WizardState, path: Path | None = None) -> Path | None:
    """Write the answers and paths; returns the file, or None when it cannot be written."""
    target = path or memory_file()
    data = {
        "version": 1,
        "answers": {k: v for k, v in state.values.items() if k in QUESTIONS_BY_NAME},
        "vram_typed": state.vram_typed,
        **{name: getattr(state, name) for name in _PATHS},
        "overrides": state.overrides,
        "processes": state.processes,
        "sample_prompts": state.sample_prompts,
        "sample_every": state.sample_every,
    }
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, json.dumps(data, indent=2) + "\n", overwrite=True)
    except (OSError, UserError):
        return None  # remembering is a convenience; a read-only home must not stop the wizard
    return target


def load_last(path: Path | None = None) -> WizardState | None:
    """The remembered state, or None when there is nothing usable."""
    source = path or memory_file()
    try:
        data = loads_json(source.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("answers"), dict):
        return None
    state = WizardState()
    for name, value in data["answers"].items():
        if _valid_answer(name, value):
            state.values[name] = value
    if not state.values:
        return None
    state.vram_typed = bool(data.get("vram_typed")) and "vram" in state.values
    for name in _PATHS:
        value = data.get(name)
        if isinstance(value, str):
            setattr(state, name, value)
    state.overrides = _valid_overrides(data.get("overrides"))
    processes = data.get("processes")
    if isinstance(processes, int) and not isinstance(processes, bool) and 1 <= processes <= 64:
        state.processes = processes
    prompts = data.get("sample_prompts")
    if isinstance(prompts, list) and all(isinstance(line, str) for line in prompts):
        state.sample_prompts = [line for line in prompts if line.strip()]
    elif prompts is None:
        state.sample_prompts = None
    every = data.get("sample_every")
    if isinstance(every, int) and not isinstance(every, bool) and every >= 1:
        state.sample_every = every
    return state


def _valid_overrides(raw: Any) -> dict[str, Any]:
    """Review edits that still read as their field's type (the rest are dropped)."""
    if not isinstance(raw, dict):
        return {}
    kept: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            kept[key] = parse(str(key), show(value))
        except UserError:
            continue  # a field renamed or retyped since: forget that one edit
    return kept


def _valid_answer(name: str, value: Any) -> bool:
    if name not in QUESTIONS_BY_NAME:
        return False
    try:
        Answers.from_dict({"category": "A", name: value}).validate(images_required=False)
    except (UserError, TypeError):
        return False
    return True
