"""Aspect-ratio buckets exactly as kohya-ss/sd-scripts makes and assigns them.

sd-scripts (``model_util.make_bucket_resolutions`` and ``BucketManager.select_bucket``)
builds the bucket set from the training resolution's area, stepping the width from
``min_bucket_reso`` to ``max_bucket_reso`` in ``bucket_reso_steps`` (64), and puts each
image into the bucket with the nearest aspect ratio (the first one in sorted order on a
tie, as numpy's ``argmin`` does). With ``bucket_no_upscale`` it makes no fixed set: an
image keeps its size (scaled down to the resolution's area when larger) cut down to a
multiple of the step. The training engine reuses these functions, so they must stay
bit-for-bit equal to sd-scripts; ``tests/dataset/test_dataset_buckets.py`` pins them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

Reso = tuple[int, int]


@dataclass(frozen=True, slots=True)
class BucketChoice:
    """Where one image goes: the bucket, the size it is resized to before the crop, and
    the bucket's aspect ratio minus the image's (sd-scripts logs the mean of its abs)."""

    reso: Reso
    resized_size: Reso
    ar_error: float


def make_buckets(resolution: Reso, min_reso: int, max_reso: int, step: int = 64) -> list[Reso]:
    """The bucket set for ``resolution`` (width, height), sorted, as sd-scripts makes it.

    The square bucket is the largest multiple of ``step`` whose square fits the area; then
    for each width from ``min_reso`` to ``max_reso`` the tallest height that keeps the area,
    capped at ``max_reso``, in both orientations.
    """
    if step < 1 or min_reso < 1 or max_reso < min_reso:
        raise ValueError(f"bad bucket range: min {min_reso}, max {max_reso}, step {step}")
    max_area = resolution[0] * resolution[1]
    side = int(math.sqrt(max_area) // step) * step
    resos: set[Reso] = {(side, side)}
    width = min_reso
    while width <= max_reso:
        height = min(max_reso, int((max_area // width) // step) * step)
        if height >= min_reso:
            resos.add((width, height))
            resos.add((height, width))
        width += step
    return sorted(resos)


def adjust_bucket_range(
    resolution: Reso, min_reso: int, max_reso: int, step: int = 64
) -> tuple[int, int]:
    """Round the range to the step as sd-scripts does (min down, max up) and check it.

    Raises ``ValueError`` naming the option when the resolution falls outside the range,
    which sd-scripts rejects with an assertion.
    """
    if min_reso % step:
        min_reso -= min_reso % step
    if max_reso % step:
        max_reso += step - max_reso % step
    if min(resolution) < min_reso:
        raise ValueError(
            f"min_bucket_reso {min_reso} is above the resolution {min(resolution)}; "
            f"use at most {min(resolution)}"
        )
    if max(resolution) > max_reso:
        raise ValueError(
            f"max_bucket_reso {max_reso} is below the resolution {max(resolution)}; "
            f"use at least {max(resolution)}"
        )
    return min_reso, max_reso


def default_bucket_range(resolution: int) -> tuple[int, int]:
    """tuilora's default ``min_bucket_reso`` / ``max_bucket_reso`` for a square resolution.

    The guide's range is 320..768 for SD1.x at 512-768 (G-RES, G-EASY); SDXL at 1024 uses
    640..1536 (DESIGN §3). Other resolutions scale from the nearer of the two, rounded to
    64, and the range always contains the resolution itself.
    """
    if resolution >= 1024:
        low, high = 640 * resolution // 1024, 1536 * resolution // 1024
    else:
        low, high = 320, max(768, resolution)
    low = min(low - low % 64, resolution - resolution % 64) or 64
    high = max(high + (-high) % 64, resolution + (-resolution) % 64)
    return low, high


def select_bucket(width: int, height: int, buckets: Sequence[Reso]) -> BucketChoice:
    """sd-scripts' choice with upscaling allowed: the image's own size if it is a bucket,
    else the bucket with the nearest aspect ratio (first in ``buckets`` order on a tie).

    ``buckets`` must be in ``make_buckets`` order for the tie-break to match sd-scripts.
    """
    aspect = width / height
    reso: Reso = (width, height)
    if reso not in buckets:
        best = 0
        best_error = math.inf
        for index, (b_width, b_height) in enumerate(buckets):
            error = abs(b_width / b_height - aspect)
            if error < best_error:
                best, best_error = index, error
        reso = buckets[best]
    # wider than the bucket: match the heights and crop the sides; else match the widths
    scale = reso[1] / height if aspect > reso[0] / reso[1] else reso[0] / width
    resized = (int(width * scale + 0.5), int(height * scale + 0.5))
    return BucketChoice(reso, resized, reso[0] / reso[1] - aspect)


def _round_to_steps(value: float, step: int) -> int:
    rounded = int(value + 0.5)
    return rounded - rounded % step


def select_bucket_no_upscale(
    width: int, height: int, max_area: int, step: int = 64
) -> BucketChoice:
    """sd-scripts' choice with ``bucket_no_upscale``: never enlarge; shrink images above
    ``max_area`` keeping the aspect ratio, then cut each side down to a multiple of ``step``.

    A side shorter than ``step`` gives a 0 bucket side, as in sd-scripts (which then fails);
    the audit flags such images as tiny before training gets there.
    """
    aspect = width / height
    if width * height > max_area:
        resized_w = math.sqrt(max_area * aspect)
        resized_h = max_area / resized_w
        # round either the width or the height to the step, keep the one whose rounded
        # aspect ratio is closer to the image's (sd-scripts' rule)
        b_width = _round_to_steps(resized_w, step)
        b_height_for_w = _round_to_steps(b_width / aspect, step)
        ar_w = b_width / b_height_for_w if b_height_for_w else math.inf
        b_height = _round_to_steps(resized_h, step)
        b_width_for_h = _round_to_steps(b_height * aspect, step)
        ar_h = b_width_for_h / b_height if b_height else math.inf
        if abs(ar_w - aspect) < abs(ar_h - aspect):
            resized = (b_width, int(b_width / aspect + 0.5))
        else:
            resized = (int(b_height * aspect + 0.5), b_height)
    else:
        resized = (width, height)
    reso = (resized[0] - resized[0] % step, resized[1] - resized[1] % step)
    ar_error = reso[0] / reso[1] - aspect if reso[1] else math.inf
    return BucketChoice(reso, resized, ar_error)


@lru_cache(maxsize=32)
def _cached_buckets(resolution: Reso, min_reso: int, max_reso: int, step: int) -> tuple[Reso, ...]:
    return tuple(make_buckets(resolution, min_reso, max_reso, step))


def assign_bucket(
    width: int,
    height: int,
    *,
    resolution: Reso,
    min_reso: int,
    max_reso: int,
    step: int = 64,
    no_upscale: bool = False,
) -> Reso:
    """The bucket (width, height) sd-scripts would put a ``width`` × ``height`` image in."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if no_upscale:
        return select_bucket_no_upscale(width, height, resolution[0] * resolution[1], step).reso
    buckets = _cached_buckets(resolution, min_reso, max_reso, step)
    return select_bucket(width, height, buckets).reso


@dataclass(frozen=True, slots=True)
class BucketPlan:
    """A resolution plus bucket settings, ready to assign many images."""

    resolution: Reso
    min_reso: int
    max_reso: int
    step: int = 64
    no_upscale: bool = False

    @property
    def buckets(self) -> tuple[Reso, ...]:
        """The predefined set (empty with ``no_upscale``: buckets come from image sizes)."""
        if self.no_upscale:
            return ()
        return _cached_buckets(self.resolution, self.min_reso, self.max_reso, self.step)

    def choose(self, width: int, height: int) -> BucketChoice:
        if self.no_upscale:
            max_area = self.resolution[0] * self.resolution[1]
            return select_bucket_no_upscale(width, height, max_area, self.step)
        return select_bucket(width, height, self.buckets)
