"""Probe one image file: size, format, content hash, truncation, and a perceptual hash.

No full decode for the audit itself: ``headers.parse_header`` reads format and size from
the first bytes (Pillow's ``Image.open`` takes over for anything it does not recognise),
the content hash streams the bytes, and truncation is judged from the file's tail (a JPEG
must end its last scan with an EOI marker, a PNG must have its IEND chunk, a WebP or BMP
must be as long as its header says). The perceptual hash for near-duplicates is the one
part that decodes pixels: JPEG through ``draft()`` at up to 1/8 scale (cheap), PNG, WebP
and BMP in full (their codecs cannot decode at a reduced size). It is optional
(``near_duplicates``) and also catches corrupt image bodies that no header shows.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, replace
from typing import IO, Final

from PIL import Image, UnidentifiedImageError

from tuilora.dataset.headers import Header, parse_header

# sd-scripts' IMAGE_EXTENSIONS (library/train_util.py): these exact spellings only, since
# it globs case-sensitively; ".Png" or ".Jpg" is silently left out of training.
IMAGE_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP"}
)
# Image types people keep next to their images that sd-scripts (without extra plugins)
# does not read, so they are reported as ignored rather than passed over in silence.
OTHER_IMAGE_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {".gif", ".tif", ".tiff", ".avif", ".jxl", ".jfif", ".heic", ".heif", ".jpe"}
)
# The Pillow formats each extension promises; MPO is a multi-picture JPEG (phone cameras).
EXTENSION_FORMATS: Final[dict[str, frozenset[str]]] = {
    ".png": frozenset({"PNG"}),
    ".jpg": frozenset({"JPEG", "MPO"}),
    ".jpeg": frozenset({"JPEG", "MPO"}),
    ".webp": frozenset({"WEBP"}),
    ".bmp": frozenset({"BMP", "DIB"}),
}
FORMAT_EXTENSION: Final[dict[str, str]] = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "GIF": ".gif",
    "TIFF": ".tif",
}

# Files up to this size are read in one call and parsed from memory (one syscall, no
# seeks); larger ones are hashed in chunks so memory stays bounded per worker thread.
IN_MEMORY_LIMIT: Final = 8 * 1024 * 1024
CHUNK: Final = 1024 * 1024
TAIL: Final = 64 * 1024
# The thumbnail the perceptual hash is computed from: 9×9 gives 8×8 horizontal and 8×8
# vertical gradient bits (a 128-bit dHash). Decoding JPEG at >= 64 px lets draft() pick
# its 1/8 DCT scale for anything from 512 px up.
HASH_SIDE: Final = 9
DRAFT_SIDE: Final = 64
EXIF_ORIENTATION: Final = 0x0112

_PILLOW_FORMATS: Final = frozenset({"PNG", "JPEG", "WEBP", "BMP", "GIF"})
_JPEG_EOI: Final = b"\xff\xd9"
_JPEG_SOS: Final = b"\xff\xda"
_PNG_IEND: Final = b"\x00\x00\x00\x00IEND"


@dataclass(frozen=True, slots=True)
class ImageProbe:
    """What one image file told us. ``failure`` is ``(problem id, detail)`` when it cannot
    be used for training (unreadable, truncated, too large to open); sizes are then None
    unless the header was still readable."""

    size_bytes: int
    digest: bytes | None
    width: int | None
    height: int | None
    format: str | None
    orientation: int
    dhash: int | None
    failure: tuple[str, str] | None


def _failed(size: int, problem_id: str, detail: str, digest: bytes | None = None) -> ImageProbe:
    return ImageProbe(size, digest, None, None, None, 1, None, (problem_id, detail))


def _truncation(fmt: str | None, head: bytes, tail: bytes, size: int) -> str | None:
    """Why the file looks cut short, judged from its first and last bytes, or None."""
    if fmt in ("JPEG", "MPO"):
        if tail.rstrip(b"\x00\r\n\t ").endswith(_JPEG_EOI):
            return None
        # Data after the EOI (camera trailers) is harmless; an EOI before the last scan
        # starts belongs to the embedded EXIF thumbnail, not the image.
        if tail.rfind(_JPEG_EOI) > tail.rfind(_JPEG_SOS):
            return None
        return "the JPEG has no end-of-image marker"
    if fmt == "PNG":
        return None if _PNG_IEND in tail else "the PNG has no IEND chunk"
    if fmt == "WEBP" and len(head) >= 8:
        declared = int.from_bytes(head[4:8], "little") + 8
        return f"{size} of {declared} bytes present" if size < declared else None
    if fmt in ("BMP", "DIB") and len(head) >= 6:
        declared = int.from_bytes(head[2:6], "little")
        return f"{size} of {declared} bytes present" if 0 < size < declared else None
    return None


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
    ``high > low``. A Python loop over the pairs would hold the GIL ~20× longer, which
    stalls the other scan threads.
    """
    spread_high = bytearray(b"\x00\x02" * _LANES)
    spread_high[0::2] = high
    spread_low = bytearray(2 * _LANES)
    spread_low[0::2] = low
    diff = int.from_bytes(spread_high, "little") - int.from_bytes(spread_low, "little") - _ONES
    flags = ((diff >> 9) & _LOW_BITS).to_bytes(2 * _LANES, "little")[0::2]
    return int(flags.translate(_BIT_CHARS), 2)


def _dhash(image: Image.Image) -> int:
    """128-bit difference hash: left-right and top-bottom brightness gradients of a 9×9
    grey thumbnail (64 bits each). Resizing before the grey conversion converts 81 pixels
    instead of the whole image."""
    if image.mode not in ("L", "RGB", "RGBA", "LA"):
        image = image.convert("L")  # palette and 1-bit images resize only by nearest pixel
    px = image.resize((HASH_SIDE, HASH_SIDE), Image.Resampling.BOX).convert("L").tobytes()
    rows = range(0, HASH_SIDE * (HASH_SIDE - 1), HASH_SIDE)
    top_left = b"".join(px[at : at + 8] for at in rows)
    shifted_right = b"".join(px[at + 1 : at + 9] for at in rows)
    shifted_down = b"".join(px[at + HASH_SIDE : at + HASH_SIDE + 8] for at in rows)
    across = _greater_bits(shifted_right, top_left)
    down = _greater_bits(shifted_down, top_left)
    return (across << 64) | down


def _read(handle: IO[bytes], size: int) -> tuple[bytes, bytes, bytes]:
    """Return (the first bytes, up to all of them; the digest; the tail), streaming big
    files so that at most ``IN_MEMORY_LIMIT`` bytes are held."""
    data = handle.read(IN_MEMORY_LIMIT)
    digest = hashlib.blake2b(data, digest_size=16)
    if len(data) < IN_MEMORY_LIMIT or size <= IN_MEMORY_LIMIT:
        return data, digest.digest(), data[-TAIL:]
    last = data[-TAIL:]
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
        last = last[-TAIL:] + chunk
    return data, digest.digest(), last[-TAIL:]


def _pillow_error(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, Image.DecompressionBombError):
        return ("decompression-bomb", str(exc))
    if isinstance(exc, UnidentifiedImageError):
        return ("unreadable-image", "Pillow cannot identify it as an image")
    text = str(exc)
    problem_id = "truncated-image" if "truncated" in text.lower() else "unreadable-image"
    return (problem_id, f"{type(exc).__name__}: {text}")


def _pillow_header(source: str | IO[bytes]) -> Header | tuple[str, str]:
    """Ask Pillow for what ``parse_header`` was unsure of; a failure as (id, detail)."""
    try:
        with Image.open(source) as image:
            orientation = 1
            # getexif() on a PNG whose EXIF is not in the header decodes the whole image
            # to look for it after the pixels; only ask when the header carried EXIF.
            if "exif" in image.info:
                value = image.getexif().get(EXIF_ORIENTATION, 1)
                orientation = value if isinstance(value, int) and 1 <= value <= 8 else 1
            return Header(image.format or "?", image.width, image.height, orientation)
    # Pillow's parsers raise many types on hostile or damaged input (OSError, SyntaxError,
    # struct.error, ValueError, ...); each means the same to the user: it cannot be read.
    except Exception as exc:
        return _pillow_error(exc)


def _decode_hash(source: str | IO[bytes], fmt: str) -> int | None | tuple[str, str]:
    """The perceptual hash, None for a mode Pillow cannot grey, or a decode failure."""
    # Naming the format the header showed skips Pillow's trial of every plugin (half the
    # cost of opening a small file).
    formats = [fmt] if fmt in _PILLOW_FORMATS else None
    try:
        with Image.open(source, formats=formats) as image:
            # draft() must come before load(): it makes the JPEG decoder scale by 1/8 in
            # the DCT, so the pixels at full size are never produced (no-op elsewhere).
            image.draft("L", (DRAFT_SIDE, DRAFT_SIDE))
            image.load()
            try:
                return _dhash(image)
            except (ValueError, OSError):  # an exotic mode (e.g. I;16B) cannot become grey
                return None
    except Exception as exc:  # same reasoning as in _pillow_header
        return _pillow_error(exc)


def probe_image(path: str, *, near_duplicates: bool = True) -> ImageProbe:
    """Probe the image at ``path``; never raises for a bad file (it becomes ``failure``)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                return _failed(0, "unreadable-image", "the file is empty (0 bytes)")
            data, digest, tail = _read(handle, size)
    except PermissionError:
        return _failed(0, "unreadable-image", "permission denied")
    except OSError as exc:
        return _failed(0, "unreadable-image", exc.strerror or type(exc).__name__)

    def source() -> str | IO[bytes]:
        return io.BytesIO(data) if len(data) == size else path

    header = parse_header(data)
    if header is None:
        found = _pillow_header(source())
        if not isinstance(found, Header):
            return _failed(size, *found, digest=digest)
        header = found
    width, height, fmt = header.width, header.height, header.format
    known = ImageProbe(size, digest, width, height, fmt, header.orientation, None, None)
    if width < 1 or height < 1:
        return _failed(size, "unreadable-image", f"its header says {width}x{height} px", digest)
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > 2 * limit:
        # Pillow refuses these outright (DecompressionBombError), so training would too
        detail = f"{width}x{height} = {width * height:,} px, Pillow's limit is {2 * limit:,}"
        return _failed(size, "decompression-bomb", detail, digest)
    cut = _truncation(fmt, data[:TAIL], tail, size)
    if cut is not None:
        return replace(known, failure=("truncated-image", cut))
    if near_duplicates and (limit is None or width * height <= limit):
        hashed = _decode_hash(source(), fmt)
        if isinstance(hashed, tuple):
            return replace(known, failure=hashed)
        return replace(known, dhash=hashed)
    return known


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()
