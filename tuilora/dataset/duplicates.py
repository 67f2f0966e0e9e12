"""Find exact duplicates (same content hash) and near-duplicates (close perceptual hashes).

Near-duplicates are found without comparing every pair: two 128-bit hashes within
``NEAR_DISTANCE`` bits of each other agree exactly on at least one of ``NEAR_DISTANCE + 1``
disjoint bands (pigeonhole), so only hashes sharing a band value are compared (exact for
ordinary buckets; bounded and approximate in the huge buckets flat images make, see
``SMALL_BUCKET``). 50,000 images would otherwise be 1.25 billion comparisons.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Final

from tuilora.dataset.images import hamming

HASH_BITS: Final = 128
# At most this many of the 128 dHash bits may differ for two images to count as near
# duplicates: a re-encode or a resize of one picture moves a few bits; different pictures
# differ in about half of them. Measured on 40 photo-like images: a 50% resize, JPEG
# quality 60 or +10% brightness moved 0-9 bits, a 5% crop 8-38, other images 46-82.
NEAR_DISTANCE: Final = 8
# ...and their 9×9 colour thumbnails at most this far apart (mean absolute difference in
# levels of 255, average brightness taken out; see thumbs.colour_distance): copies came
# within 9, the hash's false matches among different pictures at 19 or more.
NEAR_COLOUR: Final = 12.0
# Band buckets up to this size are compared pair by pair. Larger ones come from many
# images sharing flat regions (all-zero bands); there every hash is compared with its
# WINDOW nearest neighbours in sorted order instead, which bounds the work at
# O(n · (SMALL_BUCKET + WINDOW)) per band; a match can be missed only inside such a
# cluster of look-alikes, where each image still finds its closest neighbours.
SMALL_BUCKET: Final = 32
WINDOW: Final = 8
# Candidates confirmed per image at most (oldest first): bounds the work in a cluster of
# look-alike hashes whose pictures the confirmation tells apart.
MAX_CONFIRM: Final = 8


def exact_groups(items: Sequence[tuple[str, bytes]]) -> list[list[str]]:
    """Paths with identical digests, each group in the order of ``items`` (oldest first,
    so the first path is the original and the others its copies), groups ordered by their
    first path."""
    by_digest: dict[bytes, list[str]] = defaultdict(list)
    for path, digest in items:
        by_digest[digest].append(path)
    groups = [paths for paths in by_digest.values() if len(paths) > 1]
    return sorted(groups, key=lambda group: group[0])


def _bands(max_distance: int) -> list[tuple[int, int]]:
    """(shift, mask) of ``max_distance + 1`` disjoint bands covering all the bits."""
    count = max_distance + 1
    bands = []
    start = 0
    for index in range(count):
        width = HASH_BITS // count + (1 if index < HASH_BITS % count else 0)
        bands.append((start, (1 << width) - 1))
        start += width
    return bands


def _rotate_band_first(value: int, shift: int, width: int) -> int:
    """Rotate the 128-bit ``value`` so the band at ``shift`` becomes the top bits and the
    bits above it follow: sorting by the result puts hashes sharing the band *and* the
    longest run of following bits next to each other."""
    turn = (HASH_BITS - shift - width) % HASH_BITS
    return ((value << turn) | (value >> (HASH_BITS - turn))) & ((1 << HASH_BITS) - 1)


def _candidate_pairs(hashes: Sequence[int], shift: int, mask: int) -> Iterator[tuple[int, int]]:
    """Index pairs sharing this band's value: all pairs in small buckets, and each hash's
    next ``WINDOW`` neighbours (in band-first sorted order) in large ones."""
    buckets: dict[int, list[int]] = defaultdict(list)
    for index, value in enumerate(hashes):
        buckets[(value >> shift) & mask].append(index)
    width = mask.bit_length()
    for members in buckets.values():
        if len(members) <= SMALL_BUCKET:
            for pos, a in enumerate(members):
                for b in members[pos + 1 :]:
                    yield a, b
            continue
        members.sort(key=lambda index: _rotate_band_first(hashes[index], shift, width))
        for pos, a in enumerate(members):
            for b in members[pos + 1 : pos + 1 + WINDOW]:
                yield a, b


def near_matches(
    items: Sequence[tuple[str, int]],
    max_distance: int = NEAR_DISTANCE,
    confirm: Callable[[int, int], bool] | None = None,
) -> list[tuple[str, str, int]]:
    """Near-duplicates as ``(path, earlier path, distance)``, in the order of ``items``.

    ``items`` come oldest first: an image is only ever reported against an earlier one,
    so the first of a cluster stays unlisted and the fix can name the later copy. Each
    image gets the oldest earlier image within ``max_distance`` bits that
    ``confirm(earlier index, index)`` accepts (of at most ``MAX_CONFIRM`` tried), so every
    reported distance is within the limit (grouping by chains would put images 40 bits
    apart in one group through the ones between them). The oldest, not the closest: in a
    cluster of copies the closest one changes with a bit or two of decoding noise, the
    oldest does not.
    """
    values = sorted({value for _, value in items})
    neighbours: dict[int, set[int]] = defaultdict(set)
    for shift, mask in _bands(max_distance):
        for a, b in _candidate_pairs(values, shift, mask):
            if hamming(values[a], values[b]) <= max_distance:
                neighbours[values[a]].add(values[b])
                neighbours[values[b]].add(values[a])
    holders: dict[int, list[int]] = defaultdict(list)  # hash value -> indices, in order
    for index, (_, value) in enumerate(items):
        holders[value].append(index)
    found = []
    for index, (path, value) in enumerate(items):
        candidates: list[tuple[int, int]] = []
        for other in (value, *neighbours.get(value, ())):
            distance = hamming(value, other)
            for earlier in holders[other][:MAX_CONFIRM]:
                if earlier >= index:
                    break
                candidates.append((earlier, distance))
        for earlier, distance in heapq.nsmallest(MAX_CONFIRM, candidates):
            if confirm is None or confirm(earlier, index):
                found.append((path, items[earlier][0], distance))
                break
    return found
