"""``tuilora runs``: a table (or JSON) of the runs under a folder."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tuilora.errors import UserError
from tuilora.runs.status import find_runs, run_status


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def print_runs(root: str, fmt: str) -> int:
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r} is not one of: table, json")
    folder = Path(root)
    if not folder.exists():
        raise UserError(f"{root}: no such folder (runs live in runs/<name>/ by default)")
    statuses = [run_status(path) for path in find_runs(folder)]
    if fmt == "json":
        sys.stdout.write(json.dumps([s.to_json() for s in statuses], indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Runs in {root}")
    for column in ("run", "state", "step", "last loss", "snapshots", "started", "duration"):
        table.add_column(column)
    for status in statuses:
        total = f"/{status.total_steps}" if status.total_steps else ""
        started = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(status.started))
            if status.started
            else "-"
        )
        loss = f"{status.last_loss:.4f}" if isinstance(status.last_loss, float) else "-"
        table.add_row(
            status.name,
            status.state,
            f"{status.step}{total}",
            loss,
            str(status.snapshots),
            started,
            _duration(status.duration_s),
        )
    Console().print(table if statuses else f"no runs in {root}")
    return 0
