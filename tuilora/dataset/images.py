"""Probe one image file: size, format, content hash, truncation, and its thumbnail.

No full decode for the audit itself: ``headers.parse_header`` reads format and size from
the first bytes (Pillow's ``Image.open`` takes over for anything it does not recognise),
the content hash streams the bytes, and truncation is judged from the file's tail (a JPEG
must end its last scan with an EOI marker, a PNG must have its IEND chunk, a WebP or BMP
must be as long as its header says). The pixel pass (``near_duplicates``) decodes the
picture once, at reduced size where the format allows (``thumbs``): it yields the thumbnail
for near-duplicates and catches corrupt image bodies that no header shows.

A probe made earlier (``cached``, from ``probecache``) is reused when the file's size and
modification time are unchanged and its first bytes still show the same header: the file
is then opened and its head read, nothing more.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import IO, Final

from PIL import Image

from tuilora.dataset.headers import Header, parse_header
from tuilora.dataset.thumbs import Fingerprint, decode_fingerprint, pillow_error

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
# seeks); larger ones are hashed in chunks so memory stays bounded per worker.
IN_MEMORY_LIMIT: Final = 8 * 1024 * 1024
CHUNK: Final = 1024 * 1024
TAIL: Final = 64 * 1024
EXIF_ORIENTATION: Final = 0x0112

_JPEG_EOI: Final = b"\xff\xd9"
_JPEG_SOS: Final = b"\xff\xda"
_PNG_IEND: Final = b"\x00\x00\x00\x00IEND"
# Samples per pixel of each PNG colour type (grey, RGB, palette, grey+alpha, RGBA).
_PNG_CHANNELS: Final[dict[int, int]] = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ZLIB_MAX_RATIO: Final = 1032


@dataclass(frozen=True, slots=True)
class ImageProbe:
    """What one image file told us. ``failure`` is ``(problem id, detail)`` when it cannot
    be used for training (unreadable, truncated, too large to open); sizes are then None
    unless the header was still readable. ``pixels_checked`` says the pixel pass ran (or
    was deliberately skipped for a picture too large to decode); ``thumb`` and ``dhash``
    are its result. ``mtime_ns`` and ``size_bytes`` key the probe cache (0: not cacheable)."""

    size_bytes: int
    digest: bytes | None
    width: int | None
    height: int | None
    format: str | None
    orientation: int
    dhash: int | None
    failure: tuple[str, str] | None
    mtime_ns: int = 0
    pixels_checked: bool = False
    thumb: bytes | None = None


def _failed(
    size: int, problem_id: str, detail: str, digest: bytes | None = None, mtime_ns: int = 0
) -> ImageProbe:
    """A file that cannot be trained: final, so the pixel pass counts as done."""
    failure = (problem_id, detail)
    return ImageProbe(size, digest, None, None, None, 1, None, failure, mtime_ns, True)


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
        if _PNG_IEND not in tail:
            return "the PNG has no IEND chunk"
        return _png_too_small(head, size)
    if fmt == "WEBP" and len(head) >= 8:
        declared = int.from_bytes(head[4:8], "little") + 8
        return f"{size} of {declared} bytes present" if size < declared else None
    if fmt in ("BMP", "DIB") and len(head) >= 6:
        declared = int.from_bytes(head[2:6], "little")
        return f"{size} of {declared} bytes present" if 0 < size < declared else None
    return None


def _png_too_small(head: bytes, size: int) -> str | None:
    """Why a PNG cannot hold the picture its header declares, or None.

    zlib packs at most 1032 bytes into one, so a file much smaller than the raw rows
    divided by that holds a lying or cut header (e.g. 50,000 px wide in 100 bytes). This
    is what keeps a hostile header from making the decoder allocate the declared picture.
    """
    if len(head) < 26:
        return None
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    channels = _PNG_CHANNELS.get(head[25], 4)
    row_bytes = 1 + (width * channels * head[24] + 7) // 8
    least = height * row_bytes // _ZLIB_MAX_RATIO
    if size >= least:
        return None
    return f"{size:,} bytes cannot hold a {width}x{height} PNG (at least {least:,} needed)"


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
        return pillow_error(exc)


def _still_valid(handle: IO[bytes], cached: ImageProbe) -> bool:
    """True when the file's head still shows the header the cached probe recorded."""
    header = parse_header(handle.read(TAIL))
    if header is None:
        return True  # a file only Pillow could parse: size and mtime must do
    return (header.format, header.width, header.height, header.orientation) == (
        cached.format,
        cached.width,
        cached.height,
        cached.orientation,
    )


def probe_image(
    path: str, *, near_duplicates: bool = True, cached: ImageProbe | None = None
) -> ImageProbe:
    """Probe the image at ``path``; never raises for a bad file (it becomes ``failure``).

    ``cached`` is an earlier probe of the same path: it is returned as is when the file
    has the same size and modification time, its head still shows the same header, and
    it covers what is asked (the pixel pass when ``near_duplicates``).
    """
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            size, mtime = stat.st_size, stat.st_mtime_ns
            if (
                cached is not None
                and (cached.size_bytes, cached.mtime_ns) == (size, mtime)
                and (cached.pixels_checked or not near_duplicates)
                and _still_valid(handle, cached)
            ):
                return cached
            if size == 0:
                return _failed(0, "unreadable-image", "the file is empty (0 bytes)", None, mtime)
            handle.seek(0)
            data, digest, tail = _read(handle, size)
    except PermissionError:
        return _failed(0, "unreadable-image", "permission denied")
    except OSError as exc:
        return _failed(0, "unreadable-image", exc.strerror or type(exc).__name__)
    return _probe_bytes(path, data, digest, tail, size, mtime, near_duplicates)


def _probe_bytes(
    path: str,
    data: bytes,
    digest: bytes,
    tail: bytes,
    size: int,
    mtime: int,
    near_duplicates: bool,
) -> ImageProbe:
    def source() -> str | IO[bytes]:
        return io.BytesIO(data) if len(data) == size else path

    header = parse_header(data)
    if header is None:
        found = _pillow_header(source())
        if not isinstance(found, Header):
            return _failed(size, *found, digest=digest, mtime_ns=mtime)
        header = found
    width, height, fmt = header.width, header.height, header.format
    orientation = header.orientation
    if width < 1 or height < 1:
        detail = f"its header says {width}x{height} px"
        return _failed(size, "unreadable-image", detail, digest, mtime)
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > 2 * limit:
        # Pillow refuses these outright (DecompressionBombError), so training would too;
        # nothing is decoded, so a lying header costs no memory
        detail = f"{width}x{height} = {width * height:,} px, Pillow's limit is {2 * limit:,}"
        return _failed(size, "decompression-bomb", detail, digest, mtime)
    cut = _truncation(fmt, data[:TAIL], tail, size)
    if cut is not None:
        cut_short = ("truncated-image", cut)
        return ImageProbe(
            size, digest, width, height, fmt, orientation, None, cut_short, mtime, True
        )
    if not near_duplicates:
        return ImageProbe(size, digest, width, height, fmt, orientation, None, None, mtime)
    if limit is not None and width * height > limit:  # huge: not decoded for a thumbnail
        return ImageProbe(size, digest, width, height, fmt, orientation, None, None, mtime, True)
    decoded = decode_fingerprint(source(), fmt)
    dhash: int | None = None
    thumb: bytes | None = None
    failure: tuple[str, str] | None = None
    if isinstance(decoded, Fingerprint):
        dhash, thumb = decoded.dhash, decoded.thumb
    else:
        failure = decoded
    return ImageProbe(
        size, digest, width, height, fmt, orientation, dhash, failure, mtime, True, thumb
    )


def training_size(path: str) -> tuple[int, int] | str:
    """The (width, height) of an image that training can load, or why it cannot (one
    line): the audit's own verdict, so training skips exactly the images the audit does
    not count."""
    probe = probe_image(path, near_duplicates=True)
    if probe.failure is not None:
        return probe.failure[1]
    if probe.width is None or probe.height is None:
        return "its size cannot be read"
    return (probe.width, probe.height)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()
