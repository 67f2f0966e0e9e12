"""Benchmark: the readers of a 100,000-step ``events.jsonl`` (issue 17, item 5), time and
peak memory, one line each.

The file is the monitor benchmark's (``benchmarks/monitor_refresh.py``: 100,000 step events
with two lr groups, about 25 MB, cached in $TMPDIR/tuilora-bench-monitor), in a run folder
with a ``config.toml``. Each reader runs twice: timed, then under ``tracemalloc`` for its
peak of Python allocations (bytes, lines, dicts), which the line compares with the file's
size — reading the file whole once costs 1x; a reader that keeps every event as a dict
costs many times that:

- ``read_events``: the whole file as a list of events (what every reader used to do);
- ``watch --plain`` (not following): prints the run once, as after an SSH reconnect;
- the monitor's first load (``RunTail.poll``: every event applied to the charts' view);
- ``diagnose RUN`` (``load_run_input``: the config and the curves' metrics);
- ``runs`` / ``stop`` status (``run_status``: the head and tail of the file).

Run: ``.venv/bin/python benchmarks/events_scale.py [--steps N]``.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import tomli_w

sys.path.insert(0, str(Path(__file__).parent))

from monitor_refresh import make_events  # noqa: E402

from tuilora.advisor.diagnose_inputs import load_run_input  # noqa: E402
from tuilora.config import TrainingConfig, to_toml_dict  # noqa: E402
from tuilora.runs.events import read_events  # noqa: E402
from tuilora.runs.status import run_status  # noqa: E402
from tuilora.runs.watch import watch_plain  # noqa: E402
from tuilora.screens.monitor_data import RunTail  # noqa: E402


def measure(reader: Callable[[], object]) -> tuple[float, int]:
    """(seconds, peak bytes of Python allocations) of one call, the best time of two."""
    times = []
    for _ in range(2):
        began = time.perf_counter()
        reader()
        times.append(time.perf_counter() - began)
    tracemalloc.start()
    reader()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return min(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    cache = Path(tempfile.gettempdir()) / "tuilora-bench-monitor"
    source = cache / f"events-{args.steps}.jsonl"
    if not source.exists():
        cache.mkdir(parents=True, exist_ok=True)
        make_events(source, args.steps)
    work = Path(tempfile.mkdtemp(prefix="tuilora-events-"))
    run = work / "bench"
    run.mkdir()
    try:
        shutil.copy(source, run / "events.jsonl")
        config = TrainingConfig(output_name="bench", optimizer_type="Prodigy")
        (run / "config.toml").write_text(tomli_w.dumps(to_toml_dict(config)), encoding="utf-8")
        size = os.path.getsize(run / "events.jsonl")

        def watch() -> None:
            watch_plain(run, follow=False, out=io.StringIO(), every=1000)

        def monitor() -> None:
            RunTail(run).poll()

        readers: dict[str, Callable[[], object]] = {
            "read_events": lambda: read_events(run / "events.jsonl"),
            "watch --plain": watch,
            "monitor first load": monitor,
            "diagnose RUN": lambda: load_run_input(run),
            "runs status": lambda: run_status(run),
        }
        print(f"events.jsonl of {args.steps:,} steps: {size / 1e6:.1f} MB")
        for name, reader in readers.items():
            seconds, peak = measure(reader)
            print(
                f"  {name:<20} {seconds:6.2f} s   peak {peak / 1e6:7.1f} MB"
                f" ({peak / size:5.2f}x the file)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
