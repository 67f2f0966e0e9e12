"""What the dataset audit can find: the closed set of problem ids and their severities.

Each id has one fixed severity and a short title, declared once here, so the JSON report,
the rich table and ``docs/dataset.md`` cannot disagree. The severity says what sd-scripts
would do with the dataset: ``error`` means training would crash or silently skip data,
``warning`` means it trains but probably not as the user meant, ``info`` is advice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

Severity = Literal["error", "warning", "info"]

SEVERITY_ORDER: Final[dict[Severity, int]] = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True, slots=True)
class ProblemKind:
    """The fixed part of a problem: its severity, a title for grouping, default G-ids."""

    severity: Severity
    title: str
    guide: tuple[str, ...] = ()


CATALOGUE: Final[dict[str, ProblemKind]] = {
    # errors: sd-scripts would crash, or skip images without saying so clearly
    "no-images": ProblemKind("error", "no training images", ("G-NEEDS-IMAGES",)),
    "bad-folder-name": ProblemKind(
        "error", "folder name is not <repeats>_<name>", ("G-START-EPOCHS",)
    ),
    "images-in-root": ProblemKind(
        "error", "images outside a <repeats>_<name> folder", ("G-START-EPOCHS",)
    ),
    "unreadable-folder": ProblemKind("error", "folder cannot be listed"),
    "unreadable-image": ProblemKind("error", "image cannot be read"),
    "truncated-image": ProblemKind("error", "image is truncated"),
    "decompression-bomb": ProblemKind("error", "image too large for Pillow to open"),
    "empty-caption": ProblemKind("error", "caption file is empty"),
    "caption-not-utf8": ProblemKind("error", "caption is not UTF-8"),
    "unreadable-caption": ProblemKind("error", "caption cannot be read"),
    # warnings: trains, but probably not as meant
    "missing-caption": ProblemKind("warning", "image has no caption", ("G-NEEDS-CAPTIONS",)),
    "blank-caption": ProblemKind("warning", "caption has no text", ("G-NEEDS-CAPTIONS",)),
    "caption-bom": ProblemKind("warning", "caption starts with a byte-order mark"),
    "long-caption": ProblemKind("warning", "caption file is far too long"),
    "duplicate-image": ProblemKind("warning", "exact duplicate image"),
    "wrong-extension": ProblemKind("warning", "extension does not match the content"),
    "ignored-extension": ProblemKind("warning", "image extension sd-scripts does not read"),
    "tiny-image": ProblemKind("warning", "image is small for the resolution", ("G-RES",)),
    "extreme-aspect": ProblemKind("warning", "extreme aspect ratio", ("G-RES",)),
    "huge-image": ProblemKind("warning", "image above Pillow's safe pixel limit"),
    "exif-rotated": ProblemKind("warning", "EXIF rotation is ignored by sd-scripts"),
    "empty-folder": ProblemKind("warning", "folder has no images"),
    "duplicate-folder": ProblemKind("warning", "same folder reached twice"),
    "too-few-images": ProblemKind("warning", "too few images for the subject", ("G-NEEDS-IMAGES",)),
    "broken-link": ProblemKind("warning", "broken symbolic link"),
    "bad-filename": ProblemKind("warning", "file name is not valid UTF-8"),
    # info: advice
    "too-many-images": ProblemKind(
        "info", "more images than the guide's range", ("G-NEEDS-IMAGES",)
    ),
    "near-duplicate": ProblemKind("info", "near-duplicate image"),
    "orphan-caption": ProblemKind("info", "caption without an image"),
    "multiline-caption": ProblemKind("info", "caption has several lines"),
    "no-captions": ProblemKind("info", "folder has no captions", ("G-EASY",)),
    "nested-folder": ProblemKind("info", "subfolder is not read"),
    "no-trigger": ProblemKind("info", "no trigger tag", ("G-NEEDS-CAPTIONS",)),
    "keep-tokens-vary": ProblemKind("info", "the kept leading tags vary"),
    "reg-unused": ProblemKind("info", "some regularization images are not used"),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: a stable ``id``, its ``severity``, the file, what is wrong, what to do.

    ``path`` is the file or folder as the user would type it (the scanned directory joined
    with the name inside it); ``guide`` lists the guide's G-ids that explain the advice.
    """

    id: str
    severity: Severity
    path: str
    message: str
    fix: str
    guide: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "severity": self.severity,
            "path": self.path,
            "message": self.message,
            "fix": self.fix,
            "guide": list(self.guide),
        }


def problem(
    problem_id: str, path: str, message: str, fix: str, guide: tuple[str, ...] = ()
) -> Problem:
    """Build a problem whose severity and default G-ids come from the catalogue.

    An unknown id is a programming error, so it raises ``KeyError`` instead of inventing a
    severity.
    """
    kind = CATALOGUE[problem_id]
    merged = tuple(dict.fromkeys((*kind.guide, *guide)))
    return Problem(problem_id, kind.severity, path, message, fix, merged)


def sort_key(item: Problem) -> tuple[int, str, str, str]:
    """Errors first, then by id and path, so reports are stable from run to run."""
    return (SEVERITY_ORDER[item.severity], item.id, item.path, item.message)


def display_path(path: str) -> str:
    """A path that prints on any terminal and stays on one line.

    File names on Linux are bytes; Python keeps undecodable bytes as lone surrogates, which
    a UTF-8 terminal or ``json.dumps(ensure_ascii=False)`` cannot encode. They become
    U+FFFD, and control characters (a newline in a name) become ``\\xNN``.
    """
    text = path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else f"\\x{ord(ch):02x}" for ch in text)


def is_valid_utf8_name(name: str) -> bool:
    """False when the name held bytes that are not UTF-8 (kept as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
