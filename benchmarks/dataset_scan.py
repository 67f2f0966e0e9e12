"""Benchmark: `tuilora dataset check` on 10,000 generated images, cold and warm (§10).

Generates the images once (cached in $TMPDIR/tuilora-bench-dataset, about 30 s the first
time): 10 folders ``<n>_set<k>`` of PNG / JPEG / WebP with sides from 64 to 1024 px, mostly
small so generation stays fast, each with a caption; one image in 50 is a planted copy of
an earlier one (resized, re-compressed or brightened), which the near-duplicate check must
find. Then it times, on a warm page cache, as the median of three runs:

- the headers-only scan (``near_duplicates=False``, no probe cache);
- the full audit, cold: near-duplicates included, an empty probe cache (a fresh
  ``XDG_CACHE_HOME``), so every image is decoded: goal <= 2 s on the 2-core machine;
- the full audit, warm: the same with the cache the cold run wrote (headers only);
- fully decoding every image with Pillow in one process, for scale.

Each line gives wall seconds and the CPU seconds of all processes (user + system), which
tells a busy machine (wall well above CPU / cores) from a slow scan. Last, it checks that
the near-duplicates found with reduced-size decoding equal those of full decoding.

Run: ``.venv/bin/python benchmarks/dataset_scan.py [--images N] [--workers N]``.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

from PIL import Image, ImageDraw, ImageEnhance

from tuilora.dataset import thumbs
from tuilora.dataset.model import DatasetReport
from tuilora.dataset.scan import scan_dataset
from tuilora.dataset.workers import default_workers

FOLDERS = 10
GOAL_SECONDS_PER_10K = 2.0
RUNS = 3
COPY_EVERY = 50
VERSION = 2  # of the generated set: bumped when the generator changes


def _side(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.70:
        return rng.randrange(64, 257, 16)
    if roll < 0.95:
        return rng.randrange(256, 513, 32)
    return rng.randrange(512, 1025, 64)


def draw_image(rng: random.Random) -> Image.Image:
    """A flat background with six flat rectangles: cheap to make, hard on perceptual
    hashes (large flat areas)."""
    size = (_side(rng), _side(rng))
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(8, size[0] // 2 + 9), rng.randrange(8, size[1] // 2 + 9)
        draw.rectangle((x, y, x + w, y + h), fill=tuple(rng.randrange(256) for _ in range(3)))
    return image


def _copy_of(image: Image.Image, rng: random.Random) -> Image.Image:
    """What people put in a dataset twice: a resized, re-compressed or brightened copy."""
    kind = rng.randrange(3)
    if kind == 0:
        width, height = image.size
        return image.resize((max(16, width * 3 // 4), max(16, height * 3 // 4)))
    if kind == 1:
        return image  # saved again below, in another format or quality
    return ImageEnhance.Brightness(image).enhance(1.08)


def _save(image: Image.Image, path: Path, quality: int) -> None:
    if path.suffix == ".jpg":
        image.save(path, quality=quality)
    else:
        image.save(path)


def ensure_dataset(root: Path, count: int) -> Path:
    """Generate ``count`` images under ``root`` unless a complete set is already there."""
    marker = root / f".complete-v{VERSION}-{count}"
    if marker.exists():
        return root
    rng = random.Random(20261126)
    tags = ["1girl", "solo", "smile", "outdoors", "sword", "hat", "red eyes", "long hair"]
    originals: list[Image.Image] = []
    for index in range(count):
        folder = root / f"{index % 3 + 1}_set{index % FOLDERS}"
        folder.mkdir(parents=True, exist_ok=True)
        ext = rng.choices([".jpg", ".png", ".webp"], weights=[5, 4, 1])[0]
        if index % COPY_EVERY == COPY_EVERY - 1 and originals:
            image = _copy_of(rng.choice(originals), rng)
        else:
            image = draw_image(rng)
            if len(originals) < 200:
                originals.append(image)
        _save(image, folder / f"img{index:05d}{ext}", rng.choice([70, 85, 95]))
        caption = ", ".join(["bench", *rng.sample(tags, 3)])
        (folder / f"img{index:05d}.txt").write_text(caption, encoding="utf-8")
    marker.touch()
    return root


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _median_time(
    action: Callable[[], object], before: Callable[[], object] = lambda: None
) -> tuple[float, float]:
    """Median wall and CPU seconds of ``RUNS`` runs of ``action`` (``before`` untimed)."""
    walls, cpus = [], []
    for _ in range(RUNS):
        before()
        cpu, start = _cpu(), time.perf_counter()
        action()
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def _decode(path: str) -> None:
    with Image.open(path) as image:
        image.load()


def near_duplicates(report: DatasetReport) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in report.problems if p.id == "near-duplicate"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()
    base = Path(tempfile.gettempdir()) / "tuilora-bench-dataset"
    root = base / f"v{VERSION}-{args.images}"
    start = time.perf_counter()
    ensure_dataset(root, args.images)
    setup = time.perf_counter() - start
    paths = [
        str(path) for path in sorted(root.glob("*/*")) if path.suffix in (".jpg", ".png", ".webp")
    ]
    n = len(paths)
    workers = args.workers
    caches = Path(tempfile.mkdtemp(prefix="tuilora-bench-cache-"))
    runs = iter(range(1_000_000))

    def fresh_cache() -> None:
        os.environ["XDG_CACHE_HOME"] = str(caches / f"cold{next(runs)}")

    def scan(near: bool, cache: bool) -> DatasetReport:
        return scan_dataset(str(root), near_duplicates=near, workers=workers, use_cache=cache)

    scan(True, False)  # warm the page cache and Pillow's plugin imports, once
    headers = _median_time(lambda: scan(False, False))
    cold = _median_time(lambda: scan(True, True), fresh_cache)
    warm = _median_time(lambda: scan(True, True))  # the last cold run filled this cache
    decode = _median_time(lambda: [_decode(path) for path in paths])
    cpus = os.cpu_count()
    print(f"setup: {n} images in {root} ({setup:.1f} s), {cpus} CPUs, {workers} processes")
    for label, (wall, cpu) in (
        ("headers only (no near-duplicates, no cache)", headers),
        ("full audit, cold (near-duplicates, empty cache)", cold),
        ("full audit, warm (near-duplicates, cache filled)", warm),
        ("full decode with Pillow, 1 process", decode),
    ):
        print(f"{label}: {wall:.2f} s wall, {cpu:.2f} s CPU, {n / wall:,.0f} images/s")
    print(f"ratio full audit cold / full decode: {cold[0] / decode[0]:.2f}")
    print(f"ratio full audit warm / headers only: {warm[0] / headers[0]:.2f}")
    per_10k = cold[0] * 10_000 / n
    verdict = "met" if per_10k <= GOAL_SECONDS_PER_10K else "missed"
    print(f"goal: full audit of 10,000 images <= {GOAL_SECONDS_PER_10K:.0f} s cold: {verdict}")
    reduced = near_duplicates(scan(True, False))
    with mock.patch.object(thumbs, "DRAFT_SIDE", 1 << 30):  # no draft: decode at full size
        full = near_duplicates(scan(True, False))
    same = "equal" if reduced == full else f"DIFFERENT ({len(set(reduced) ^ set(full))} differ)"
    print(
        f"near-duplicates: {len(reduced)} found with reduced decoding, {len(full)} with full "
        f"decoding: {same}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
