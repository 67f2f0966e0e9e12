"""The human form of a Diagnosis (rich): findings, the snapshot to prefer, the config diff.

Imported only when a person reads the output; the checklist screen shows the same
renderables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tuilora.advisor.diagnose import Change, Diagnosis, grid_tags
from tuilora.advisor.diagnose_inputs import DiagnoseInput
from tuilora.advisor.diagnose_metrics import RunMetrics, loss_text
from tuilora.advisor.render import format_value

_STYLE: Final = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def value_text(value: Any) -> str:
    """A config value as the advice table shows it; a missing one says so."""
    return "(unset)" if value is None else format_value(value)


def change_values(name: str, change: Change) -> tuple[str, str]:
    """From and to as short text; for argument lists only the entries that differ; paths
    relative to the working folder (or ~) so they fit a narrow terminal whole."""
    if isinstance(change.old, list) and isinstance(change.new, list):
        old = [v for v in change.old if v not in change.new]
        new = [v for v in change.new if v not in change.old]
        return value_text(old), value_text(new)
    if name in PATH_FIELDS:
        return short_path(change.old), short_path(change.new)
    return value_text(change.old), value_text(change.new)


#: Config fields that hold paths (shown shortened, never cut).
PATH_FIELDS: Final = frozenset(
    {"output_dir", "logging_dir", "train_data_dir", "reg_data_dir", "pretrained_model_name_or_path"}
)


def short_path(value: Any) -> str:
    """A path relative to the working folder when inside it, else with ~ for home."""
    if not isinstance(value, str):
        return value_text(value)
    path = Path(value).expanduser()
    absolute = path if path.is_absolute() else Path.cwd() / path
    for base, prefix in ((Path.cwd(), ""), (Path.home(), "~/")):
        try:
            relative = absolute.resolve().relative_to(base.resolve())
        except (ValueError, OSError):
            continue
        return prefix + str(relative) if str(relative) != "." else (prefix or ".")
    return value


def findings_text(diagnosis: Diagnosis) -> Text:
    text = Text()
    for number, finding in enumerate(diagnosis.findings):
        if number:
            text.append("\n")
        text.append(f"{finding.severity:>7} ", style=_STYLE[finding.severity])
        text.append(finding.message)
        text.append(f" [{', '.join(finding.guide)}]", style="dim")
        text.append("\n")
    if not diagnosis.findings:
        text.append("No findings.\n")
    return text


def snapshot_text(diagnosis: Diagnosis) -> Text:
    snap = diagnosis.snapshot
    if snap is None:
        return Text(diagnosis.snapshot_note or "No snapshot to prefer.", style="dim")
    text = Text("Prefer: ", style="bold")
    text.append(snap.file, style="bold green" if snap.exists else "bold")
    if not snap.exists:
        text.append(" (not on disk here)", style="dim")
    text.append(f"\n{snap.reason}")
    return text


def run_state(metrics: RunMetrics | None) -> str:
    """How far the run got, with its one loss figure (the findings quote the same one)."""
    if metrics is None:
        return "no events yet"
    planned = metrics.epochs_planned or "?"
    status = metrics.end_status or "not finished"
    loss = loss_text(metrics)
    return f"{status}, {metrics.epochs_done}/{planned} epochs" + (f", {loss}" if loss else "")


def grid_hint(source: DiagnoseInput) -> str:
    """The per-epoch grid to make, named from the snapshot files that exist."""
    tags = grid_tags(source.run, source.config.output_name)
    return f"XY plot over {tags} with varied prompts; pick the epoch that looks right."


def changes_table(diagnosis: Diagnosis) -> RenderableType:
    if not diagnosis.changes:
        return Text("No changes for the next run.", style="dim")
    table = Table(title="Next run: changes", expand=True, show_lines=True)
    table.add_column("setting", style="bold", no_wrap=True)
    table.add_column("from -> to", ratio=1, overflow="fold")
    table.add_column("why", ratio=2)
    for name, change in diagnosis.changes.items():
        old, new = change_values(name, change)
        why = Text(change.reason)
        why.append(f" [{', '.join(change.guide)}]", style="dim")
        table.add_row(name, f"{old} -> {new}", why)
    return table


def diagnosis_view(diagnosis: Diagnosis, notes: tuple[str, ...] = ()) -> RenderableType:
    parts: list[RenderableType] = [
        Text("Findings", style="bold underline"),
        findings_text(diagnosis),
    ]
    parts += [snapshot_text(diagnosis), Text(""), changes_table(diagnosis)]
    for note in notes:
        parts.append(Text(f"note: {note}", style="dim"))
    return Group(*parts)


def changes_text(diagnosis: Diagnosis) -> Text:
    """The diff as lines (for narrow panes): ``field: from -> to`` and the reason below."""
    text = Text()
    if not diagnosis.changes:
        text.append("No changes for the next run.\n", style="dim")
    for name, change in diagnosis.changes.items():
        old, new = change_values(name, change)
        text.append(name, style="bold")
        text.append(f": {old} -> ")
        text.append(new, style="bold green")
        text.append(f"\n  {change.reason}", style="dim")
        text.append(f" [{', '.join(change.guide)}]\n", style="dim")
    return text
