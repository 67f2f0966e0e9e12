"""Exact and near-duplicate matching, checked against brute force."""

from __future__ import annotations

import random

from tuilora.dataset.duplicates import NEAR_DISTANCE, exact_groups, near_matches
from tuilora.dataset.images import hamming


def test_exact_groups_keep_the_given_order() -> None:
    # items come oldest first: the first path of a group is the original
    items = [("b", b"1"), ("a", b"1"), ("c", b"2"), ("d", b"3"), ("f", b"3"), ("e", b"3")]
    assert exact_groups(items) == [["b", "a"], ["d", "f", "e"]]


def _flip(value: int, bits: int, rng: random.Random) -> int:
    for position in rng.sample(range(128), bits):
        value ^= 1 << position
    return value


def _brute_force(items: list[tuple[str, int]]) -> list[tuple[str, str, int]]:
    """Each image against the oldest earlier one within the distance (items: oldest first)."""
    found = []
    for index, (path, value) in enumerate(items):
        for other_path, other in items[:index]:
            if hamming(value, other) <= NEAR_DISTANCE:
                found.append((path, other_path, hamming(value, other)))
                break
    return found


def test_near_matches_equal_brute_force_on_random_hashes() -> None:
    rng = random.Random(11)
    items: list[tuple[str, int]] = []
    for index in range(400):
        base = rng.getrandbits(128)
        items.append((f"img{index:04d}a", base))
        if index % 4 == 0:  # a planted near copy, 0..12 bits away (some beyond the limit)
            items.append((f"img{index:04d}b", _flip(base, rng.randrange(13), rng)))
        if index % 25 == 0:  # and an identical hash from a different file
            items.append((f"img{index:04d}c", base))
    result = near_matches(items)
    assert result == _brute_force(items)
    assert len(result) > 50


def test_near_matches_reports_the_oldest_earlier_image_within_the_limit() -> None:
    a = 0
    b = (1 << 8) - 1  # 8 bits from a
    c = b | (1 << 100)  # 1 bit from b, 9 from a
    d = 1  # 1 bit from a, 7 from b
    items = [("a", a), ("b", b), ("c", c), ("d", d)]
    assert near_matches(items) == [("b", "a", 8), ("c", "b", 1), ("d", "a", 1)]
    # the order given is the age: the same hashes, newest first
    assert near_matches(items[::-1])[0] == ("c", "d", 8)


def test_near_matches_takes_the_oldest_candidate_the_confirmation_accepts() -> None:
    items = [("a", 0), ("b", 0), ("c", 1)]
    refused = {(0, 2)}  # c looks like a by hash only
    result = near_matches(items, confirm=lambda earlier, later: (earlier, later) not in refused)
    assert result == [("b", "a", 0), ("c", "b", 1)]


def test_near_matches_reports_a_cluster_of_flat_images() -> None:
    # 20,000 look-alike hashes (flat images: few bits set) would be 200 million pairs; the
    # time is measured in benchmarks/dataset_worst_cases.py, not asserted here
    rng = random.Random(5)
    items = [(f"flat{index:05d}", _flip(0, rng.randrange(6), rng)) for index in range(20_000)]
    result = near_matches(items)
    assert len(result) >= 19_000  # nearly all of them still get reported
