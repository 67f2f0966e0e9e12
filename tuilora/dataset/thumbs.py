"""The fingerprint of a picture for near-duplicates: a 9×9 colour thumbnail and its dHash.

Two steps find near-duplicates (``duplicates.near_matches``): the 128-bit difference hash
(left-right and top-bottom brightness gradients of the grey 9×9 thumbnail) finds
candidates fast, and the colour thumbnails confirm them (``colour_distance``). The hash
alone calls many different pictures alike: on the 10,000 generated images of
``benchmarks/dataset_scan.py`` (flat shapes on flat backgrounds) 1,273 pairs of different
pictures came within 8 bits, and such borderline pairs flip with any change in decoding.
The colour check puts them at 19 levels or more apart (of 255), while resized,
re-compressed, slightly brightened or 5 %-cropped copies stay within 9.

Decoding is the costly part. JPEG is decoded at reduced size through Pillow's ``draft()``
(libjpeg scales by 1/2, 1/4 or 1/8 inside the DCT, so the full-size pixels are never
produced); PNG, WebP and BMP have no reduced decode, so they are decoded in full and boxed
straight down to 9×9. (``resize(reducing_gap=...)``, which sums whole blocks with
``reduce()`` first, made the thumbnail cheaper but changed it differently for a JPEG
decoded at reduced size and one decoded in full: 6 of 154 near-duplicates of the
benchmark differed.) In colour (``draft("RGB")``) rather than grey the
JPEG thumbnails stay within a few levels of a full decode, which keeps the near-duplicate
results equal to full decoding (tests/dataset/test_dataset_thumbs.py,
``benchmarks/dataset_scan.py``).
"""

from __future__ import annotations

from operator import sub
from typing import IO, Final, NamedTuple

from PIL import Image, UnidentifiedImageError

HASH_SIDE: Final = 9
THUMB_BYTES: Final = HASH_SIDE * HASH_SIDE * 3
# JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps at least this many
# pixels a side, so each thumbnail cell still averages over 14 pixels or more. At 64 the
# near-duplicates of the benchmark's 10,000 images differed from a full decode's in 1 or
# 2 of about 190; at 128 in none.
DRAFT_SIDE: Final = 128

_PILLOW_FORMATS: Final = frozenset({"PNG", "JPEG", "WEBP", "BMP", "GIF"})
_BOXABLE_MODES: Final = frozenset({"RGB", "RGBA", "L", "LA"})

# Constants for _greater_bits: 64 lanes of 16 bits, each lane holding one byte.
_LANES: Final = 64
_ONES: Final = int.from_bytes(b"\x01\x00" * _LANES, "little")
_LOW_BITS: Final = _ONES
_BIT_CHARS: Final = bytes.maketrans(b"\x00\x01", b"01")


def _greater_bits(high: bytes, low: bytes) -> int:
    """A 64-bit mask whose bit i says ``high[i] > low[i]``, for 64-byte inputs.

    Works on all 64 pairs at once with big-integer arithmetic (every step runs in C): each
    byte sits in its own 16-bit lane, offset by 512 so that ``512 + high - low - 1``
    never borrows from the next lane, and bit 9 of a lane is set exactly when
    ``high > low``. A Python loop over the pairs would be ~20× slower.
    """
    spread_high = bytearray(b"\x00\x02" * _LANES)
    spread_high[0::2] = high
    spread_low = bytearray(2 * _LANES)
    spread_low[0::2] = low
    diff = int.from_bytes(spread_high, "little") - int.from_bytes(spread_low, "little") - _ONES
    flags = ((diff >> 9) & _LOW_BITS).to_bytes(2 * _LANES, "little")[0::2]
    return int(flags.translate(_BIT_CHARS), 2)


class Fingerprint(NamedTuple):
    """A picture's 9×9 RGB thumbnail (243 bytes) and the dHash of its grey version."""

    thumb: bytes
    dhash: int


def fingerprint(image: Image.Image) -> Fingerprint:
    """The thumbnail (box filter over the whole picture) and its dHash.

    Raises ``ValueError`` or ``OSError`` for a mode Pillow cannot turn into colour.
    """
    if image.mode not in _BOXABLE_MODES:
        # palette and 1-bit images resize only by nearest pixel; the others have no box filter
        wanted = "RGBA" if "transparency" in image.info or "A" in image.mode else "RGB"
        image = image.convert(wanted)
    small = image.resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX)
    rgb = small if small.mode == "RGB" else small.convert("RGB")
    return Fingerprint(rgb.tobytes(), grey_dhash(small.convert("L").tobytes()))


def thumbnail(image: Image.Image) -> bytes:
    """The 9×9 RGB thumbnail of ``image`` (see ``fingerprint``)."""
    return fingerprint(image).thumb


def dhash(thumb: bytes) -> int:
    """The dHash of a 9×9 RGB thumbnail."""
    grey = Image.frombytes("RGB", (HASH_SIDE, HASH_SIDE), thumb).convert("L").tobytes()
    return grey_dhash(grey)


def grey_dhash(grey: bytes) -> int:
    """128-bit difference hash of a 9×9 grey thumbnail: bit set where the value grows to
    the right (64 bits) or downwards (64 bits)."""
    rows = range(0, HASH_SIDE * (HASH_SIDE - 1), HASH_SIDE)
    top_left = b"".join(grey[at : at + 8] for at in rows)
    shifted_right = b"".join(grey[at + 1 : at + 9] for at in rows)
    shifted_down = b"".join(grey[at + HASH_SIDE : at + HASH_SIDE + 8] for at in rows)
    across = _greater_bits(shifted_right, top_left)
    down = _greater_bits(shifted_down, top_left)
    return (across << 64) | down


def colour_distance(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two thumbnails (0..255) once their average brightness
    difference is taken out, so a brightened copy stays close and a different picture in
    other colours does not."""
    diffs: list[int] = list(map(sub, a, b))
    offset = sum(diffs) / len(diffs)
    return float(sum(abs(value - offset) for value in diffs) / len(diffs))


def pillow_error(exc: Exception) -> tuple[str, str]:
    """A Pillow failure as (problem id, one-line detail)."""
    if isinstance(exc, Image.DecompressionBombError):
        return ("decompression-bomb", str(exc))
    if isinstance(exc, UnidentifiedImageError):
        return ("unreadable-image", "Pillow cannot identify it as an image")
    text = " ".join(str(exc).split())
    problem_id = "truncated-image" if "truncated" in text.lower() else "unreadable-image"
    return (problem_id, f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def decode_fingerprint(source: str | IO[bytes], fmt: str) -> Fingerprint | None | tuple[str, str]:
    """Decode the picture and return its fingerprint, None for a mode that has no colour
    form, or a decode failure as (problem id, detail)."""
    # Naming the format the header showed skips Pillow's trial of every plugin.
    formats = [fmt] if fmt in _PILLOW_FORMATS else None
    try:
        with Image.open(source, formats=formats) as image:
            # draft() must come before load(): the JPEG decoder then scales in the DCT
            # (a no-op for other formats)
            image.draft("RGB", (DRAFT_SIDE, DRAFT_SIDE))
            image.load()
            try:
                return fingerprint(image)
            except (ValueError, OSError):  # an exotic mode (e.g. I;16B) has no colour form
                return None
    # Pillow's decoders raise many types on hostile or damaged input (OSError, SyntaxError,
    # struct.error, ValueError, ...); each means the same to the user: it cannot be read.
    except Exception as exc:
        return pillow_error(exc)


def full_decode_thumbnail(path: str) -> bytes | None:
    """The thumbnail from a full-size decode: the reference the reduced decode is held to."""
    with Image.open(path) as image:
        image.load()
        try:
            return thumbnail(image)
        except (ValueError, OSError):
            return None
