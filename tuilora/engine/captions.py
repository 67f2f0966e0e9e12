"""A caption as the text encoder sees it at one step, as sd-scripts' ``process_caption``
(``library/train_util.py``) makes it: prefix and suffix, caption dropout (every N epochs,
counted from 1, or at a rate), wildcards or the first line, tag shuffling with fixed tags
(``keep_tokens`` or ``keep_tokens_separator``), token warmup, tag dropout, and the secondary
separator.

Randomness comes from the ``random.Random`` the loop seeds per step, so a resumed run makes
the same captions as a straight one.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from tuilora.config import TrainingConfig

_WILDCARD = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True)
class CaptionStep:
    """Where training is: the epoch (from 1, as sd-scripts counts it) and the global step
    with the run's total (token warmup grows the caption with the step)."""

    epoch: int
    step: int = 0
    total_steps: int = 1


def process_caption(
    caption: str, config: TrainingConfig, rng: random.Random, at: CaptionStep
) -> str:
    if config.caption_prefix:
        caption = config.caption_prefix + " " + caption
    if config.caption_suffix:
        caption = caption + " " + config.caption_suffix
    dropped = bool(config.caption_dropout_rate) and rng.random() < config.caption_dropout_rate
    every = config.caption_dropout_every_n_epochs
    if dropped or (every > 0 and at.epoch % every == 0):
        return ""
    caption = _choose_line(caption, rng) if config.enable_wildcard else caption.split("\n")[0]
    if config.shuffle_caption or config.token_warmup_step or config.caption_tag_dropout_rate:
        caption = _shuffle_and_drop(caption, config, rng, at)
    if config.secondary_separator:
        caption = caption.replace(config.secondary_separator, config.caption_separator)
    return caption


def _choose_line(caption: str, rng: random.Random) -> str:
    """enable_wildcard: one random line of a multi-line caption, and each ``{a|b|c}`` one of
    its choices (``{{`` / ``}}`` are literal braces)."""
    if "\n" in caption:
        caption = rng.choice(caption.split("\n"))
    open_mark, close_mark = "\u2985", "\u2986"
    while open_mark in caption or close_mark in caption:
        open_mark, close_mark = open_mark + "\u2985", close_mark + "\u2986"
    caption = caption.replace("{{", open_mark).replace("}}", close_mark)
    caption = _WILDCARD.sub(lambda match: rng.choice(match.group(1).split("|")), caption)
    return caption.replace(open_mark, "{").replace(close_mark, "}")


def _shuffle_and_drop(
    caption: str, config: TrainingConfig, rng: random.Random, at: CaptionStep
) -> str:
    separator = config.caption_separator
    head: list[str] = []
    tail: list[str] = []
    keep_separator = config.keep_tokens_separator
    if keep_separator and keep_separator in caption:
        fixed, free_part = caption.split(keep_separator, 1)
        if keep_separator in free_part:
            free_part, suffix = free_part.split(keep_separator, 1)
            tail = [t.strip() for t in suffix.split(separator) if t.strip()]
        head = [t.strip() for t in fixed.split(separator) if t.strip()]
        free = [t.strip() for t in free_part.split(separator) if t.strip()]
    else:
        free = [t.strip() for t in caption.strip().split(separator)]
        if config.keep_tokens > 0:
            head, free = free[: config.keep_tokens], free[config.keep_tokens :]
    warmup = config.token_warmup_step
    if warmup and warmup < 1:  # a fraction of the run's steps, as sd-scripts reads it
        warmup = math.floor(warmup * at.total_steps)
    if warmup and at.step < warmup:
        count = math.floor(at.step * ((len(free) - config.token_warmup_min) / warmup))
        free = free[: count + config.token_warmup_min]
    if config.shuffle_caption:
        rng.shuffle(free)
    if config.caption_tag_dropout_rate > 0:
        free = [t for t in free if rng.random() >= config.caption_tag_dropout_rate]
    return ", ".join(head + free + tail)
