"""The monitor's text: status lines, chart legends, files, messages and the notice line.

Pure functions of a ``RunView`` (and the run's state), so tests and the benchmark use them
without Textual. Paths are shown relative to the working folder (or with ``~``) and the
texts a user reads or copies wrap rather than being cut at 80 columns; no wall-clock time
appears unless the caller passes ``now`` (the "no event for ..." staleness hint).
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from tuilora.runs.phases import describe_phase
from tuilora.screens.charts import GUTTER, Curve, format_value, render_chart
from tuilora.screens.monitor_data import RunView
from tuilora.wizard.fields import short_path

STATE_STYLES = {
    "loading": "bold cyan",
    "failed-to-start": "bold red",
    "running": "bold green",
    "finished": "bold",
    "stopped": "bold yellow",
    "waiting": "bold",
    "diverged": "bold red",
    "oom": "bold red",
    "crashed": "bold red",
}
STALE_AFTER_S = 30.0
BAR_WIDTH = 24
RAW_STYLE = "dim"
EMA_STYLE = "bold cyan"
LR_STYLES = ("bold magenta", "yellow")
SHORT_GROUPS = {"textencoder": "te", "text_encoder": "te"}


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:
        return f"{hours // 24} days"
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def status_lines(
    name: str, view: RunView, state: str, *, now: float | None = None, stopping: bool = False
) -> Text:
    """Two lines: the run, its state, step and epoch; then progress, speed, ETA and VRAM."""
    text = Text(overflow="fold")
    text.append(f"{name} ", style="bold")
    label = "stopping" if stopping and state == "running" else state
    text.append(f" {label.upper()} ", style=f"reverse {STATE_STYLES.get(state, 'bold')}")
    total = view.total_steps
    text.append(f"  step {view.step}/{total or '?'}")
    if view.epoch is not None:
        text.append(f"  epoch {view.epoch}/{view.epochs or '?'}")
    elapsed = view.elapsed_s()
    if now is not None and state in ("loading", "running") and view.last_t is not None:
        elapsed = (elapsed or 0.0) + max(now - view.last_t, 0.0)  # it goes on between events
    text.append(f"  elapsed {duration(elapsed)}")
    if now is not None and state == "running" and view.last_t is not None:
        quiet = now - view.last_t
        if quiet > STALE_AFTER_S:
            text.append(f"  no event for {duration(quiet)}", style="bold yellow")
    text.append("\n")
    phase = view.phase
    if state == "loading" and phase is not None:
        return _phase_line(text, phase)
    fraction = min(view.step / total, 1.0) if total else 0.0
    filled = round(fraction * BAR_WIDTH)
    text.append("█" * filled, style="green")
    text.append("░" * (BAR_WIDTH - filled), style="dim")
    text.append(f" {fraction:4.0%}")
    last = view.last_step
    speed = last.get("samples_per_s")
    if isinstance(speed, int | float):
        text.append(f"  {speed:.2f} img/s")
    if state == "running":
        text.append(f"  ETA {duration(last.get('eta_s'))}")
    vram = last.get("vram_gb")
    if isinstance(vram, int | float):
        text.append(f"  VRAM {vram:.1f} GB")
    elif view.device:
        text.append(f"  on {view.device}")
    return text


def _phase_line(text: Text, phase: dict[str, object]) -> Text:
    """While loading: the phase, its own bar when it has a count, and its ETA."""
    done, count = phase.get("done"), phase.get("total")
    if isinstance(done, int) and isinstance(count, int) and count > 0:
        filled = round(min(done / count, 1.0) * BAR_WIDTH)
        text.append("█" * filled, style="cyan")
        text.append("░" * (BAR_WIDTH - filled), style="dim")
        text.append(" ")
    text.append(describe_phase(phase))
    return text


def loss_legend(view: RunView, log: bool) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("Loss", style="bold")
    text.append("  raw ⠒", style=RAW_STYLE)
    loss = view.last_step.get("loss")
    if not view.last_step:
        text.append(" -")  # no step yet: nothing to show, not a NaN
    else:
        text.append(f" {format_value(loss)}" if isinstance(loss, int | float) else " NaN")
    text.append("  EMA ⠒", style=EMA_STYLE)
    ema = view.last_step.get("loss_ema")
    text.append(f" {format_value(ema)}" if isinstance(ema, int | float) else " -")
    if view.nan_steps:
        text.append(f"  NaN at {view.nan_steps} step(s)", style="bold red")
    text.append("  log scale" if log else "", style="italic")
    return text


def lr_groups(view: RunView) -> list[str]:
    """Groups to draw, the one drawn on top last (unet over the text encoder)."""
    names = list(view.lr)
    names.sort(key=lambda group: group == "unet")
    return names[-2:]


def lr_legend(view: RunView) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    label = "lr × d" if view.adaptive else "lr"
    text.append(label, style="bold")
    if view.adaptive and view.optimizer:
        text.append(f" ({view.optimizer}, G-OPT-D)", style="dim")
    latest = view.last_step.get("lr_d" if view.adaptive else "lr") or {}
    groups = lr_groups(view)
    for group, style in zip(reversed(groups), LR_STYLES, strict=False):
        value = latest.get(group) if isinstance(latest, dict) else None
        shown = format_value(value) if isinstance(value, int | float) else "-"
        text.append(f"  {SHORT_GROUPS.get(group, group)} ⠒", style=style)
        text.append(f" {shown}")
    return text


def loss_chart(view: RunView, width: int, height: int, log: bool) -> Text:
    x0, x1 = view.x_range
    columns = 2 * max(width - GUTTER, 1)
    curves = [
        Curve(view.loss.envelope(x0, x1, columns), RAW_STYLE),
        Curve(view.loss_ema.envelope(x0, x1, columns), EMA_STYLE),
    ]
    return render_chart(
        curves, width=width, height=height, log=log, marks=view.epoch_marks(), x_range=(x0, x1)
    )


def lr_chart(view: RunView, width: int, height: int, log: bool) -> Text:
    x0, x1 = view.x_range
    columns = 2 * max(width - GUTTER, 1)
    groups = lr_groups(view)
    styles = list(reversed(LR_STYLES[: len(groups)]))
    curves = [
        Curve(view.lr[group].envelope(x0, x1, columns), style)
        for group, style in zip(groups, styles, strict=True)
    ]
    return render_chart(
        curves,
        width=width,
        height=height,
        log=log,
        marks=view.epoch_marks(),
        x_range=(x0, x1),
        axis=False,
    )


def show_path(path: str, run_dir: Path) -> str:
    """A file of the run as ``RUN/name`` (the run folder as short as it reads), else as
    written, shortened the same way."""
    resolved = Path(path)
    try:
        inside = resolved.resolve().relative_to(run_dir.resolve())
    except (ValueError, OSError):
        return short_path(path)
    return str(Path(short_path(run_dir.absolute())) / inside)


def shorten_paths(message: str, run_dir: Path) -> str:
    """A message from the trainer with the run folder's absolute path made short."""
    for absolute in {str(run_dir.absolute()), str(run_dir.resolve())}:
        message = message.replace(absolute, short_path(absolute))
    return message


def files_lines(view: RunView, run_dir: Path) -> Text:
    text = Text(overflow="fold")
    final = view.end.get("final") if view.end else None
    if final:  # first: once there is a final LoRA it is what the user came for
        text.append("final ", style="bold")
        text.append(f"{Path(str(final)).name}  ")
    text.append("snapshots ", style="bold")
    if view.snapshots:
        newest = Path(view.snapshots[-1]).name
        text.append(f"{len(view.snapshots)}, newest {newest}")
    else:
        text.append("none yet")
    text.append("\n")
    text.append("sample ", style="bold")
    if view.samples:
        epoch = f"(epoch {view.sample_epoch}) " if view.sample_epoch is not None else ""
        more = f" (+{len(view.samples) - 1})" if len(view.samples) > 1 else ""
        text.append(f"{epoch}{show_path(view.samples[0], run_dir)}{more}")
    elif view.sampling is False:
        text.append("none: the config has no sample_prompts", style="dim")
    else:
        text.append("none yet")
    return text


MESSAGE_STYLES = {"warning": "yellow", "error": "bold red", "end": "bold", "info": "dim"}


def messages_lines(view: RunView, rows: int, run_dir: Path | None = None) -> Text:
    """The counts, then the latest ``rows - 1`` messages, wrapped (paths made short)."""
    text = Text(overflow="fold")
    # info apart: "training in fp32 on the CPU" needs no action and is not a warning
    counts = f"info {view.infos}, warnings {view.warnings}, errors {view.errors}"
    if not view.messages:
        text.append(f"{counts}: nothing to report", style="dim")
        return text
    shown = list(view.messages)[-max(rows - 1, 1) :]
    text.append(counts, style="bold")
    for kind, message in shown:
        text.append("\n")
        text.append(f"{kind}: ", style=MESSAGE_STYLES.get(kind, "bold"))
        text.append(shorten_paths(message, run_dir) if run_dir is not None else message)
    return text


def notice_line(state: str, view: RunView, run_dir: Path, *, stopping: bool = False) -> str:
    """What the keys do now, and that leaving does not stop the training."""
    run = short_path(run_dir.absolute())
    if state == "running" and stopping:
        return "stopping: the trainer saves its state and LoRA, then exits"
    if state == "running":
        return "q leaves the monitor: training keeps running · s stops it (saves first)"
    if state == "loading":
        return "loading · q leaves the monitor (it keeps going) · s stops it"
    if state == "waiting":
        return f"waiting for {run}/events.jsonl ..."
    if state == "crashed":
        return (
            f"the trainer is gone without an end event: see {run}/train.log;"
            f" continue with: tuilora train --resume {run}"
        )
    if state == "finished":
        return "finished · c: the checklist to test the LoRA and plan the next run"
    if state == "stopped":
        return f"stopped · continue with: tuilora train --resume {run} · c: the checklist"
    return f"{state} · c: the checklist (what went wrong, the next run's config)"
