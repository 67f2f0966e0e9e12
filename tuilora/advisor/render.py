"""The human forms of a Recommendation: the rich table, ``--explain``, the categories table.

Imported only when a person reads the output, so ``--format json`` never pays for rich.
"""

from __future__ import annotations

from typing import Any, Final

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from tuilora.advisor.answers import CATEGORIES, Answers
from tuilora.advisor.recommend import EXPLAIN_ALIASES, Recommendation
from tuilora.advisor.rules import Reason, categories, guide_index
from tuilora.advisor.steps import EpochPlan, count

_SEVERITY_STYLE: Final = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return " ".join(str(item) for item in value) if value else "(none)"
    return str(value)


def describe_answers(answers: Answers) -> str:
    parts = [answers.subject]
    if answers.category:
        parts.append(f"category {answers.category}")
    for flag in ("male", "asymmetric", "realistic", "simple"):
        if getattr(answers, flag):
            parts.append(flag)
    if answers.prior != "none":
        parts.append(f"prior {answers.prior}")
    if answers.quality == "bad":
        parts.append("bad inputs")
    if answers.subject == "character":
        parts.append(f"goal {answers.goal}")
    vram = f"{answers.vram:g} GB" if answers.vram is not None else "? GB"
    if answers.vram_source == "assumed":
        vram += " (assumed)"
    parts.append(f"{answers.images} images, {answers.base}, {vram}")
    return ", ".join(parts)


def plan_line(rec: Recommendation) -> str:
    """The step arithmetic in one line, pluralized and with every divisor that applies."""
    plan = rec.plan
    repeats = plan["repeats"]
    views = f"{count(plan['images'], 'image')} x " + (
        count(repeats, "repeat") if repeats is not None else "their folders' repeats"
    )
    epoch = rec.context.get("_epoch")
    if isinstance(epoch, EpochPlan):
        if epoch.reg_views:
            views += f" + {count(epoch.reg_views, 'regularization view')}"
        per_step = f"batch {epoch.batch_size}"
        if epoch.buckets is not None:
            per_step += f" per bucket ({count(epoch.buckets, 'bucket')})"
        if epoch.processes > 1:
            per_step += f" x {epoch.processes} processes"
        if epoch.gradient_accumulation_steps > 1:
            per_step += f" x {epoch.gradient_accumulation_steps} accumulated"
    else:
        per_step = f"batch {plan['batch_size']}"
    return (
        f"{views} / {per_step} = {count(plan['steps_per_epoch'], 'step')}/epoch"
        f" x {count(plan['epochs'], 'epoch')} = {count(plan['total_steps'], 'step')}"
    )


def _why(reasons: list[Reason]) -> Text:
    """Each reason that led to the value, in order (the last one decided), with guide ids."""
    text = Text()
    for number, reason in enumerate(reasons):
        if number:
            text.append("\n")
        text.append(reason.text)
        if reason.guide:
            text.append(f" [{', '.join(reason.guide)}]", style="dim")
    return text


def _grouped_by_reason(rec: Recommendation) -> list[tuple[list[str], list[Reason]]]:
    """Config keys grouped by the rule that decided them, in config order."""
    groups: dict[str, tuple[list[str], list[Reason]]] = {}
    for key in rec.config:
        reasons = rec.reasons.get(key, [])
        rule = reasons[-1].rule if reasons else f"default:{key}"
        groups.setdefault(rule, ([], reasons))[0].append(key)
    return list(groups.values())


def _settings_cell(rec: Recommendation, keys: list[str]) -> Text:
    cell = Text()
    for number, key in enumerate(keys):
        if number:
            cell.append("\n")
        cell.append(key, style="bold")
        value = rec.config[key]
        if isinstance(value, list) and value:
            cell.append(" =")
            for item in value:
                cell.append(f"\n  {item}")
        else:
            cell.append(f" = {format_value(value)}")
    return cell


def recommendation_table(rec: Recommendation) -> RenderableType:
    table = Table(
        title="Recommended config (sd-scripts option names)", expand=True, show_lines=True
    )
    table.add_column("setting", no_wrap=False, ratio=2)
    table.add_column("why", ratio=3)
    for keys, reasons in _grouped_by_reason(rec):
        table.add_row(_settings_cell(rec, keys), _why(reasons))
    plan = Table(title="Plan", expand=True, show_header=False)
    plan.add_column("item", style="bold", no_wrap=True)
    plan.add_column("value", ratio=1)
    plan.add_row("steps", plan_line(rec))
    plan.add_row("network", str(rec.plan["network_type"]))
    plan.add_row("regularization", "yes" if rec.plan["regularization"] else "no")
    plan.add_row("file size", f"~{rec.plan['file_size_mb']} MB")
    plan.add_row("VRAM", f"~{rec.plan['vram_gb']} GB (rough estimate)")
    if "folders" not in rec.plan and rec.plan["repeats"]:
        repeats = rec.plan["repeats"]
        plan.add_row("folder", f"put the images in DATASET/{repeats}_<name>/ (sd-scripts layout)")
    for folder in rec.plan.get("folders", []):
        plan.add_row("folder", f"{folder['repeats']}_{folder['name']}: {folder['images']} images")
    parts: list[RenderableType] = [
        Text(describe_answers(rec.answers), style="bold"),
        table,
        plan,
    ]
    if rec.warnings:
        parts.append(warnings_block(rec))
    return Group(*parts)


def warnings_block(rec: Recommendation) -> RenderableType:
    lines = Text()
    for warning in rec.warnings:
        style = _SEVERITY_STYLE[warning.severity]
        lines.append(f"{warning.severity:>7} ", style=style)
        lines.append(warning.message)
        lines.append(f" [{', '.join(warning.guide)}]\n", style="dim")
    return lines


def explain(rec: Recommendation, name: str) -> RenderableType:
    """Every reason behind one field, with the guide sections they cite."""
    reasons = rec.reasons_for(name)
    key = EXPLAIN_ALIASES.get(name, name)
    value = rec.config.get(key, rec.plan.get(name, rec.context.get(key)))
    titles = guide_index()
    out = Text()
    label = name if key == name else f"{key} ({name})"
    out.append(f"{label} = {format_value(value)}\n", style="bold")
    if not reasons:
        out.append("No rule sets this field; it is sd-scripts' default.\n")
    for number, reason in enumerate(reasons, start=1):
        decided = " (decides)" if number == len(reasons) else ""
        out.append(f"\n{number}. {reason.rule}{decided}\n", style="bold")
        out.append(f"   {reason.text}\n")
        for gid in reason.guide:
            out.append(f"   {gid}: {titles.get(gid, '')}\n", style="dim")
    out.append("\nThe guide's numbers are starting points, not optimal values.\n", style="dim")
    return out


def categories_table() -> RenderableType:
    table = Table(title="Character difficulty categories (G-CAT)", expand=True, show_lines=True)
    table.add_column("cat", style="bold", no_wrap=True)
    table.add_column("what", ratio=3)
    table.add_column("examples", ratio=2)
    table.add_column("rank", no_wrap=True)
    table.add_column("types", ratio=1)
    table_data = categories()
    for letter in CATEGORIES:
        entry = table_data[letter]
        low, high = entry["rank"]
        rank = f"{low}" if low == high else f"{low}-{high}"
        if entry.get("uncertain"):
            rank += "?"
        table.add_row(
            letter,
            f"{entry['title']}: {entry['description']}",
            str(entry["examples"]),
            rank,
            ", ".join(entry["types"]),
        )
    note = Text(
        "Male characters count half a category harder up to D (G-CAT-MALE). Types: lora ="
        " LoRA-LierLa, lokr/loha = LyCORIS, ti = text embedding.",
        style="dim",
    )
    return Group(table, note)


def print_renderable(renderable: RenderableType, console: Console | None = None) -> None:
    (console or Console()).print(renderable)
