"""Find exact duplicates (same content hash) and near-duplicates (close perceptual hashes).

Near-duplicates are found without comparing every pair: two 128-bit hashes within
``NEAR_DISTANCE`` bits of each other agree exactly on at least one of ``NEAR_DISTANCE + 1``
disjoint bands (pigeonhole), so only hashes sharing a band value are compared (exact for
ordinary buckets; bounded and approximate in the huge buckets flat images make, see
``SMALL_BUCKET``). 50,000 images would otherwise be 1.25 billion comparisons.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Final

from tuilora.dataset.images import hamming

HASH_BITS: Final = 128
# At most this many of the 128 dHash bits may differ for two images to count as near
# duplicates: a re-encode or a resize of one picture moves a few bits; different pictures
# differ in about half of them. Measured on 40 photo-like images: a 50% resize, JPEG
# quality 60 or +10% brightness moved 0-9 bits, a 5% crop 8-38, other images 46-82.
NEAR_DISTANCE: Final = 8
# Band buckets up to this size are compared pair by pair. Larger ones come from many
# images sharing flat regions (all-zero bands); there every hash is compared with its
# WINDOW nearest neighbours in sorted order instead, which bounds the work at
# O(n · (SMALL_BUCKET + WINDOW)) per band; a match can be missed only inside such a
# cluster of look-alikes, where each image still finds its closest neighbours.
SMALL_BUCKET: Final = 32
WINDOW: Final = 8


def exact_groups(items: Sequence[tuple[str, bytes]]) -> list[list[str]]:
    """Paths with identical digests, each group sorted, groups ordered by their first path."""
    by_digest: dict[bytes, list[str]] = defaultdict(list)
    for path, digest in items:
        by_digest[digest].append(path)
    groups = [sorted(paths) for paths in by_digest.values() if len(paths) > 1]
    return sorted(groups)


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
    items: Sequence[tuple[str, int]], max_distance: int = NEAR_DISTANCE
) -> list[tuple[str, str, int]]:
    """Near-duplicates as ``(path, earlier path, distance)``, sorted by path.

    Every image that has a near match with a smaller path is listed once, with its
    closest such match (ties: the smaller path), so the first image of a cluster stays
    unlisted and every reported distance is within ``max_distance`` (grouping by chains
    would put images 40 bits apart in one group through the ones between them).
    """
    hashes = sorted({value for _, value in items})
    neighbours: dict[int, set[int]] = defaultdict(set)
    for shift, mask in _bands(max_distance):
        for a, b in _candidate_pairs(hashes, shift, mask):
            if hamming(hashes[a], hashes[b]) <= max_distance:
                neighbours[hashes[a]].add(hashes[b])
                neighbours[hashes[b]].add(hashes[a])
    first_path: dict[int, str] = {}
    for path, value in sorted(items):
        first_path.setdefault(value, path)
    found = []
    for path, value in sorted(items):
        best: tuple[int, str] | None = None
        for other in (value, *neighbours.get(value, ())):
            earlier = first_path[other]
            if earlier < path:
                candidate = (hamming(value, other), earlier)
                best = candidate if best is None else min(best, candidate)
        if best is not None:
            found.append((path, best[1], best[0]))
    return found
