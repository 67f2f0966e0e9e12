"""The readable form of a dataset report, rendered with rich for an 80-column terminal.

User text (file names, tags) always goes in as ``Text``, never as markup, so a file named
``[red]x.png`` prints as it is.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Final

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from tuilora.dataset.model import DatasetReport
from tuilora.dataset.problems import CATALOGUE, Problem, Severity

# Per problem id, show this many files, then a count: a 5,000-image folder without
# captions must not scroll the summary off the screen.
MAX_PER_ID: Final = 8
TOP_TAGS: Final = 15
MAX_SINGLE: Final = 12
BAR_WIDTH: Final = 24
_STYLE: Final[dict[Severity, str]] = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _folders(report: DatasetReport) -> Table:
    table = Table(title="Folders", title_justify="left", expand=False, show_edge=False)
    table.add_column("folder", overflow="fold")
    table.add_column("repeats", justify="right")
    table.add_column("images", justify="right")
    table.add_column("× repeats", justify="right")
    table.add_column("captioned", justify="right")
    for folder in report.folders:
        name = Text(folder.name)
        if folder.is_reg:
            name.append(" (reg)", style="dim")
        table.add_row(
            name,
            str(folder.repeats),
            str(folder.images),
            str(folder.images_x_repeats),
            str(folder.captioned),
        )
    table.add_section()
    table.add_row(
        Text("training total", style="bold"),
        "",
        str(report.total_images),
        str(report.total_images_x_repeats),
        str(report.captioned),
    )
    return table


def _not_counted(report: DatasetReport) -> Text | None:
    """What the counts leave out, and why: said next to the totals, not only in the list
    of problems."""
    parts = []
    unreadable = sum(folder.unreadable for folder in report.folders)
    if unreadable:
        parts.append(f"{unreadable} image(s) that cannot be read")
    for folder in report.skipped_folders:
        parts.append(
            f"{folder.images + folder.unreadable} image(s) in {folder.name}"
            " (no <repeats>_ prefix: sd-scripts skips the folder)"
        )
    if not parts:
        return None
    return Text.assemble(("Not counted: ", "bold"), "; ".join(parts), style="yellow")


def _problems(report: DatasetReport) -> RenderableType:
    if not report.problems:
        return Text("No problems found.", style="green")
    by_id: dict[str, list[Problem]] = defaultdict(list)
    for item in report.problems:  # already sorted errors first, then by id
        by_id[item.id].append(item)
    parts: list[RenderableType] = [
        Text.assemble(
            ("Problems: ", "bold"),
            (f"{report.count('error')} error(s)", _STYLE["error"]),
            ", ",
            (f"{report.count('warning')} warning(s)", _STYLE["warning"]),
            ", ",
            (f"{report.count('info')} info", _STYLE["info"]),
        )
    ]
    for problem_id, items in by_id.items():
        kind = CATALOGUE[problem_id]
        heading = Text.assemble(
            (f"{kind.severity.upper():7} ", _STYLE[kind.severity]),
            (problem_id, "bold"),
            f"  {kind.title} ({len(items)})",
        )
        if items[0].guide:
            heading.append(f"  [{', '.join(items[0].guide)}]", style="dim")
        parts.append(heading)
        # a grid keeps wrapped lines indented under their bullet
        grid = Table.grid(padding=(0, 1, 0, 0))
        grid.add_column(width=3, justify="right", no_wrap=True)
        grid.add_column(overflow="fold")
        for item in items[:MAX_PER_ID]:
            grid.add_row("•", Text(item.message))
            grid.add_row("→", Text(item.fix, style="green"))
        if len(items) > MAX_PER_ID:
            hidden = len(items) - MAX_PER_ID
            grid.add_row("", Text(f"… and {hidden} more (--format json lists all)", style="dim"))
        parts.append(grid)
    return Group(*parts)


def _buckets(report: DatasetReport) -> RenderableType:
    settings = report.settings
    mode = (
        "no upscale"
        if settings.bucket_no_upscale
        else (f"{settings.min_bucket_reso}..{settings.max_bucket_reso}")
    )
    title = f"Buckets at {settings.resolution} px ({mode}, step {settings.bucket_reso_steps})"
    if not report.buckets:
        return Text(f"{title}: no readable training images", style="dim")
    table = Table(title=title, title_justify="left", show_edge=False)
    table.add_column("bucket", justify="right")
    table.add_column("images", justify="right")
    table.add_column("× repeats", justify="right")
    table.add_column("", no_wrap=True)
    top = max(bucket.images for bucket in report.buckets)
    for bucket in report.buckets:
        bar = "█" * max(1, round(BAR_WIDTH * bucket.images / top))
        table.add_row(
            f"{bucket.width}x{bucket.height}",
            str(bucket.images),
            str(bucket.images_x_repeats),
            Text(bar, style="blue"),
        )
    return table


def _tags(report: DatasetReport) -> RenderableType:
    tags = report.tags
    if not tags.tags:
        return Text("Tags: no captions with tags", style="dim")
    lines: list[RenderableType] = []
    trigger = ", ".join(tags.trigger) if tags.trigger else "none (no tag in 90% of captions)"
    lines.append(Text.assemble(("Trigger: ", "bold"), trigger))
    if tags.keep_tokens and tags.leading:
        lead = tags.leading[0]
        lines.append(
            Text.assemble(
                (f"keep_tokens={tags.keep_tokens}: ", "bold"),
                f"'{', '.join(lead.tags)}' leads {lead.images} of {tags.captions} captions",
            )
        )
    table = Table(
        title=f"Top tags ({tags.captions} training captions, {len(tags.tags)} tags)",
        title_justify="left",
        show_edge=False,
    )
    table.add_column("tag", overflow="fold")
    table.add_column("images", justify="right")
    table.add_column("share", justify="right")
    table.add_column("× repeats", justify="right")
    for tag in tags.tags[:TOP_TAGS]:
        share = f"{tag.images / tags.captions:.0%}"
        table.add_row(Text(tag.tag), str(tag.images), share, str(tag.weighted))
    lines.append(table)
    if tags.single_image:
        shown = ", ".join(tags.single_image[:MAX_SINGLE])
        more = len(tags.single_image) - MAX_SINGLE
        if more > 0:
            shown += f", … (+{more})"
        lines.append(
            Text.assemble((f"In one image only ({len(tags.single_image)}): ", "bold"), shown)
        )
    return Group(*lines)


def render_report(report: DatasetReport, console: Console) -> None:
    settings = report.settings
    header = Text.assemble(
        ("Dataset ", "bold"),
        report.path,
        f"  ({settings.subject}, {settings.resolution} px, captions {settings.caption_extension}",
        f", reg {report.reg_dir})" if report.reg_dir else ")",
    )
    console.print(header)
    console.print(_folders(report))
    not_counted = _not_counted(report)
    if not_counted is not None:
        console.print(not_counted)
    console.print()
    console.print(_problems(report))
    console.print()
    console.print(_buckets(report))
    console.print()
    console.print(_tags(report))
    console.print()
    if report.has_errors:
        verdict = Text(
            f"{report.count('error')} error(s): fix them before training.", style="bold red"
        )
    elif report.count("warning"):
        verdict = Text("No errors; read the warnings before training.", style="yellow")
    else:
        verdict = Text("Ready to train.", style="bold green")
    console.print(verdict)
