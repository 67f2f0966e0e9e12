"""Step and epoch arithmetic, as sd-scripts counts it: the one place it is defined.

The advisor's plan, diagnose, the wizard and the engine all count with these functions, so
the steps a plan promises are the steps a run takes (issue 14). sd-scripts
(``train_network.py``, ``library/train_util.py``):

- an epoch shows every training image ``repeats`` times (``images x repeats`` views);
- with regularization images, ``DreamBoothDataset`` fills regularization views up to the
  number of training views, cycling through them, so an epoch doubles (``regularization_fill``);
- views are batched per aspect-ratio bucket: ``ceil(views in bucket / batch)`` batches each,
  so uneven buckets add partial batches (``bucket_batches``);
- ``max_train_steps = max_train_epochs x ceil(batches / processes / gradient_accumulation)``
  (``optimizer_steps``), and ``max_train_epochs`` wins over ``max_train_steps``
  (``training_length``).

Without a dataset the views are assumed to share one bucket. Everything here is plain
Python so the torch-free core and the engine import the same code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tuilora.dataset.buckets import BucketPlan

T = TypeVar("T")


def regularization_fill(train: Sequence[T], reg: Sequence[T]) -> list[T]:
    """One epoch's views: every training view, then regularization views cycled until
    there are as many as training views (sd-scripts' ``DreamBoothDataset`` fill; with no
    regularization views the epoch is the training views alone)."""
    if not reg:
        return list(train)
    return [*train, *(reg[index % len(reg)] for index in range(len(train)))]


def bucket_plan(
    resolution: tuple[int, int],
    enable_bucket: bool,
    min_bucket_reso: int,
    max_bucket_reso: int,
    bucket_reso_steps: int = 64,
    bucket_no_upscale: bool = False,
) -> BucketPlan:
    """The buckets images go into, from the config's bucket options. Without buckets
    sd-scripts resizes and crops every image to one bucket of the training resolution."""
    if not enable_bucket:
        side = max(resolution)
        return BucketPlan(resolution, side, side, step=8)
    return BucketPlan(
        resolution,
        min_bucket_reso,
        max_bucket_reso,
        step=bucket_reso_steps,
        no_upscale=bucket_no_upscale,
    )


def bucket_batches(bucket_views: Iterable[int], batch_size: int) -> int:
    """Batches in one epoch: each bucket is batched on its own (a partial batch each)."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    return sum(math.ceil(views / batch_size) for views in bucket_views if views > 0)


def optimizer_steps(batches: int, gradient_accumulation_steps: int = 1, processes: int = 1) -> int:
    """Optimizer steps in one epoch: ``ceil(batches / processes / gradient accumulation)``."""
    if batches < 0 or gradient_accumulation_steps < 1 or processes < 1:
        raise ValueError("batches >= 0, gradient_accumulation_steps and processes >= 1")
    return math.ceil(batches / (processes * gradient_accumulation_steps))


def training_length(
    per_epoch: int, max_train_epochs: int | None, max_train_steps: int
) -> tuple[int, int]:
    """(total steps, epochs): ``max_train_epochs`` wins over ``max_train_steps`` as in
    sd-scripts; a step cap may end inside an epoch (the last one counted whole)."""
    if per_epoch < 1:
        raise ValueError("per_epoch must be >= 1")
    total = per_epoch * max_train_epochs if max_train_epochs else max_train_steps
    return total, math.ceil(total / per_epoch)


@dataclass(frozen=True)
class EpochPlan:
    """How one epoch turns into optimizer steps, with every number that went in."""

    image_repeats: int
    reg_views: int
    batches: int
    batch_size: int
    gradient_accumulation_steps: int
    processes: int
    #: Buckets holding views (None: not known, the views are assumed to share one).
    buckets: int | None

    @property
    def views(self) -> int:
        return self.image_repeats + self.reg_views

    @property
    def steps(self) -> int:
        return optimizer_steps(self.batches, self.gradient_accumulation_steps, self.processes)

    @property
    def sentence(self) -> str:
        """The arithmetic in words, with the numbers this plan used."""
        views = f"{count(self.image_repeats, 'image view')}"
        if self.reg_views:
            views = (
                f"{views} + {count(self.reg_views, 'regularization view')} (sd-scripts fills"
                " regularization images up to the training views, so the epoch doubles)"
            )
        if self.buckets is None:
            batches = (
                f"ceil({self.views} / batch {self.batch_size})"
                f" = {count(self.batches, 'batch', 'batches')}"
            )
        else:
            batches = (
                f"{count(self.batches, 'batch', 'batches')} of up to {self.batch_size} over"
                f" {count(self.buckets, 'bucket')} (each bucket ends in its own partial batch)"
            )
        divisors = []
        if self.processes > 1:
            divisors.append(f"{self.processes} processes")
        if self.gradient_accumulation_steps > 1:
            divisors.append(f"{self.gradient_accumulation_steps} accumulated batches per step")
        steps = f"{count(self.steps, 'step')} per epoch"
        if divisors:
            steps = f"{self.batches} / ({' x '.join(divisors)}) -> {steps}"
        return f"{views}; {batches}; {steps}."


def epoch_plan(
    image_repeats: int,
    batch_size: int,
    processes: int = 1,
    gradient_accumulation_steps: int = 1,
    regularization: bool = False,
    bucket_views: Sequence[int] | None = None,
) -> EpochPlan:
    """The plan of one epoch. ``bucket_views`` (views per bucket, regularization fill
    included) comes from a scanned dataset; without it every view shares one bucket and
    regularization doubles the views."""
    if image_repeats < 1:
        raise ValueError("image_repeats must be >= 1")
    if bucket_views is not None:
        total = sum(bucket_views)
        reg_views = max(0, total - image_repeats)
        batches = bucket_batches(bucket_views, batch_size)
        buckets: int | None = sum(1 for views in bucket_views if views > 0)
    else:
        reg_views = image_repeats if regularization else 0
        batches = bucket_batches([image_repeats + reg_views], batch_size)
        buckets = None
    return EpochPlan(
        image_repeats,
        reg_views,
        batches,
        batch_size,
        gradient_accumulation_steps,
        processes,
        buckets,
    )


def steps_per_epoch(
    image_repeats: int,
    batch_size: int,
    processes: int = 1,
    gradient_accumulation_steps: int = 1,
    regularization: bool = False,
    bucket_views: Sequence[int] | None = None,
) -> int:
    """Optimizer steps in one epoch (see ``epoch_plan``)."""
    return epoch_plan(
        image_repeats,
        batch_size,
        processes,
        gradient_accumulation_steps,
        regularization,
        bucket_views,
    ).steps


def epochs_for(target_steps: float, per_epoch: int) -> int:
    """The fewest whole epochs whose steps reach ``target_steps`` (at least one)."""
    if per_epoch < 1:
        raise ValueError("per_epoch must be >= 1")
    return max(1, math.ceil(target_steps / per_epoch))


def repeats_for(images: int, batch_size: int, steps_wanted: int) -> int:
    """Repeats that make one epoch about ``steps_wanted`` steps (rare-character plan)."""
    if images < 1:
        raise ValueError("images must be >= 1")
    return max(1, math.ceil(steps_wanted * batch_size / images))


#: G-START-SAVE and the project's reading of "a grid you can read": at most this many
#: snapshots per run.
MAX_SNAPSHOTS = 20


def save_every(epochs: int) -> int:
    """G-START-SAVE: every epoch for short runs, every 4 for long ones, and never more than
    MAX_SNAPSHOTS snapshots (a longer run saves less often)."""
    if epochs <= 10:
        return 1
    return max(4, math.ceil(epochs / MAX_SNAPSHOTS))


def snapshots(epochs: int, every: int) -> int:
    """Snapshots a run of ``epochs`` saves every ``every`` epochs: sd-scripts saves after
    each epoch divisible by ``every`` except the last, which is the final file."""
    return (epochs - 1) // every if every >= 1 and epochs >= 1 else 0


def round_rank(value: float) -> int:
    """Ranks of 8 and above round to a multiple of 4; small ranks stay as they are."""
    if value >= 8:
        return 4 * math.floor(value / 4 + 0.5)  # half up: 10 -> 12, not banker's 8
    return max(1, math.floor(value + 0.5))


def count(number: int, singular: str, plural: str | None = None) -> str:
    """``1 image`` / ``40 images``: a number with its noun in the right form."""
    return f"{number} {singular if number == 1 else (plural or singular + 's')}"
