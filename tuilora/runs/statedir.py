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

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

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
    """The newest complete state (what ``--resume`` continues from), or None."""
    for path in reversed(complete_states(state_root)):
        try:
            counters = loads_json((path / "counters.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(counters, dict) and isinstance(counters.get("step"), int):
            return SavedState(path=path, step=int(counters["step"]), counters=counters)
    return None


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
