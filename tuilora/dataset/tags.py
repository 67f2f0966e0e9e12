"""Tag statistics over the captions sd-scripts would train with.

``ss_tag_frequency`` (sd-scripts ``BaseDataset.set_tag_frequency``, written to the LoRA's
metadata by ``train_network.py``) is keyed by the image folder's name and counts, for every
image in it, the tags of the caption the image trains with (the caption's first line, or
the folder's class token when the caption file is missing): split on commas, stripped,
lower-cased. It is **not** weighted by repeats, counts a tag twice if one caption repeats
it, and includes regularization folders. ``TagReport.ss_tag_frequency`` reproduces it
exactly; the other statistics are per training image, with a repeats-weighted count next
to the plain one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from tuilora.dataset.captions import leading_tags, split_tags
from tuilora.dataset.model import LeadingTags, TagCount, TagReport

# A tag in at least this share of the training captions is a trigger candidate: "nearly
# every caption" allows a few captions written without it (sd-scripts' shuffle keeps the
# first keep_tokens tags, which is where a trigger belongs).
TRIGGER_SHARE: Final = 0.9
# With fewer captions every tag of one caption would be a "trigger".
TRIGGER_MIN_CAPTIONS: Final = 2
MAX_LEADING: Final = 10


@dataclass(frozen=True, slots=True)
class CaptionUse:
    """One image's effective caption. ``folder`` is the folder's name (the key sd-scripts
    uses in ss_tag_frequency); ``caption`` is None when the caption file is unusable."""

    folder: str
    repeats: int
    is_reg: bool
    caption: str | None


def tag_report(
    uses: Iterable[CaptionUse], keep_tokens: int, folders: Iterable[str] = ()
) -> TagReport:
    """Statistics over ``uses``; ``folders`` seeds ss_tag_frequency with every folder name,
    since sd-scripts writes an empty entry for a folder without images."""
    ss_freq: dict[str, dict[str, int]] = {name: {} for name in folders}
    images: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    weighted: Counter[str] = Counter()
    leading: Counter[tuple[str, ...]] = Counter()
    captions = 0
    for use in uses:
        if use.caption is None:
            continue
        tags = split_tags(use.caption)
        per_folder = ss_freq.setdefault(use.folder, {})
        for tag in tags:
            per_folder[tag] = per_folder.get(tag, 0) + 1
        if use.is_reg or not tags:
            continue
        captions += 1
        images.update(set(tags))
        counts.update(tags)
        for tag in tags:
            weighted[tag] += use.repeats
        if keep_tokens > 0:
            leading[leading_tags(use.caption, keep_tokens)] += 1
    ordered = sorted(images, key=lambda tag: (-images[tag], tag))
    table = tuple(TagCount(tag, images[tag], counts[tag], weighted[tag]) for tag in ordered)
    trigger: tuple[str, ...] = ()
    if captions >= TRIGGER_MIN_CAPTIONS:
        need = math.ceil(TRIGGER_SHARE * captions)
        trigger = tuple(tag for tag in ordered if images[tag] >= need)
    lead = tuple(
        LeadingTags(tags, n)
        for tags, n in sorted(leading.items(), key=lambda item: (-item[1], item[0]))[:MAX_LEADING]
    )
    single = tuple(sorted(tag for tag in ordered if images[tag] == 1))
    return TagReport(captions, table, trigger, keep_tokens, lead, single, ss_freq)
