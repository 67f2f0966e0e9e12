"""A dataset report in the wizard: the advisor's facts, and a compact summary for ~45 columns.

The full report (``tuilora dataset check``) is laid out for 80 columns; the wizard shows it
beside the advice panel, so this module condenses it: folders, problems grouped by kind with
the first files named, a bucket histogram and the top tags. User text (file names, tags)
goes into ``Text`` as plain strings, never as markup.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Final

from rich.text import Text

from tuilora.dataset.problems import display_path
from tuilora.wizard.fields import short_path, short_paths_in

if TYPE_CHECKING:
    from tuilora.dataset.model import DatasetReport
    from tuilora.dataset.problems import Problem

FILES_PER_PROBLEM: Final = 3
TOP_TAGS: Final = 8
MAX_BUCKETS: Final = 8
BAR_WIDTH: Final = 14
_MARK: Final = {"error": ("✗ ", "bold red"), "warning": ("! ", "yellow"), "info": ("i ", "cyan")}


def summary(report: DatasetReport) -> Text:
    text = Text()
    for part in (_folders(report), _problems(report), _buckets(report), _tags(report)):
        text.append_text(part)
    text.rstrip()
    return text


def _folders(report: DatasetReport) -> Text:
    text = Text()
    text.append(
        f"{report.total_images} images, {report.total_images_x_repeats} with repeats,"
        f" {report.captioned} captioned\n",
        style="bold",
    )
    for folder in report.folders:
        text.append(f"  {folder.name}")
        text.append(f": {folder.images} × {folder.repeats}")
        if folder.is_reg:
            text.append(" (reg)", style="dim")
        text.append("\n")
    return text


def _problems(report: DatasetReport) -> Text:
    text = Text()
    if not report.problems:
        text.append("No problems found.\n", style="green")
        return text
    text.append(
        f"Problems: {report.count('error')} errors, {report.count('warning')} warnings,"
        f" {report.count('info')} info\n",
        style="bold",
    )
    by_id: dict[str, list[Problem]] = defaultdict(list)
    for item in report.problems:  # the report sorts errors first
        by_id[item.id].append(item)
    for items in by_id.values():
        first = items[0]
        mark, style = _MARK[first.severity]
        text.append(mark, style=style)
        more = f" (+{len(items) - 1} more)" if len(items) > 1 else ""
        text.append(f"{short_paths_in(first.message)}{more}\n")
        for item in items[1:FILES_PER_PROBLEM]:
            text.append(f"  {short_path(display_path(item.path))}\n", style="dim")
        text.append(f"  → {short_paths_in(first.fix)}\n", style="green")
    return text


def _buckets(report: DatasetReport) -> Text:
    text = Text()
    if not report.buckets:
        return text
    text.append(f"Buckets at {report.settings.resolution} px\n", style="bold")
    shown = sorted(report.buckets, key=lambda b: -b.images)[:MAX_BUCKETS]
    top = max(bucket.images for bucket in shown)
    for bucket in shown:
        bar = "█" * max(1, round(BAR_WIDTH * bucket.images / top))
        text.append(f"  {bucket.width:>4}x{bucket.height:<4} {bucket.images:>5} ")
        text.append(bar + "\n", style="blue")
    hidden = len(report.buckets) - len(shown)
    if hidden > 0:
        text.append(f"  … {hidden} more buckets\n", style="dim")
    return text


def _tags(report: DatasetReport) -> Text:
    tags = report.tags
    text = Text()
    if not tags.tags:
        return text
    trigger = ", ".join(tags.trigger) if tags.trigger else "none"
    text.append("Trigger: ", style="bold")
    text.append(trigger + "\n")
    text.append("Top tags: ", style="bold")
    text.append(", ".join(f"{tag.tag} {tag.images}" for tag in tags.tags[:TOP_TAGS]) + "\n")
    return text
