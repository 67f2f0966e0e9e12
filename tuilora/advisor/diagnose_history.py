"""Run history: which run's diagnose produced which run's config, and how each run ended.

When diagnose writes the next run's config it leaves ``lineage.json`` in the next run's
directory (the revised config's ``output_dir``), so the link survives whatever the engine
later writes there:

```json
{"version": 1, "parent": "../aria", "made_by": "tuilora diagnose", "created": 1760000000.0,
 "config_file": "aria-r2.toml", "observations": {...}, "findings": ["strength-lower"],
 "snapshot": {...}, "changes": {"unet_lr": {"from": 0.0001, "to": 5e-05, ...}}}
```

``parent`` is relative to the directory holding ``lineage.json`` when it can be. ``history``
reads every run under a root folder and links them into trees; ``render_history`` draws them
with the diff between consecutive configs (read from both runs' ``config.toml`` when they
exist, else the recorded changes) and each run's outcome (end status, epochs, last loss).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tuilora.advisor.diagnose import Diagnosis, Observations, config_values
from tuilora.advisor.diagnose_metrics import (
    loss_text,
    metrics_from_file,
)
from tuilora.config import load_toml
from tuilora.errors import UserError
from tuilora.fileio import write_atomic
from tuilora.parsing import loads_json

LINEAGE_FILE: Final = "lineage.json"
#: Fields that always differ between runs and say nothing about the training.
_NOT_DIFFED: Final = frozenset({"output_dir"})


def write_lineage(
    run_dir: str | Path,
    parent: str | Path,
    diagnosis: Diagnosis,
    observations: Observations,
    *,
    config_file: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Record in ``run_dir`` (created when missing) that ``parent``'s diagnose made it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "version": 1,
        "parent": _relative(Path(parent), run_dir),
        "made_by": "tuilora diagnose",
        "created": round(time.time(), 3),
        "config_file": str(config_file) if config_file else None,
        "observations": observations.to_json(),
        "findings": [finding.id for finding in diagnosis.findings],
        "snapshot": diagnosis.snapshot.to_json() if diagnosis.snapshot else None,
        "changes": {name: change.to_json() for name, change in diagnosis.changes.items()},
    }
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    return write_atomic(run_dir / LINEAGE_FILE, text, overwrite=overwrite)


def _relative(target: Path, start: Path) -> str:
    try:
        return os.path.relpath(target.resolve(), start.resolve())
    except ValueError:  # another drive on Windows
        return str(target.resolve())


def read_lineage(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = loads_json((run_dir / LINEAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class HistoryEntry:
    path: Path
    status: str
    epochs_done: int
    epochs_planned: int | None
    #: The run's loss figure (``RunMetrics.level``), shown as ``loss_text`` shows it.
    loss: str
    parent: Path | None = None
    #: field -> (from, to) against the parent run's config
    diff: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    observations: Mapping[str, Any] = field(default_factory=dict)
    children: list[HistoryEntry] = field(default_factory=list)


def history(root_dir: str | Path) -> list[HistoryEntry]:
    """Every run under ``root_dir`` as trees of HistoryEntry, oldest first."""
    root = Path(root_dir)
    if not root.is_dir():
        raise UserError(f"{root}: no such runs folder")
    runs = sorted((p for p in root.iterdir() if p.is_dir() and _is_run(p)), key=lambda p: p.name)
    entries = {p.resolve(): _entry(p) for p in runs}
    for entry in list(entries.values()):
        parent = entry.parent.resolve() if entry.parent else None
        if parent is not None and parent not in entries and _is_run(parent):
            entries[parent] = _entry(parent)
    tops: list[HistoryEntry] = []
    for entry in sorted(entries.values(), key=_started):
        parent_entry = entries.get(entry.parent.resolve()) if entry.parent else None
        if parent_entry is None:
            tops.append(entry)
            continue
        entry.diff = _diff(parent_entry.path, entry)
        parent_entry.children.append(entry)
    return tops


def _is_run(path: Path) -> bool:
    return any((path / name).exists() for name in ("config.toml", "events.jsonl", LINEAGE_FILE))


def _started(entry: HistoryEntry) -> tuple[float, str]:
    events = entry.path / "events.jsonl"
    lineage = entry.path / LINEAGE_FILE
    stamp = min((p.stat().st_mtime for p in (events, lineage) if p.exists()), default=float("inf"))
    return stamp, entry.path.name


def _entry(path: Path) -> HistoryEntry:
    metrics = metrics_from_file(path / "events.jsonl")
    if metrics is None:
        status = "not started"
    elif metrics.end_status:
        status = metrics.end_status
    else:
        status = "running or stopped"
    lineage = read_lineage(path) or {}
    parent = lineage.get("parent")
    return HistoryEntry(
        path=path,
        status=status,
        epochs_done=metrics.epochs_done if metrics else 0,
        epochs_planned=metrics.epochs_planned if metrics else None,
        loss=loss_text(metrics) if metrics else "",
        parent=(path / parent) if isinstance(parent, str) else None,
        observations=lineage.get("observations") or {},
    )


def _config_of(path: Path, lineage: Mapping[str, Any]) -> dict[str, Any] | None:
    candidates = [path / "config.toml"]
    if lineage.get("config_file"):
        candidates.append(Path(str(lineage["config_file"])))
    for candidate in candidates:
        if candidate.is_file():
            try:
                return config_values(load_toml(candidate).config)
            except UserError:
                return None
    return None


def _diff(parent: Path, child: HistoryEntry) -> dict[str, tuple[Any, Any]]:
    lineage = read_lineage(child.path) or {}
    before, after = _config_of(parent, {}), _config_of(child.path, lineage)
    if before is not None and after is not None:
        keys = [k for k in {**before, **after} if k not in _NOT_DIFFED]
        return {k: (before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)}
    recorded = lineage.get("changes") or {}
    return {
        name: (change.get("from"), change.get("to"))
        for name, change in recorded.items()
        if isinstance(change, dict) and name not in _NOT_DIFFED
    }


# ------------------------------------------------------------------------------------------
# rendering


def render_history(tops: Sequence[HistoryEntry], root: str | Path | None = None) -> str:
    """The trees as plain text, one run per line and its diff below it."""
    if not tops:
        return "no runs found\n"
    lines: list[str] = []
    for top in tops:
        _render(top, lines, "", "", Path(root) if root else None)
    return "\n".join(lines) + "\n"


def _render(
    entry: HistoryEntry, lines: list[str], lead: str, child_lead: str, root: Path | None
) -> None:
    lines.append(f"{lead}{_name(entry.path, root)}  {outcome_text(entry)}")
    seen = _observed_text(entry.observations)
    if seen:
        lines.append(f"{child_lead}  tested: {seen}")
    for name, (old, new) in entry.diff.items():
        lines.append(f"{child_lead}  {name}: {_value(old)} -> {_value(new)}")
    for index, child in enumerate(entry.children):
        last = index == len(entry.children) - 1
        _render(
            child,
            lines,
            child_lead + ("`-- " if last else "|-- "),
            child_lead + ("    " if last else "|   "),
            root,
        )


def outcome_text(entry: HistoryEntry) -> str:
    epochs = f"{entry.epochs_done}/{entry.epochs_planned or '?'} epochs"
    loss = f", {entry.loss}" if entry.loss else ""
    return f"[{entry.status}] {epochs}{loss}"


def _name(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def _observed_text(observations: Mapping[str, Any]) -> str:
    parts = []
    for key, value in observations.items():
        if value in (None, False):
            continue
        parts.append(key.replace("_", "-") if value is True else f"{key} {_value(value)}")
    return ", ".join(parts)


def _value(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return " ".join(str(v) for v in value) or "(none)"
    return str(value)
