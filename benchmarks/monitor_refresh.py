"""Benchmark: the monitor on a 100,000-step events file (issue 8, DESIGN §10), one line.

Writes the file once (cached in $TMPDIR/tuilora-bench-monitor, about 25 MB: 100,000 step
events with two lr groups, 100 epochs, a warning now and then). Then it times:

- the initial load: a fresh ``RunTail`` reading and applying the whole file (what
  ``tuilora watch`` does once when it reattaches), median of 3;
- one refresh: 10 new step events appended (a fast run between two 0.5 s polls), read
  from the file offset, applied, both charts downsampled to an 80×24 screen's widths and
  rendered to terminal segments with the status texts, median of 50. Goal: <= 50 ms.

Run: ``.venv/bin/python benchmarks/monitor_refresh.py [--steps N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from tuilora.screens import monitor_text as mt
from tuilora.screens.monitor_data import RunTail

GOAL_MS = 50.0
STEPS_PER_EPOCH = 1000
#: The monitor's chart areas on an 80×24 terminal (width, rows without the legend).
LOSS_SIZE = (78, 9)
LR_SIZE = (78, 3)


def step_line(step: int, rng: random.Random) -> str:
    loss = 0.12 + 0.05 * math.exp(-step / 20000) + rng.gauss(0, 0.03)
    event = {
        "t": 1760000000.0 + step * 0.25,
        "type": "step",
        "step": step,
        "epoch": (step - 1) // STEPS_PER_EPOCH + 1,
        "loss": round(abs(loss), 6),
        "loss_ema": round(0.12 + 0.05 * math.exp(-step / 20000), 6),
        "lr": {"textencoder": 1.0, "unet": 1.0},
        "lr_d": {"textencoder": 1e-4 * min(1.0, step / 5000), "unet": 1e-4 * min(1, step / 5000)},
        "samples_per_s": 4.0,
        "vram_gb": 9.1,
        "eta_s": 0.0,
    }
    return json.dumps(event) + "\n"


def make_events(path: Path, steps: int) -> None:
    rng = random.Random(0)
    start = {
        "t": 1760000000.0,
        "type": "start",
        "config": {"optimizer_type": "Prodigy"},
        "total_steps": steps + 10_000,
        "epochs": (steps + 10_000) // STEPS_PER_EPOCH,
        "steps_per_epoch": STEPS_PER_EPOCH,
        "device": "cuda:0",
    }
    with path.open("w", encoding="utf-8") as handle:
        handle.write(json.dumps(start) + "\n")
        for step in range(1, steps + 1):
            handle.write(step_line(step, rng))
            if step % STEPS_PER_EPOCH == 0:
                epoch = step // STEPS_PER_EPOCH
                end = {"t": 0, "type": "epoch_end", "epoch": epoch, "step": step, "loss_mean": 0.1}
                end["snapshot"] = f"bench-{epoch:06d}.safetensors"
                handle.write(json.dumps(end) + "\n")
            if step % 25_000 == 0:
                handle.write(json.dumps({"t": 0, "type": "warning", "message": "spike"}) + "\n")


def draw(tail: RunTail, console: Console, run: Path) -> int:
    """Everything a redraw computes; returns the number of segments (so nothing is skipped)."""
    view = tail.view
    parts = [
        mt.status_lines(run.name, view, "running"),
        mt.loss_legend(view, False),
        mt.loss_chart(view, LOSS_SIZE[0], LOSS_SIZE[1], False),
        mt.lr_legend(view),
        mt.lr_chart(view, LR_SIZE[0], LR_SIZE[1], False),
        mt.files_lines(view, run),
        mt.messages_lines(view, 3),
    ]
    options = console.options.update(width=78)
    return sum(len(console.render_lines(part, options)) for part in parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    cache = Path(tempfile.gettempdir()) / "tuilora-bench-monitor"
    source = cache / f"events-{args.steps}.jsonl"
    if not source.exists():
        cache.mkdir(parents=True, exist_ok=True)
        make_events(source, args.steps)
    work = Path(tempfile.mkdtemp(prefix="tuilora-monitor-"))
    run = work / "bench"
    run.mkdir()
    try:
        shutil.copy(source, run / "events.jsonl")
        console = Console(width=80, file=open(os.devnull, "w"), color_system="truecolor")  # noqa: SIM115
        loads = []
        for _ in range(3):
            began = time.perf_counter()
            tail = RunTail(run)
            tail.poll()
            draw(tail, console, run)
            loads.append(time.perf_counter() - began)
        rng = random.Random(1)
        step = args.steps
        refreshes = []
        with (run / "events.jsonl").open("a", encoding="utf-8") as handle:
            for _ in range(50):
                for _ in range(10):
                    step += 1
                    handle.write(step_line(step, rng))
                handle.flush()
                began = time.perf_counter()
                changed = tail.poll()
                draw(tail, console, run)
                refreshes.append(time.perf_counter() - began)
                assert changed and tail.view.step == step
        load_s = statistics.median(loads)
        refresh_ms = statistics.median(refreshes) * 1000
        verdict = "ok" if refresh_ms <= GOAL_MS else "OVER GOAL"
        print(
            f"monitor, {args.steps:,} steps: refresh {refresh_ms:.1f} ms"
            f" ({refresh_ms / GOAL_MS:.2f}x the {GOAL_MS:.0f} ms goal, {verdict});"
            f" initial load {load_s:.2f} s ({os.path.getsize(source) / 1e6:.0f} MB)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
