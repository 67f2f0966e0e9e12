"""Recent runs, wherever they were started: ``$XDG_STATE_HOME/tuilora/runs.json``.

Every trainer adds its run folder when it starts (the demo's temp folder included), so
``tuilora runs`` and ``tuilora watch`` with no argument find the newest run from any
directory. The file keeps the last ``KEEP`` folders; folders that are gone are skipped when
read. Failing to write it never stops a training (it is a convenience, not a record).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Final

from tuilora.fileio import write_atomic
from tuilora.parsing import loads_json

KEEP: Final = 50


def registry_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "state"
    return root / "tuilora" / "runs.json"


def _read(path: Path) -> list[dict[str, object]]:
    try:
        data = loads_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    entries = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("path"), str)]


def register(root: Path) -> bool:
    """Put ``root`` first in the registry; False (and nothing raised) when it cannot."""
    path = registry_path()
    folder = str(root.absolute())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two trainers starting at once
            entries = [e for e in _read(path) if e.get("path") != folder]
            entries.insert(0, {"path": folder, "registered": round(time.time(), 3)})
            text = json.dumps({"runs": entries[:KEEP]}, indent=1) + "\n"
            write_atomic(path, text, overwrite=True)
    except Exception:  # noqa: BLE001 - a registry failure must never stop a training
        return False
    return True


def recent_runs() -> list[Path]:
    """Registered run folders that still exist, most recently started first."""
    found = []
    for entry in _read(registry_path()):
        folder = Path(str(entry["path"]))
        with contextlib.suppress(OSError):
            if (folder / "events.jsonl").exists() or (folder / "pid").exists():
                found.append(folder)
    return found
