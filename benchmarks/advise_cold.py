"""Cold start of `tuilora advise --format json` as a ratio to `python -c pass`, one run.

Both are timed alternately in the same process tree (the machine is noisy, so the ratio of
medians is the figure that means something). Goal (issue 3): <= 8x and <= 0.25 s here.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

ROUNDS = 15
ADVISE = [
    sys.executable,
    "-m",
    "tuilora",
    "advise",
    "--category",
    "C",
    "--images",
    "40",
    "--vram",
    "12",
    "--format",
    "json",
]
BASELINE = [sys.executable, "-c", "pass"]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    timed(ADVISE)  # warm the file cache and .pyc files: "cold" means a new process
    advise, baseline = [], []
    for _ in range(ROUNDS):
        baseline.append(timed(BASELINE))
        advise.append(timed(ADVISE))
    a, b = statistics.median(advise), statistics.median(baseline)
    print(
        f"advise cold start: {a * 1000:.0f} ms, python -c pass: {b * 1000:.0f} ms,"
        f" ratio {a / b:.1f}x (goal <= 8x and <= 250 ms)"
    )


if __name__ == "__main__":
    main()
