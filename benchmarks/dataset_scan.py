"""Benchmark: dataset scan of 10,000 generated images against fully decoding them (§10).

Generates the images once (cached in $TMPDIR/tuilora-bench-dataset, about 20 s the first
time): 10 folders ``<n>_set<k>`` of PNG / JPEG / WebP with sides from 64 to 1024 px, mostly
small so generation stays fast, each with a caption. Then it times, on a warm page cache
and as the median of three runs:

- the default scan (headers, content hashes, captions, and near-duplicate hashing, which
  decodes JPEG at 1/8 scale and the other formats in full);
- the headers-only scan (``near_duplicates=False``): the DESIGN §5 scan, goal <= 2 s;
- fully decoding every image with Pillow, in one thread and in a thread pool.

Run: ``.venv/bin/python benchmarks/dataset_scan.py [--images N] [--workers N]``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw

from tuilora.dataset.scan import default_workers, scan_dataset

FOLDERS = 10
GOAL_SECONDS_PER_10K = 2.0
RUNS = 3


def _side(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.70:
        return rng.randrange(64, 257, 16)
    if roll < 0.95:
        return rng.randrange(256, 513, 32)
    return rng.randrange(512, 1025, 64)


def _make_image(path: Path, rng: random.Random) -> None:
    size = (_side(rng), _side(rng))
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(8, size[0] // 2 + 9), rng.randrange(8, size[1] // 2 + 9)
        draw.rectangle((x, y, x + w, y + h), fill=tuple(rng.randrange(256) for _ in range(3)))
    if path.suffix == ".jpg":
        image.save(path, quality=85)
    else:
        image.save(path)


def ensure_dataset(root: Path, count: int) -> Path:
    """Generate ``count`` images under ``root`` unless a complete set is already there."""
    marker = root / f".complete-{count}"
    if marker.exists():
        return root
    rng = random.Random(20261126)
    tags = ["1girl", "solo", "smile", "outdoors", "sword", "hat", "red eyes", "long hair"]
    for index in range(count):
        folder = root / f"{index % 3 + 1}_set{index % FOLDERS}"
        folder.mkdir(parents=True, exist_ok=True)
        ext = rng.choices([".jpg", ".png", ".webp"], weights=[5, 4, 1])[0]
        _make_image(folder / f"img{index:05d}{ext}", rng)
        caption = ", ".join(["bench", *rng.sample(tags, 3)])
        (folder / f"img{index:05d}.txt").write_text(caption, encoding="utf-8")
    marker.touch()
    return root


def _median_time(action: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _decode(path: str) -> None:
    with Image.open(path) as image:
        image.load()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()
    root = Path(tempfile.gettempdir()) / "tuilora-bench-dataset" / str(args.images)
    start = time.perf_counter()
    ensure_dataset(root, args.images)
    setup = time.perf_counter() - start
    paths = [
        str(path) for path in sorted(root.glob("*/*")) if path.suffix in (".jpg", ".png", ".webp")
    ]
    n = len(paths)
    workers = args.workers

    def scan(near: bool) -> object:
        return scan_dataset(str(root), near_duplicates=near, workers=workers)

    def decode_threads() -> None:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(_decode, paths, chunksize=64))

    def decode_one_thread() -> None:
        for path in paths:
            _decode(path)

    scan(True)  # warm the page cache and Pillow's plugin imports, once
    full = _median_time(lambda: scan(True))
    headers = _median_time(lambda: scan(False))
    decode_1 = _median_time(decode_one_thread)
    decode_n = _median_time(decode_threads)
    decode = min(decode_1, decode_n)
    cpus = os.cpu_count()
    print(f"setup: {n} images in {root} ({setup:.1f} s), {cpus} CPUs, {workers} threads")
    print(f"scan, headers only: {headers:.2f} s, {n / headers:,.0f} images/s")
    print(f"scan with near-duplicate hashing (default): {full:.2f} s, {n / full:,.0f} images/s")
    print(f"full decode, 1 thread: {decode_1:.2f} s, {n / decode_1:,.0f} images/s")
    print(f"full decode, {workers} threads: {decode_n:.2f} s, {n / decode_n:,.0f} images/s")
    print(f"ratio headers-only scan / fastest full decode: {headers / decode:.2f}")
    print(f"ratio default scan / fastest full decode: {full / decode:.2f}")
    per_10k = headers * 10_000 / n
    verdict = "met" if per_10k <= GOAL_SECONDS_PER_10K else "missed"
    print(f"goal: headers-only scan of 10,000 images <= {GOAL_SECONDS_PER_10K:.0f} s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
