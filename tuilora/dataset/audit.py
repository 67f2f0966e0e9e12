"""Turn probe results and dataset totals into problems with a message and a fix.

Thresholds the guide leaves open are the project's choices, recorded in ``docs/dataset.md``:
an image is tiny below half the training resolution on its short side (DESIGN §5), an
aspect ratio is extreme beyond 4:1 (the bucket range at 512 spans only 320×768, 2.4:1, so
anything past 4:1 loses well over a third of the picture to the crop), and the image-count
ranges are G-NEEDS-IMAGES's.
"""

from __future__ import annotations

import os
from typing import Final

from PIL import Image

from tuilora.dataset.captions import LONG_CAPTION_BYTES, CaptionRead
from tuilora.dataset.images import EXTENSION_FORMATS, FORMAT_EXTENSION, ImageProbe
from tuilora.dataset.model import Subject, TagReport
from tuilora.dataset.problems import Problem, display_path, problem
from tuilora.dataset.tags import TRIGGER_SHARE

MAX_ASPECT: Final = 4.0
# G-NEEDS-IMAGES (vehicles count like characters: DESIGN §3).
IMAGE_RANGES: Final[dict[Subject, tuple[int, int]]] = {
    "character": (10, 50),
    "vehicle": (10, 50),
    "style": (100, 4000),
    "concept": (50, 2000),
}
_ORIENTATION: Final[dict[int, str]] = {
    2: "mirrored",
    3: "upside down",
    4: "mirrored upside down",
    5: "sideways and mirrored",
    6: "sideways",
    7: "sideways and mirrored",
    8: "sideways",
}


def image_problems(shown: str, probe: ImageProbe, resolution: int) -> list[Problem]:
    """Problems of one image file, from its probe."""
    if probe.failure is not None:
        return [_failure(shown, *probe.failure)]  # nothing else matters until it loads
    found: list[Problem] = []
    if probe.width is None or probe.height is None:
        return found
    width, height = probe.width, probe.height
    stem, ext = os.path.splitext(shown)
    expected = EXTENSION_FORMATS.get(ext.lower(), frozenset())
    if probe.format is not None and probe.format not in expected:
        better = FORMAT_EXTENSION.get(probe.format)
        if better is not None and better in EXTENSION_FORMATS:
            fix = f"rename it to {stem}{better}"
        else:
            fix = "convert it to PNG or JPEG; sd-scripts decodes it, other tools trust the name"
        found.append(
            problem(
                "wrong-extension",
                shown,
                f"{shown} holds {probe.format} data but is named {ext}",
                fix,
            )
        )
    short, long = min(width, height), max(width, height)
    if short * 2 < resolution:
        found.append(
            problem(
                "tiny-image",
                shown,
                f"{shown} is {width}x{height}: its short side is under half the training "
                f"resolution ({resolution // 2} px), so training upscales it and learns blur",
                "use a larger version, upscale it with an upscaler model first, or remove it",
            )
        )
    if long > MAX_ASPECT * short:
        found.append(
            problem(
                "extreme-aspect",
                shown,
                f"{shown} is {width}x{height} ({long / short:.1f}:1); past 4:1 the widest "
                "bucket (about 2.4:1) crops off more than a third of it",
                "crop it into several pictures nearer to square, or remove it",
            )
        )
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        found.append(
            problem(
                "huge-image",
                shown,
                f"{shown} is {width}x{height} ({width * height / 1e6:.0f} MP), above Pillow's "
                f"{limit / 1e6:.0f} MP safety limit: slow to load and memory-hungry",
                "scale it down to about 2048 px on the long side",
            )
        )
    if probe.orientation in _ORIENTATION:
        how = _ORIENTATION[probe.orientation]
        found.append(
            problem(
                "exif-rotated",
                shown,
                f"{shown} is shown upright by viewers through its EXIF orientation, but "
                f"sd-scripts ignores that tag and trains it {how}",
                f"rotate the pixels and drop the tag (e.g. mogrify -auto-orient '{shown}')",
            )
        )
    return found


# Said of every image that cannot be loaded: what each trainer does with it, and that the
# counts leave it out.
NOT_COUNTED = "sd-scripts stops on it, tuilora train skips it; not counted"


def _failure(shown: str, problem_id: str, detail: str) -> Problem:
    if problem_id == "truncated-image":
        return problem(
            problem_id,
            shown,
            f"{shown} is cut short ({detail}); {NOT_COUNTED}",
            "re-download or re-export it, or delete it",
        )
    if problem_id == "decompression-bomb":
        return problem(
            problem_id,
            shown,
            f"{shown} has too many pixels for Pillow to open ({detail}); {NOT_COUNTED}",
            "scale it down to about 2048 px on the long side",
        )
    return problem(
        "unreadable-image",
        shown,
        f"{shown} cannot be read ({detail}); {NOT_COUNTED}",
        "replace it with a good copy or delete it",
    )


def caption_problems(
    image: str, caption: str, read: CaptionRead, *, class_tokens: str, folder_has_captions: bool
) -> list[Problem]:
    """Problems of one image's caption file (``caption`` is its display path)."""
    if not read.exists:
        if not folder_has_captions:
            return []  # reported once for the whole folder (no-captions)
        fallback = f"the class token '{class_tokens}'" if class_tokens else "an empty caption"
        return [
            problem(
                "missing-caption",
                image,
                f"{image} has no caption {caption}; it trains with {fallback} only",
                f"write its tags into {caption} (one line, comma-separated)",
            )
        ]
    if read.failure is not None:
        return [_caption_failure(image, caption, *read.failure)]
    found: list[Problem] = []
    if read.size_bytes > LONG_CAPTION_BYTES:
        found.append(
            problem(
                "long-caption",
                caption,
                f"{caption} is {read.size_bytes:,} bytes: a caption is one line of tags, and "
                "CLIP reads at most 225 tokens of it",
                f"check that it is the caption of {image}; keep one short line of tags",
            )
        )
    if not read.text:
        found.append(
            problem(
                "blank-caption",
                caption,
                f"{caption} has no text on its first line; {image} trains with an empty caption",
                "put the tags on the first line",
            )
        )
    if read.bom:
        found.append(
            problem(
                "caption-bom",
                caption,
                f"{caption} starts with a byte-order mark, which sd-scripts keeps glued to "
                "the first tag",
                "re-save it as UTF-8 without BOM (e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' FILE)",
            )
        )
    if read.extra_lines:
        found.append(
            problem(
                "multiline-caption",
                caption,
                f"{caption} has {read.extra_lines} more line(s) of text; sd-scripts trains "
                "with the first line only",
                "join the tags into one comma-separated line",
            )
        )
    return found


def _caption_failure(image: str, caption: str, problem_id: str, detail: str) -> Problem:
    if problem_id == "empty-caption":
        return problem(
            problem_id,
            caption,
            f"{caption} is empty; sd-scripts stops with 'caption file is empty'",
            f"write the tags of {image} into it, or delete it to train with the class token",
        )
    if problem_id == "caption-not-utf8":
        return problem(
            problem_id,
            caption,
            f"{caption} is not UTF-8 ({detail}); sd-scripts stops with a UnicodeDecodeError",
            f"re-save it as UTF-8 (e.g. iconv -f latin1 -t utf-8 '{caption}' > tmp.txt "
            f"&& mv tmp.txt '{caption}')",
        )
    return problem(
        "unreadable-caption",
        caption,
        f"{caption} cannot be read: {detail}",
        f"fix its permissions (chmod u+r '{caption}') or write it again",
    )


def no_captions_problem(folder: str, images: int, extension: str, class_tokens: str) -> Problem:
    token = f"the class token '{class_tokens}'" if class_tokens else "an empty caption"
    return problem(
        "no-captions",
        folder,
        f"{folder}: none of its {images} images has a {extension} caption; each trains "
        f"with {token} alone (keyword-only training)",
        "fine if meant; otherwise write booru tags per image with a tagger (one "
        f"{extension} file per image)",
        ("G-NEEDS-CAPTIONS",),
    )


def orphan_caption_problem(caption: str) -> Problem:
    return problem(
        "orphan-caption",
        caption,
        f"{caption} has no image with the same name, so nothing uses it",
        "rename it to match its image, or delete it",
    )


def count_problems(root: str, subject: Subject, images: int) -> list[Problem]:
    """Too few or too many training images for the subject (G-NEEDS-IMAGES)."""
    shown = display_path(root)
    if images == 0:
        return [
            problem(
                "no-images",
                shown,
                f"{shown}: no images to train on (sd-scripts stops with 'No data found')",
                f"put the images in a subfolder named <repeats>_<name>, e.g. "
                f"{display_path(os.path.join(root, '1_' + subject))}",
            )
        ]
    low, high = IMAGE_RANGES[subject]
    if images < low:
        if subject in ("character", "vehicle"):
            return [
                problem(
                    "too-few-images",
                    shown,
                    f"{shown}: {images} training image(s); the guide asks for {low}-{high} "
                    f"for a {subject}",
                    "add images; with fewer than 10 use the guide's rare-character plan: "
                    "train a quick model, generate and curate more images, retrain",
                    ("G-RARE", "G-RARE-GACHA"),
                )
            ]
        return [
            problem(
                "too-few-images",
                shown,
                f"{shown}: {images} training image(s); the guide asks for {low}-{high} "
                f"for a {subject}",
                f"collect at least {low} varied images",
            )
        ]
    if images > high:
        return [
            problem(
                "too-many-images",
                shown,
                f"{shown}: {images} training images, above the guide's {low}-{high} for a "
                f"{subject}",
                f"fine if they are varied and well tagged; otherwise keep the best {high}",
            )
        ]
    return []


def tag_problems(root: str, tags: TagReport) -> list[Problem]:
    """No trigger tag, or kept leading tags that differ between captions."""
    shown = display_path(root)
    found: list[Problem] = []
    share = f"{TRIGGER_SHARE:.0%}"
    if tags.captions >= 2 and not tags.trigger:
        found.append(
            problem(
                "no-trigger",
                shown,
                f"{shown}: no tag is in {share} of the {tags.captions} captions, so no "
                "prompt word reliably calls up the subject",
                "add one trigger tag (e.g. the subject's name) as the first tag of every "
                "caption, with keep_tokens=1",
            )
        )
    if tags.keep_tokens > 0 and tags.captions >= 2 and tags.leading:
        top = tags.leading[0]
        if top.images < TRIGGER_SHARE * tags.captions:
            words = ", ".join(top.tags)
            found.append(
                problem(
                    "keep-tokens-vary",
                    shown,
                    f"{shown}: keep_tokens={tags.keep_tokens} pins the first tag(s) in "
                    f"place, but they are '{words}' in only {top.images} of "
                    f"{tags.captions} captions",
                    "start every caption with the same trigger tag(s), or use keep_tokens=0",
                )
            )
    return found


def reg_problems(reg_root: str, reg_x_repeats: int, train_x_repeats: int) -> list[Problem]:
    """sd-scripts uses only as many regularization images as training images (× repeats)."""
    if train_x_repeats == 0 or reg_x_repeats <= train_x_repeats:
        return []
    shown = display_path(reg_root)
    return [
        problem(
            "reg-unused",
            shown,
            f"{shown}: {reg_x_repeats} regularization images × repeats for "
            f"{train_x_repeats} training images × repeats; sd-scripts uses only "
            f"{train_x_repeats} of them per epoch",
            "fine; or remove the extra ones to save time caching them",
        )
    ]


def duplicate_problem(copy: str, original: str) -> Problem:
    return problem(
        "duplicate-image",
        copy,
        f"{copy} is a byte-for-byte copy of {original}",
        f"delete {copy}, the later copy: it trains that picture twice as often",
    )


def near_duplicate_problem(later: str, earlier: str) -> Problem:
    return problem(
        "near-duplicate",
        later,
        f"{later} looks almost the same as {earlier} (resized, re-compressed or retouched)",
        f"keep both only if they differ in a way the model should learn; otherwise delete "
        f"{later}, the later one (variety beats copies)",
    )
