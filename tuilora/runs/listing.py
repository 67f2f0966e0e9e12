"""``tuilora runs``: a table (or JSON) of runs — under a folder, or (no folder given) under
``./runs`` and every recent run started anywhere on this machine (``runs.registry``)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tuilora.errors import UserError
from tuilora.runs.phases import clock_text
from tuilora.runs.status import RunStatus, run_status
from tuilora.runs.watch import newest_runs


def _duration(seconds: float | None) -> str:
    return clock_text(seconds) if seconds is not None else "-"


def _started(status: RunStatus) -> str:
    if not status.started:
        return "-"
    local = time.localtime(status.started)
    this_year = local.tm_year == time.localtime().tm_year
    return time.strftime("%m-%d %H:%M" if this_year else "%Y-%m-%d", local)


def print_runs(root: str | None, fmt: str) -> int:
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r} is not one of: table, json")
    if root is not None and not Path(root).exists():
        raise UserError(f"{root}: no such folder (runs live in runs/<name>/ by default)")
    statuses = [run_status(path) for path in newest_runs(root)]
    if fmt == "json":
        sys.stdout.write(json.dumps([s.to_json() for s in statuses], indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    where = root if root is not None else "runs/ and recent runs"
    if not statuses:
        Console().print(f"no runs in {where}")
        return 0
    table = Table(title=f"Runs ({where})", title_justify="left", pad_edge=False)
    table.add_column("run", overflow="fold", ratio=1)
    for column in ("state", "step", "loss", "snaps", "started", "time"):
        table.add_column(column, no_wrap=True)
    for status in statuses:
        total = f"/{status.total_steps}" if status.total_steps else ""
        loss = f"{status.last_loss:.4f}" if isinstance(status.last_loss, float) else "-"
        table.add_row(
            status.path if root is None else status.name,
            status.state,
            f"{status.step}{total}",
            loss,
            str(status.snapshots),
            _started(status),
            _duration(status.duration_s),
        )
    Console().print(table)
    return 0
