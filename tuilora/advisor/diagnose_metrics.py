"""What a run's ``events.jsonl`` says about its training: the facts diagnose's checks read.

Diffusion loss per step is heavy-tailed (it depends on the sampled timestep), so a single
step says little; the per-epoch means carry the trend. A trend is judged by a least-squares
line through the epoch means and its t statistic, so noise between epochs does not read as a
trend (the project's reading of G-LOSS: the loss is information, the user's tests decide).

Everything here is a plain number or string so the checks in ``rules/diagnose.toml`` can
compare them; ``facts()`` is that flat view.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tuilora.runs.events import iter_events

#: |t| of the epoch-mean slope above which the loss is called falling or rising.
TREND_T: Final = 2.0
#: ... and the least total change over the window that counts (relative to its mean).
TREND_MIN_CHANGE: Final = 0.03
#: Fewest epochs a trend is judged on.
TREND_MIN_EPOCHS: Final = 3
#: A step whose loss exceeds this multiple of the median of the steps before it is a spike.
SPIKE_FACTOR: Final = 6.0
SPIKE_WINDOW: Final = 50
#: The typical loss band of G-LOSS.
LOSS_BAND: Final = (0.05, 0.15)
#: lr x d never above this: the adaptive optimizer never left its starting step size (d0 is
#: 1e-6 for Prodigy and D-Adaptation), so the LoRA barely learned.
LRD_STUCK: Final = 1e-5
#: lr x d above this: beyond the top of the guide's Unet LR range (G-LR, 5e-3).
LRD_EXPLODING: Final = 5e-3


@dataclass(frozen=True)
class RunMetrics:
    """The run's curves reduced to what the checklist needs."""

    steps: int = 0
    epochs_planned: int | None = None
    steps_per_epoch: int | None = None
    epoch_means: tuple[float, ...] = ()
    #: "falling", "flat", "rising", or "unknown" (too few epochs): the last half of the run.
    trend: str = "unknown"
    #: The trend's total change over the judged window, relative to its mean (-0.2 = -20 %).
    trend_change: float = 0.0
    #: The first epoch from which the loss no longer falls (None: still falling at the end).
    flat_epoch: int | None = None
    lowest_epoch: int | None = None
    spikes: int = 0
    spike_steps: tuple[int, ...] = ()
    nan_step: int | None = None
    #: Median step loss over the last epoch: the run's one loss figure (``loss_text``), the
    #: level compared with G-LOSS's band.
    level: float | None = None
    lrd_first: float | None = None
    lrd_peak: float | None = None
    lrd_last: float | None = None
    #: "none" (not adaptive), "stuck", "collapsing", "exploding" or "normal".
    lrd_path: str = "none"
    end_status: str | None = None
    #: Saved snapshots by epoch, as the events name them.
    snapshots: Mapping[int, str] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def epochs_done(self) -> int:
        return len(self.epoch_means)

    @property
    def too_early(self) -> bool:
        """Steps ran but no epoch has ended: the curves say nothing yet."""
        return self.steps > 0 and self.epochs_done == 0

    def facts(self) -> dict[str, Any]:
        """The flat context the diagnose checks see (``run_*`` names). Before the first
        epoch ends the curve facts are neutral, so no check reads a verdict into a few steps
        (a NaN is still a NaN)."""
        if self.too_early:
            neutral = RunMetrics(nan_step=self.nan_step, end_status=self.end_status).facts()
            return {
                **neutral,
                "too_early": True,
                "has_events": True,
                "run_steps": self.steps,
                "run_epochs_planned": self.epochs_planned,
            }
        return {
            "too_early": False,
            "has_events": self.steps > 0,
            "run_steps": self.steps,
            "run_epochs_done": self.epochs_done,
            "run_epochs_planned": self.epochs_planned,
            "loss_trend": self.trend,
            "loss_trend_pct": round(100 * self.trend_change, 1),
            "flat_epoch": self.flat_epoch,
            "lowest_epoch": self.lowest_epoch,
            "spikes": self.spikes,
            "nan_step": self.nan_step,
            "diverged": self.nan_step is not None or self.end_status == "diverged",
            "loss_level": self.level,
            "loss_band_low": LOSS_BAND[0],
            "loss_band_high": LOSS_BAND[1],
            "lrd_path": self.lrd_path,
            "lrd_first": self.lrd_first,
            "lrd_peak": self.lrd_peak,
            "lrd_last": self.lrd_last,
            "end_status": self.end_status,
        }


def loss_text(metrics: RunMetrics) -> str:
    """The run's loss as every view shows it: "loss ~0.123", the median step loss of the last
    epoch (the ``loss-level`` finding quotes the same number)."""
    return f"loss ~{metrics.level:.3f}" if metrics.level is not None else ""


def metrics_from_events(events: Iterable[Mapping[str, Any]]) -> RunMetrics:
    """Reduce events (a list, or a stream: ``runs.events.iter_events``) to RunMetrics in one
    pass, keeping of each step only its number, epoch, loss and lr x d — a 100,000-step run
    is never held as 100,000 events (``benchmarks/events_scale.py``)."""
    start: Mapping[str, Any] = {}
    end: Mapping[str, Any] = {}
    losses: list[tuple[int, Any]] = []
    step_epochs: list[Any] = []
    lrd_values: list[float] = []
    epoch_ends: list[Mapping[str, Any]] = []
    for event in events:
        kind = event.get("type")
        if kind == "step":
            losses.append((int(event.get("step", 0)), event.get("loss")))
            step_epochs.append(event.get("epoch"))
            lrd = _lrd(event)
            if lrd is not None:
                lrd_values.append(lrd)
        elif kind == "start":
            start = event
        elif kind == "end":
            end = event
        elif kind == "epoch_end":
            epoch_ends.append(event)
    rows = [(epoch, loss) for epoch, (_, loss) in zip(step_epochs, losses, strict=True)]
    nan_step = next((s for s, loss in losses if not _finite(loss)), None)
    finite = [(s, float(loss)) for s, loss in losses if loss is not None and _finite(loss)]
    means = _epoch_means(epoch_ends, rows)
    trend, change = _tail_trend(means)
    snapshots = {
        int(e["epoch"]): str(e["snapshot"])
        for e in epoch_ends
        if e.get("snapshot") and e.get("epoch") is not None
    }
    spike_steps = _spikes(finite)
    last_epoch_losses = _last_epoch_losses(rows)
    return RunMetrics(
        steps=max((s for s, _ in losses), default=0),
        epochs_planned=_int(start.get("epochs")) if start else None,
        steps_per_epoch=_int(start.get("steps_per_epoch")) if start else None,
        epoch_means=tuple(means),
        trend=trend,
        trend_change=change,
        flat_epoch=_flat_epoch(means),
        lowest_epoch=(means.index(min(means)) + 1) if means else None,
        spikes=len(spike_steps),
        spike_steps=tuple(spike_steps),
        nan_step=nan_step,
        level=statistics.median(last_epoch_losses) if last_epoch_losses else None,
        lrd_first=lrd_values[0] if lrd_values else None,
        lrd_peak=max(lrd_values) if lrd_values else None,
        lrd_last=lrd_values[-1] if lrd_values else None,
        lrd_path=_lrd_path(lrd_values),
        end_status=str(end["status"]) if end and end.get("status") else None,
        snapshots=snapshots,
        config=dict(start.get("config") or {}) if start else {},
    )


# ------------------------------------------------------------------------------------------
# loss


def _epoch_means(
    epoch_ends: Sequence[Mapping[str, Any]], rows: Sequence[tuple[Any, Any]]
) -> list[float]:
    """Per completed epoch: the engine's own mean, else the mean of that epoch's steps
    (``rows``: each step's epoch and loss)."""
    by_epoch: dict[int, list[float]] = {}
    for epoch, loss in rows:
        if _finite(loss) and epoch is not None:
            by_epoch.setdefault(int(epoch), []).append(float(loss))
    means: dict[int, float] = {}
    for event in epoch_ends:
        if event.get("epoch") is not None:
            epoch = int(event["epoch"])
            if _finite(event.get("loss_mean")):
                means[epoch] = float(event["loss_mean"])
            elif by_epoch.get(epoch):
                means[epoch] = statistics.fmean(by_epoch[epoch])
    return [means[epoch] for epoch in sorted(means)]


def _slope_t(values: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope per epoch and its t statistic (inf when the fit is exact)."""
    n = len(values)
    xs = range(n)
    x_mean = (n - 1) / 2
    y_mean = statistics.fmean(values)
    sxx = sum((x - x_mean) ** 2 for x in xs)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, values, strict=True)) / sxx
    residual = sum(
        (y - y_mean - slope * (x - x_mean)) ** 2 for x, y in zip(xs, values, strict=True)
    )
    if n <= 2 or residual <= 0:
        return slope, math.copysign(math.inf, slope) if slope else 0.0
    stderr = math.sqrt(residual / (n - 2) / sxx)
    return slope, slope / stderr


def trend_of(values: Sequence[float]) -> tuple[str, float]:
    """("falling" | "flat" | "rising" | "unknown", total relative change over the values)."""
    if len(values) < TREND_MIN_EPOCHS:
        return "unknown", 0.0
    slope, t = _slope_t(values)
    mean = statistics.fmean(values)
    change = slope * (len(values) - 1) / mean if mean else 0.0
    if t <= -TREND_T and change <= -TREND_MIN_CHANGE:
        return "falling", change
    if t >= TREND_T and change >= TREND_MIN_CHANGE:
        return "rising", change
    return "flat", change


def _tail_trend(means: Sequence[float]) -> tuple[str, float]:
    """The trend over the last half of the epochs (at least TREND_MIN_EPOCHS of them)."""
    window = max(TREND_MIN_EPOCHS, math.ceil(len(means) / 2))
    return trend_of(means[-window:]) if len(means) >= TREND_MIN_EPOCHS else ("unknown", 0.0)


def _flat_epoch(means: Sequence[float]) -> int | None:
    """The epoch where the loss stopped falling; None while it is still falling at the end.

    On a 3-epoch moving average: the first epoch that comes within a quarter of the total
    drop of the lowest point. A run that never dropped by TREND_MIN_CHANGE was flat from
    epoch 1.
    """
    if len(means) < TREND_MIN_EPOCHS or _tail_trend(means)[0] == "falling":
        return None
    smooth = [statistics.fmean(means[max(0, i - 1) : i + 2]) for i in range(len(means))]
    lowest = min(smooth)
    drop = smooth[0] - lowest
    if drop < TREND_MIN_CHANGE * smooth[0]:
        return 1
    return next(i + 1 for i, value in enumerate(smooth) if value <= lowest + drop / 4)


def _spikes(losses: Sequence[tuple[int, float]]) -> list[int]:
    found = []
    for index in range(SPIKE_WINDOW // 2, len(losses)):
        window = [loss for _, loss in losses[max(0, index - SPIKE_WINDOW) : index]]
        step, loss = losses[index]
        if loss > SPIKE_FACTOR * statistics.median(window):
            found.append(step)
    return found


def _last_epoch_losses(rows: Sequence[tuple[Any, Any]]) -> list[float]:
    epochs = [int(epoch) for epoch, _ in rows if epoch is not None]
    if not epochs:
        return []
    last = max(epochs)
    return [float(loss) for epoch, loss in rows if epoch == last and _finite(loss)]


# ------------------------------------------------------------------------------------------
# lr x d


def _lrd(event: Mapping[str, Any]) -> float | None:
    """The largest lr x d of the step's groups (Unet and TE move together under Prodigy)."""
    groups = event.get("lr_d")
    if not isinstance(groups, dict):
        return None
    values = [float(v) for v in groups.values() if _finite(v)]
    return max(values) if values else None


def _lrd_path(values: Sequence[float]) -> str:
    if not values:
        return "none"
    peak = max(values)
    if peak > LRD_EXPLODING:
        return "exploding"
    if peak < LRD_STUCK:
        return "stuck"
    if values[-1] < 0.1 * peak:
        return "collapsing"
    return "normal"


# ------------------------------------------------------------------------------------------


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def metrics_from_file(path: Path) -> RunMetrics | None:
    """The metrics of a run's ``events.jsonl``, streamed; None when it holds no event."""
    stream = iter_events(path)
    first = next(stream, None)
    if first is None:
        return None
    return metrics_from_events(itertools.chain([first], stream))
