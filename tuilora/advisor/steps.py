"""Step and epoch arithmetic, as sd-scripts does it (G-START-EPOCHS).

steps per epoch = ceil(images x repeats / (batch x processes)); epochs are the fewest whole
epochs that reach the target; total steps = steps per epoch x epochs.
"""

from __future__ import annotations

import math


def steps_per_epoch(image_repeats: int, batch_size: int, processes: int = 1) -> int:
    """Optimizer steps in one pass over the images (each image ``repeats`` times)."""
    if image_repeats < 1 or batch_size < 1 or processes < 1:
        raise ValueError("image_repeats, batch_size and processes must be >= 1")
    return math.ceil(image_repeats / (batch_size * processes))


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


def save_every(epochs: int) -> int:
    """G-START-SAVE: every epoch for short runs, every 4 for long ones."""
    return 1 if epochs <= 10 else 4


def round_rank(value: float) -> int:
    """Ranks of 8 and above round to a multiple of 4; small ranks stay as they are."""
    if value >= 8:
        return 4 * math.floor(value / 4 + 0.5)  # half up: 10 -> 12, not banker's 8
    return max(1, math.floor(value + 0.5))
