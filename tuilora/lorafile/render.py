"""``tuilora tools inspect`` as text: one compact table per section, fit for 80 columns."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tuilora.lorafile.inspect_lora import Fit, Inspection
from tuilora.modelfile.family import FAMILY_NAMES

SHOWN_PROBLEMS = 5


def _facts(title: str | None = None) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 1), title=title, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    return table


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{count} B"


def _norm(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def inspection_renderable(report: Inspection) -> RenderableType:
    parts: list[RenderableType] = []
    head = _facts()
    head.add_row("file", f"{report.file} ({_size(report.size_bytes)}, {report.dtype})")
    head.add_row("type", report.network_type)
    family = FAMILY_NAMES.get(report.family or "", "unknown")
    head.add_row("base", f"{family} ({report.family_evidence})")
    counts = ", ".join(f"{part} {count}" for part, count in sorted(report.counts.items()))
    head.add_row("modules", f"{report.modules}: {counts}")
    head.add_row("rank / alpha", f"{report.rank} / {report.alpha}")
    if report.conv_rank is not None:
        head.add_row("conv rank / alpha", f"{report.conv_rank} / {report.conv_alpha}")
    head.add_row("sshs_model_hash", report.model_hash)
    stored = report.stored_model_hash
    if stored is not None:
        same = stored == report.model_hash
        head.add_row(
            "",
            "(the metadata's, the tensors are as saved)"
            if same
            else f"(the metadata says {stored[:16]}…: the tensors changed after saving)",
        )
    head.add_row("sha256", report.sha256)
    head.add_row("AutoV2", report.autov2)
    parts.append(head)
    if report.training:
        training = _facts("training (ss_* metadata)")
        for label, value in report.training:
            training.add_row(label, value)
        parts.append(training)
    else:
        parts.append(Text("training: no ss_* metadata in the file"))
    if report.datasets:
        folders = Table(box=box.SIMPLE_HEAD, title="dataset folders", title_justify="left")
        folders.add_column("folder", overflow="fold")
        folders.add_column("images", justify="right")
        folders.add_column("repeats", justify="right")
        for folder in report.datasets:
            folders.add_row(str(folder["name"]), str(folder["images"]), str(folder["repeats"]))
        parts.append(folders)
    if report.top_tags:
        tags = ", ".join(f"{tag} ({count})" for tag, count in report.top_tags)
        parts.append(Text.assemble(("top tags: ", "bold"), tags))
    parts.append(_blocks(report))
    if report.fit is not None:
        parts.append(fit_renderable(report.fit))
    for note in report.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    return Group(*parts)


def _blocks(report: Inspection) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="blocks (‖ΔW‖ at strength 1)", title_justify="left")
    for column in ("block", "modules", "rank", "alpha", "‖ΔW‖ mean", "max"):
        table.add_column(column, justify="left" if column == "block" else "right")
    for row in report.blocks:
        table.add_row(
            row.block,
            str(row.modules),
            row.ranks,
            row.alphas,
            _norm(row.norm_mean),
            _norm(row.norm_max),
        )
    return table


def fit_renderable(fit: Fit) -> RenderableType:
    family = FAMILY_NAMES[fit.model_family]
    if fit.fits:
        return Text(
            f"fits {fit.model} ({family}): all {fit.modules} modules find their weight"
            " with the right shape",
            style="green",
        )
    lines = [
        Text(
            f"does not fit {fit.model} ({family}): {fit.matched} of {fit.modules} modules match",
            style="bold red",
        )
    ]
    if fit.missing:
        shown = ", ".join(fit.missing[:SHOWN_PROBLEMS])
        more = f" and {len(fit.missing) - SHOWN_PROBLEMS} more" if len(fit.missing) > 5 else ""
        lines.append(Text(f"  {len(fit.missing)} have no weight there: {shown}{more}"))
    for name, have, wanted in fit.mismatched[:SHOWN_PROBLEMS]:
        lines.append(Text(f"  {name}: LoRA {have[0]}x{have[1]}, model {wanted[0]}x{wanted[1]}"))
    if len(fit.mismatched) > SHOWN_PROBLEMS:
        lines.append(Text(f"  … {len(fit.mismatched) - SHOWN_PROBLEMS} more shape mismatches"))
    return Group(*lines)
