"""The layout of ``RUN/state/``: numbered, complete training states (no torch here).

Each save writes a hidden staging folder ``state/.00000123.tmp/``, fsyncs every file in it
and renames it to ``state/00000123/`` (the step, eight digits) in one atomic step, then
removes the older ones beyond the last two — each by renaming it to a hidden
``.00000100.trash`` first, so a half-deleted folder never carries a state's name. At every
instant, then, the newest numbered folder is a complete state, and a kill at any point
leaves at most hidden leftovers, which the next start of the run removes.

A complete state holds ``network.safetensors``, ``optimizer.safetensors`` +
``optimizer.json``, ``scheduler.json`` and ``counters.json`` — no pickle anywhere, so
resuming never runs code from a file (issue 12).
"""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tuilora.errors import UserError
from tuilora.modelfile.header import read_safetensors_header
from tuilora.parsing import loads_json

STEP_DIGITS: Final = 8
KEEP: Final = 2
_COMPLETE = re.compile(rf"^\d{{{STEP_DIGITS}}}$")
_LEFTOVER = re.compile(rf"^\.\d{{{STEP_DIGITS}}}\.(tmp|trash)$")
STATE_FILES: Final = (
    "network.safetensors",
    "optimizer.safetensors",
    "optimizer.json",
    "scheduler.json",
    "counters.json",
)


@dataclass(frozen=True)
class SavedState:
    path: Path
    step: int
    counters: dict[str, Any]

    @property
    def elapsed_s(self) -> float:
        value = self.counters.get("elapsed_s", 0.0)
        return float(value) if isinstance(value, int | float) else 0.0


def folder_for(state_root: Path, step: int) -> Path:
    return state_root / f"{step:0{STEP_DIGITS}d}"


def staging_for(state_root: Path, step: int) -> Path:
    return state_root / f".{step:0{STEP_DIGITS}d}.tmp"


def trash_for(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.trash")


def complete_states(state_root: Path) -> list[Path]:
    """The complete state folders, oldest first."""
    try:
        entries = list(state_root.iterdir())
    except OSError:
        return []
    found = [
        path
        for path in entries
        if _COMPLETE.match(path.name)
        and path.is_dir()
        and all((path / name).is_file() for name in STATE_FILES)
    ]
    return sorted(found, key=lambda path: int(path.name))


def newest_state(state_root: Path) -> SavedState | None:
    """The newest complete state with sound counters (what ``--resume`` continues from)."""
    for path in reversed(complete_states(state_root)):
        saved = read_counters(path)
        if isinstance(saved, SavedState):
            return saved
    return None


def damaged_newer(state_root: Path, saved: SavedState | None) -> list[tuple[Path, str]]:
    """The complete state folders newer than ``saved`` (all, when None), each with why it
    cannot be resumed from."""
    found = []
    for path in reversed(complete_states(state_root)):
        if saved is not None and path == saved.path:
            break
        why = read_counters(path)
        found.append((path, why if isinstance(why, str) else "unreadable"))
    return found


def _whole(low: int) -> Callable[[Any], bool]:
    return lambda value: type(value) is int and low <= value <= 2**53


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and value >= 0


#: What ``engine.state.Counters`` writes into counters.json, field by field.
COUNTER_CHECKS: Final[dict[str, Callable[[Any], bool]]] = {
    "step": _whole(1),
    "epoch": _whole(0),
    "batch_in_epoch": _whole(0),
    "loss_ema": lambda value: (
        value is None or (type(value) in (int, float) and math.isfinite(value))
    ),
    "session_id": _whole(0),
    "started_at": _number,
    "elapsed_s": _number,
}


def read_counters(path: Path) -> SavedState | str:
    """The state in folder ``path``, or why its counters.json cannot be trusted (unreadable,
    a field of the wrong type or range, a step other than the folder's): a hand-edited or
    damaged file must not resume from a step no run reached (issue 17)."""
    try:
        counters = loads_json((path / "counters.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"counters.json cannot be read ({exc})"
    if not isinstance(counters, dict) or "step" not in counters:
        return "counters.json holds no step"
    for name, check in COUNTER_CHECKS.items():
        if name in counters and not check(counters[name]):
            return f"counters.json: {name} = {counters[name]!r} is not what tuilora writes"
    if counters["step"] != int(path.name):
        return f"counters.json says step {counters['step']}, its folder step {int(path.name)}"
    return SavedState(path=path, step=counters["step"], counters=counters)


def state_files_problem(path: Path) -> str:
    """Why the files of the state in ``path`` cannot be loaded ("" when they can): each
    safetensors file whole, each JSON file parseable. Read without torch, before a resume
    loads the model."""
    for name in STATE_FILES:
        file = path / name
        if name.endswith(".safetensors"):
            try:
                read_safetensors_header(file)
            except UserError as error:
                return str(error)
            continue
        try:
            loads_json(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return f"{file}: not readable JSON ({exc})"
    return ""


def legacy_state(state_root: Path) -> bool:
    """A state in the layout before numbered folders (pickled ``optimizer.pt``)."""
    return (state_root / "counters.json").is_file() and (state_root / "optimizer.pt").exists()


def leftovers(state_root: Path) -> list[Path]:
    """Hidden staging and trash folders of saves or prunes that were killed."""
    try:
        entries = list(state_root.iterdir())
    except OSError:
        return []
    return sorted(path for path in entries if _LEFTOVER.match(path.name))


def remove_leftovers(state_root: Path) -> list[Path]:
    """Remove what :func:`leftovers` finds (at the start of a run); returns what it removed."""
    removed = leftovers(state_root)
    for path in removed:
        remove_tree(path)
    return removed


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def prune(state_root: Path, keep: int = KEEP) -> None:
    """Keep the newest ``keep`` complete states; each older one is renamed to a hidden trash
    name before it is deleted, so no partly deleted folder ever looks complete."""
    for old in complete_states(state_root)[:-keep]:
        trash = trash_for(old)
        remove_tree(trash)
        old.rename(trash)
        remove_tree(trash)
