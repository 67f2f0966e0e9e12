"""Read a caption the way sd-scripts does, and split it into tags.

sd-scripts (``DreamBoothDataset.read_caption``) opens ``<image stem><caption_extension>`` as
UTF-8 text and trains with its first line, stripped. A 0-byte file fails an assertion and a
non-UTF-8 byte raises, so both stop training; a file whose first line is blank trains the
image with an empty caption; a missing file falls back to the folder's class token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

# A caption is a line of tags; anything this large is not one, and reading it whole would
# only cost memory. sd-scripts would still use its first line, and so does the audit.
MAX_CAPTION_BYTES: Final = 1024 * 1024
# Larger than this is reported (long-caption): CLIP reads at most 225 tokens (about 1 KB
# of tags), so a caption file this big is a wrong file or text meant for something else.
LONG_CAPTION_BYTES: Final = 64 * 1024
BOM: Final = "\ufeff"


@dataclass(frozen=True, slots=True)
class CaptionRead:
    """One caption file. ``text`` is the first line, stripped, as sd-scripts trains with it
    (None when the file is missing or unusable); ``failure`` is ``(problem id, detail)``."""

    exists: bool
    text: str | None
    failure: tuple[str, str] | None = None
    bom: bool = False
    extra_lines: int = 0
    size_bytes: int = 0


MISSING: Final = CaptionRead(exists=False, text=None)


def decode_caption(raw: bytes, *, cut: bool = False, size: int = 0) -> CaptionRead:
    """Judge a caption file's bytes as sd-scripts would read them. ``cut`` says the read
    stopped at ``MAX_CAPTION_BYTES``, possibly inside a multi-byte character; ``size`` is
    the file's size."""
    if not raw:
        return CaptionRead(True, None, ("empty-caption", "the file is empty (0 bytes)"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if cut and exc.end == len(raw) and exc.reason == "unexpected end of data":
            return decode_caption(raw[: exc.start], size=size)

        byte = raw[exc.start]
        detail = f"byte 0x{byte:02x} at offset {exc.start} is not UTF-8"
        return CaptionRead(True, None, ("caption-not-utf8", detail), size_bytes=size)
    bom = text.startswith(BOM)
    if bom:
        # sd-scripts reads with encoding="utf-8", which keeps the BOM glued to the first
        # tag; the audit strips it so the tag statistics show the tag the user meant.
        text = text[len(BOM) :]
    # Python's text mode (what sd-scripts reads with) turns \r\n and \r into \n.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    first = lines[0].strip()
    extra = sum(1 for line in lines[1:] if line.strip())
    return CaptionRead(True, first, None, bom, extra, size)


def read_caption(path: str) -> CaptionRead:
    """Read the caption at ``path``; never raises for a bad file."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CAPTION_BYTES)
            size = len(raw) if len(raw) < MAX_CAPTION_BYTES else os.fstat(handle.fileno()).st_size
    except FileNotFoundError:
        return MISSING
    except PermissionError:
        return CaptionRead(True, None, ("unreadable-caption", "permission denied"))
    except OSError as exc:
        detail = exc.strerror or type(exc).__name__
        return CaptionRead(True, None, ("unreadable-caption", detail))
    return decode_caption(raw, cut=len(raw) == MAX_CAPTION_BYTES, size=size)


def split_tags(caption: str) -> list[str]:
    """Tags as sd-scripts counts them for ``ss_tag_frequency``: split on commas, stripped,
    lower-cased, empty pieces dropped; a tag repeated in one caption counts each time."""
    return [tag.strip().lower() for tag in caption.split(",") if tag.strip()]


def leading_tags(caption: str, keep_tokens: int) -> tuple[str, ...]:
    """The ``keep_tokens`` first tags that ``shuffle_caption`` keeps in place.

    sd-scripts splits the stripped caption on commas and keeps the first ``keep_tokens``
    pieces as written (case kept, empty pieces included).
    """
    if keep_tokens < 1:
        return ()
    return tuple(tag.strip() for tag in caption.strip().split(","))[:keep_tokens]
