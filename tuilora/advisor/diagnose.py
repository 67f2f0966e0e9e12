"""Diagnose a finished run: findings, the snapshot to prefer and the next run's config (§8).

Inputs are the run's config, its curves (``RunMetrics`` from ``events.jsonl``, when there is
a run) and what the user saw when testing (``Observations``). The checks in
``rules/diagnose.toml`` hold the guide's logic; this module builds their context, runs them
in order (each sees the changes of the ones before, as the advisor's rules do), and turns
the result into findings, a from → to diff and a revised ``TrainingConfig``.

Two levers are not config fields, so the checks can say the same thing for every config:
``epochs`` (the length of training: ``max_train_epochs`` when the epoch count is known, else
``max_train_steps``) and ``d_coef`` (Prodigy's entry in ``optimizer_args``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tuilora.advisor import expr, steps
from tuilora.advisor.diagnose_metrics import LOSS_BAND, RunMetrics
from tuilora.advisor.diagnose_rules import Check, load_checks
from tuilora.advisor.diagnose_types import (
    STRENGTHS,
    Change,
    Diagnosis,
    Finding,
    ObjectCounts,
    Observations,
    SnapshotChoice,
    config_values,
)
from tuilora.advisor.rules import RuleError, evaluate, interpreted, render
from tuilora.advisor.steps import count
from tuilora.config import TrainingConfig, config_field_names, parse_key_value
from tuilora.errors import UserError
from tuilora.runs.rundir import RunDir

LEVERS: Final = ("epochs", "d_coef")
#: Fields whose new values are rounded to three significant digits (1e-4 * 0.6 is 6e-05).
_ROUNDED: Final = frozenset(
    {"learning_rate", "unet_lr", "text_encoder_lr", "network_alpha", "d_coef", "min_snr_gamma"}
)
#: Prodigy's own default when optimizer_args do not name d_coef.
PRODIGY_DEFAULT_D_COEF: Final = 1.0

__all__ = [
    "STRENGTHS",
    "Change",
    "Diagnosis",
    "Finding",
    "ObjectCounts",
    "Observations",
    "SnapshotChoice",
    "build_context",
    "config_values",
    "diagnose",
    "run_checks",
]


# ------------------------------------------------------------------------------------------
# context


def optimizer_arg(config: TrainingConfig, name: str) -> str | None:
    for entry in config.optimizer_args:
        key, value = parse_key_value(entry)
        if key == name:
            return value
    return None


def _d_coef(config: TrainingConfig) -> float | None:
    if config.optimizer_type != "Prodigy":
        return None
    raw = optimizer_arg(config, "d_coef")
    if raw is None:
        return PRODIGY_DEFAULT_D_COEF
    try:
        return float(raw)
    except ValueError:
        raise UserError(f"optimizer_args d_coef={raw!r} is not a number") from None


def build_context(
    config: TrainingConfig,
    observations: Observations,
    metrics: RunMetrics | None = None,
    *,
    object_counts: ObjectCounts | None = None,
    dataset_steps_per_epoch: int | None = None,
    next_output_dir: str | None = None,
    run: RunDir | None = None,
) -> dict[str, Any]:
    """The names the checks read: config fields, run facts, observations, derived facts."""
    metrics = metrics or RunMetrics()
    context: dict[str, Any] = dict(config.to_dict())
    # A config that sets only learning_rate trains both parts at it (sd-scripts' fallback).
    context["unet_lr"] = config.unet_lr if config.unet_lr is not None else config.learning_rate
    context["text_encoder_lr"] = (
        config.text_encoder_lr if config.text_encoder_lr is not None else config.learning_rate
    )
    context.update(metrics.facts())
    context.update(observations.facts())
    steps_per_epoch = metrics.steps_per_epoch or dataset_steps_per_epoch
    if config.max_train_epochs is not None:
        epochs, unit = config.max_train_epochs, "epochs"
    elif metrics.epochs_planned:
        epochs, unit = metrics.epochs_planned, "epochs"
    elif steps_per_epoch:
        _, epochs = steps.training_length(steps_per_epoch, None, config.max_train_steps)
        unit = "epochs"
    else:
        epochs, unit = config.max_train_steps, "steps"
    d_coef = _d_coef(config)
    context.update(
        {
            "adaptive": config.is_adaptive(),
            "prodigy": config.optimizer_type == "Prodigy",
            "d_coef": d_coef,
            "has_min_snr": config.min_snr_gamma is not None,
            "epochs": epochs,
            "length_unit": unit,
            "steps_per_epoch": steps_per_epoch,
            "total_steps": (epochs * steps_per_epoch if steps_per_epoch else None)
            if unit == "epochs"
            else epochs,
            "loss_band": _band(None if metrics.too_early else metrics.level),
            "last_good_epoch": _last_good_epoch(metrics),
            "has_object_counts": object_counts is not None,
            "object_captions": object_counts.mentioned if object_counts else 0,
            "captions_total": object_counts.total if object_counts else 0,
            "has_next_output_dir": next_output_dir is not None,
            "next_output_dir": next_output_dir or "",
            "network_name": config.output_name or "NAME",
            "grid": grid_tags(run, config.output_name),
        }
    )
    return context


def snapshot_files(run: RunDir | None) -> list[Path]:
    """The run's LoRA files that exist, epoch snapshots in order and the final one last."""
    if run is None:
        return []
    return [*run.snapshots(), *([run.final] if run.final.exists() else [])]


def grid_tags(run: RunDir | None, name: str | None) -> str:
    """The per-epoch grid as prompt tags, named from the files on disk (sd-scripts' naming
    as a pattern when there is no run to look in)."""
    files = snapshot_files(run)
    if files:
        first, last = files[0].stem, files[-1].stem
        if first == last:
            return f"<lora:{first}:1.0>"
        return f"<lora:{first}:1.0> ... <lora:{last}:1.0>"
    stem = name or "NAME"
    return f"<lora:{stem}-000001:1.0> ... <lora:{stem}:1.0>"


def _band(level: float | None) -> str:
    if level is None:
        return ""
    if level < LOSS_BAND[0]:
        return "below"
    if level > LOSS_BAND[1]:
        return "above"
    return "inside"


def _last_good_epoch(metrics: RunMetrics) -> int:
    """The last epoch finished before the loss went NaN (0 when none was)."""
    if metrics.nan_step is None:
        return metrics.epochs_done
    if metrics.steps_per_epoch:
        return (metrics.nan_step - 1) // metrics.steps_per_epoch
    return max(0, metrics.epochs_done)


# ------------------------------------------------------------------------------------------
# evaluation


@dataclass
class _Outcome:
    findings: list[Finding] = field(default_factory=list)
    reasons: dict[str, tuple[str, str, tuple[str, ...]]] = field(default_factory=dict)
    snapshot: tuple[int, str, str] | None = None
    applied: list[str] = field(default_factory=list)


def run_checks(checks: Sequence[Check], context: dict[str, Any]) -> _Outcome:
    """Run ``checks`` over ``context`` (changed in place) in order, through the advisor's
    evaluator (``rules.evaluate``)."""
    outcome = _Outcome()
    allowed = set(config_field_names()) | set(LEVERS)
    for fired in evaluate(checks, context, settable=allowed.__contains__, adjust=_rounded):
        check = fired.item
        outcome.applied.append(check.id)
        view = {**context, **{f"from_{key}": value for key, value in fired.before.items()}}
        text = interpreted(render(check.text, view, check.id), check.interpretation)
        reason = interpreted(render(check.reason, view, check.id), check.interpretation)
        if text:
            outcome.findings.append(Finding(check.id, check.severity, check.guide, text))
        for key in fired.before:
            if not key.startswith("_"):
                outcome.reasons[key] = (check.id, reason, check.guide)
        if check.snapshot is not None:
            epoch = expr.resolve(check.snapshot, context)
            if isinstance(epoch, int | float) and epoch >= 1:
                outcome.snapshot = (int(epoch), check.id, text or reason)
    return outcome


def _rounded(key: str, value: Any) -> Any:
    if key in _ROUNDED and isinstance(value, float) and value:
        return float(f"{value:.3g}")
    return value


_SEVERITY_ORDER: Final = {"error": 0, "warning": 1, "info": 2}


def diagnose(
    config: TrainingConfig,
    observations: Observations,
    metrics: RunMetrics | None = None,
    *,
    run: RunDir | None = None,
    object_counts: ObjectCounts | None = None,
    dataset_steps_per_epoch: int | None = None,
    next_output_dir: str | None = None,
    checks: Sequence[Check] | None = None,
    facts: Mapping[str, Any] | None = None,
) -> Diagnosis:
    """Findings, the snapshot to prefer and the revised config for the next run.

    ``facts`` override context names after they are built (the rules' cases use it to set
    a run's facts without a run).
    """
    observations.validate()
    _check_epoch(observations, metrics, config, run)
    context = build_context(
        config,
        observations,
        metrics,
        object_counts=object_counts,
        dataset_steps_per_epoch=dataset_steps_per_epoch,
        next_output_dir=next_output_dir,
        run=run,
    )
    context.update(facts or {})
    initial = dict(context)
    outcome = run_checks(load_checks() if checks is None else checks, context)
    changes, revised = _changes(config, initial, context, outcome)
    findings = sorted(outcome.findings, key=lambda f: _SEVERITY_ORDER[f.severity])
    snapshot, note = _snapshot(outcome, metrics or RunMetrics(), run, config, observations)
    return Diagnosis(
        findings=tuple(findings),
        snapshot=snapshot,
        snapshot_note=note,
        changes=changes,
        config=revised,
        original=config,
        applied=tuple(outcome.applied),
        context=context,
    )


def _changes(
    config: TrainingConfig,
    initial: Mapping[str, Any],
    final: Mapping[str, Any],
    outcome: _Outcome,
) -> tuple[dict[str, Change], TrainingConfig]:
    changes: dict[str, Change] = {}
    for key, (check_id, reason, guide) in outcome.reasons.items():
        if key in ("d_coef", "optimizer_args"):
            continue  # both end up in optimizer_args, below
        old, new = initial.get(key), final.get(key)
        if old == new:
            continue
        if key == "epochs":
            key = "max_train_epochs" if initial["length_unit"] == "epochs" else "max_train_steps"
            old = getattr(config, key) if getattr(config, key) is not None else old
        changes[key] = Change(old=old, new=new, reason=reason, guide=guide, check=check_id)
    moved = final.get("d_coef") if final.get("d_coef") != initial.get("d_coef") else None
    args = _with_arg(final["optimizer_args"], moved)
    if args != list(config.optimizer_args):
        # A check that moved d_coef and one that replaced the arguments (a switch to
        # Prodigy) both land here; the later one's reason is shown.
        source = max(
            (key for key in ("optimizer_args", "d_coef") if key in outcome.reasons),
            key=lambda key: outcome.applied.index(outcome.reasons[key][0]),
        )
        check_id, reason, guide = outcome.reasons[source]
        changes["optimizer_args"] = Change(
            list(config.optimizer_args), args, reason, guide, check_id
        )
    try:
        revised = config.replace(**{key: change.new for key, change in changes.items()})
    except UserError as exc:
        raise RuleError(f"the revised config is invalid: {exc}") from exc
    return changes, revised


def _with_arg(args: Sequence[str], d_coef: float | None) -> list[str]:
    if d_coef is None:
        return list(args)
    entry = expr.key_value("d_coef", d_coef)
    out = [e if parse_key_value(e)[0] != "d_coef" else entry for e in args]
    if entry not in out:
        out.append(entry)
    return out


def _check_epoch(
    observations: Observations,
    metrics: RunMetrics | None,
    config: TrainingConfig,
    run: RunDir | None,
) -> None:
    """The epoch the user names must be one the run has (or, from a config, plans)."""
    epoch = observations.epoch
    if epoch is None:
        return
    if run is not None and metrics is not None:
        done = metrics.epochs_done
        if epoch > done:
            so_far = "" if metrics.end_status else " so far"
            raise UserError(
                f"epoch {epoch} is beyond this run: it has {count(done, 'epoch')}{so_far}"
            )
    elif config.max_train_epochs is not None and epoch > config.max_train_epochs:
        planned = count(config.max_train_epochs, "epoch")
        raise UserError(f"epoch {epoch} is beyond this config: it trains {planned}")


def _snapshot(
    outcome: _Outcome,
    metrics: RunMetrics,
    run: RunDir | None,
    config: TrainingConfig,
    observations: Observations,
) -> tuple[SnapshotChoice | None, str]:
    """The preferred epoch mapped onto a file (with a run: only files that exist), or None
    and why there is none."""
    name = run.name if run else config.output_name
    done = metrics.epochs_done
    files = snapshot_files(run)
    if run is not None and not files:
        if metrics.too_early or done == 0:
            return None, "No snapshot yet: no epoch of this run has ended."
        return None, f"No LoRA files in {run.root} yet to prefer one of."
    if outcome.snapshot is None:
        if run is None:
            return None, "No snapshot to prefer: give a run folder to choose among its files."
        if run.final.exists():
            choice = SnapshotChoice(
                None, run.final.name, True, "The final LoRA, until your tests say otherwise.", ""
            )
            return choice, ""
        outcome.snapshot = (done, "", "The last snapshot the run saved.")
    epoch, check_id, reason = outcome.snapshot
    saved = _saved_epochs(metrics, run)
    if run is not None and not saved:
        reason += " (no epoch snapshot was saved: the final LoRA is the only file)"
        return SnapshotChoice(None, run.final.name, True, reason, check_id), ""
    if saved:
        below = [e for e in saved if e <= epoch]
        chosen = max(below) if below else min(saved)
    else:
        chosen = epoch
    finished = metrics.end_status == "finished"
    if run is not None and chosen >= done > 0 and finished and run.final.exists():
        return SnapshotChoice(None, run.final.name, True, reason, check_id), ""
    file = RunDir(Path("."), name).snapshot(chosen).name if name else f"epoch {chosen}"
    exists = bool(run and run.snapshot(chosen).exists())
    if chosen != epoch:
        if observations.epoch == epoch:
            reason += f" (epoch {epoch} was not saved; {file} is the nearest saved one)"
        else:
            reason += f" ({file} is the nearest saved snapshot to epoch {epoch})"
    return SnapshotChoice(chosen, file, exists, reason, check_id), ""


def _saved_epochs(metrics: RunMetrics, run: RunDir | None) -> list[int]:
    """Epochs with a snapshot: with a run the files on disk decide (an events line may name
    a file since deleted); without one, what the events say."""
    if run is not None:
        return sorted(int(path.stem.rsplit("-", 1)[1]) for path in run.snapshots())
    return sorted(metrics.snapshots)
