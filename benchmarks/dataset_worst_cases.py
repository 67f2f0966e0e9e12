"""Benchmark: the dataset audit's worst cases, timed here instead of in the tests (the tests
check what is found; timed asserts fail on a busy machine).

- 50,000 near-identical PNGs in one folder (every file a near-duplicate of the first, the
  costlier path): ``scan_dataset`` wall seconds. Goal: well under 60 s on 2 cores.
- ``near_matches`` on 20,000 look-alike hashes of flat images (200 million pairs if
  compared naively): wall seconds. Goal: under 10 s.

Run: ``.venv/bin/python benchmarks/dataset_worst_cases.py [--files N]``.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time
from pathlib import Path

from PIL import Image

from tuilora.dataset.scan import scan_dataset


def fifty_thousand_files(count: int) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, "PNG")
    pixels = buffer.getvalue()
    with tempfile.TemporaryDirectory() as root:
        folder = Path(root) / "1_many"
        folder.mkdir()
        for index in range(count):
            (folder / f"{index:05d}.png").write_bytes(pixels + index.to_bytes(4, "big"))
        start = time.perf_counter()
        report = scan_dataset(root, subject="style", resolution=64)
        elapsed = time.perf_counter() - start
    near = sum(1 for item in report.problems if item.id == "near-duplicate")
    print(f"scan of {count:,} near-identical PNGs: {elapsed:.1f} s ({near:,} near-duplicates)")


def flat_cluster(count: int) -> None:
    from tuilora.dataset.duplicates import near_matches

    rng = random.Random(5)
    items = []
    for index in range(count):  # as the test: 0 with up to 5 of 128 bits flipped
        value = 0
        for position in rng.sample(range(128), rng.randrange(6)):
            value ^= 1 << position
        items.append((f"flat{index:05d}", value))
    start = time.perf_counter()
    result = near_matches(items)
    elapsed = time.perf_counter() - start
    print(f"near_matches on {count:,} flat-image hashes: {elapsed:.2f} s ({len(result):,} found)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--hashes", type=int, default=20_000)
    args = parser.parse_args()
    fifty_thousand_files(args.files)
    flat_cluster(args.hashes)


if __name__ == "__main__":
    main()
