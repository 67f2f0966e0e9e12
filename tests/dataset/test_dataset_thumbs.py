"""Thumbnails and near-duplicates: copies found, different pictures not, and the reduced-size
decoding finds exactly what a full decode finds."""

from __future__ import annotations

import importlib.util
import io
import random
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image, ImageEnhance

from tuilora.dataset import thumbs
from tuilora.dataset.duplicates import NEAR_COLOUR, NEAR_DISTANCE, near_matches
from tuilora.dataset.images import hamming, probe_image
from tuilora.dataset.model import DatasetReport
from tuilora.dataset.scan import scan_dataset

Draw = Callable[..., Image.Image]
BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "dataset_scan.py"


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dataset_scan_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reencode(image: Image.Image, fmt: str, **params: Any) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    buffer.seek(0)
    decoded = Image.open(buffer)
    decoded.load()
    return decoded


def test_copies_are_close_and_other_pictures_far(draw: Draw) -> None:
    original = draw((640, 512), 7)
    base = thumbs.thumbnail(original)
    copies = [
        original.resize((320, 256), Image.Resampling.LANCZOS),
        _reencode(original, "JPEG", quality=60),
        ImageEnhance.Brightness(original).enhance(1.1),
    ]
    for copy in copies:
        thumb = thumbs.thumbnail(copy)
        assert hamming(thumbs.dhash(base), thumbs.dhash(thumb)) <= NEAR_DISTANCE
        assert thumbs.colour_distance(base, thumb) <= NEAR_COLOUR
    for seed in range(100, 110):
        other = thumbs.thumbnail(draw((640, 512), seed))
        assert hamming(thumbs.dhash(base), thumbs.dhash(other)) > 16
        assert thumbs.colour_distance(base, other) > NEAR_COLOUR


def test_same_shapes_in_other_colours_are_not_near_duplicates() -> None:
    """The hash sees only brightness gradients; the colours confirm a match."""
    first = Image.new("RGB", (256, 256), (200, 30, 30))
    second = Image.new("RGB", (256, 256), (30, 30, 200))
    for image, colour in ((first, (30, 200, 30)), (second, (200, 200, 30))):
        image.paste(colour, (64, 64, 192, 192))
    a, b = thumbs.thumbnail(first), thumbs.thumbnail(second)
    assert hamming(thumbs.dhash(a), thumbs.dhash(b)) <= NEAR_DISTANCE
    assert thumbs.colour_distance(a, b) > NEAR_COLOUR
    assert near_matches([("a", thumbs.dhash(a)), ("b", thumbs.dhash(b))], confirm=None)
    assert not near_matches(
        [("a", thumbs.dhash(a)), ("b", thumbs.dhash(b))], confirm=lambda i, j: False
    )


def test_greater_bits_matches_a_plain_loop() -> None:
    rng = random.Random(3)
    for _ in range(300):
        low = bytes(rng.randrange(256) for _ in range(64))
        high = bytes(rng.choice([rng.randrange(256), 0, 255, low[i]]) for i in range(64))
        expected = int("".join("1" if h > lo else "0" for h, lo in zip(high, low, strict=True)), 2)
        assert thumbs._greater_bits(high, low) == expected


@pytest.mark.parametrize(
    ("mode", "fmt"), [("P", "PNG"), ("1", "PNG"), ("LA", "PNG"), ("CMYK", "JPEG"), ("I;16", "PNG")]
)
def test_every_mode_gets_a_thumbnail_or_none(
    tmp_path: Path, draw: Draw, mode: str, fmt: str
) -> None:
    path = tmp_path / f"x.{fmt.lower()}"
    draw((96, 64), 1).convert(mode).save(path, fmt)
    probe = probe_image(str(path))
    assert probe.failure is None and probe.pixels_checked
    assert probe.thumb is None or len(probe.thumb) == thumbs.THUMB_BYTES


def _near(report: DatasetReport) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in report.problems if p.id == "near-duplicate"]


def test_reduced_decoding_finds_what_full_decoding_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benchmark's own images (flat shapes: hard on the hash) with its planted copies.
    JPEG is decoded at reduced size through draft(); the reference decodes it at full
    size. Both must report the same near-duplicates."""
    root = _benchmark().ensure_dataset(tmp_path / "bench", 400)
    reduced = _near(scan_dataset(str(root), workers=1, use_cache=False))
    monkeypatch.setattr(thumbs, "DRAFT_SIDE", 1 << 30)  # draft() then keeps the full size
    full = _near(scan_dataset(str(root), workers=1, use_cache=False))
    assert reduced == full
    found = [int(Path(path).stem[3:]) for path, _ in reduced]
    # images 49, 99, ... are copies of earlier ones: 8 planted; the one reported is always
    # the later file (a copy of a copy may be matched to either)
    assert len(found) >= 6
    assert all(index % 50 == 49 for index in found)


def test_full_decode_reference_matches_the_reduced_thumbnail_closely(
    tmp_path: Path, draw: Draw
) -> None:
    path = tmp_path / "big.jpg"
    draw((1024, 768), 5).save(path, quality=90)
    probe = probe_image(str(path))
    reference = thumbs.full_decode_thumbnail(str(path))
    assert probe.thumb is not None and reference is not None
    assert thumbs.colour_distance(probe.thumb, reference) < 2.0
