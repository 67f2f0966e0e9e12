"""Build the report from the probes: per-file problems, counts, buckets, tags, duplicates.

Counts are the images sd-scripts trains and tuilora's engine loads: readable images in
``<repeats>_<name>`` folders. Images in a folder sd-scripts skips, and images that cannot
be loaded, get their problems like any other file but count nowhere (docs/dataset.md,
"Counting").
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from tuilora.dataset import audit
from tuilora.dataset.buckets import BucketPlan
from tuilora.dataset.captions import CaptionRead
from tuilora.dataset.duplicates import NEAR_COLOUR, exact_groups, near_matches
from tuilora.dataset.images import ImageProbe
from tuilora.dataset.layout import Folder
from tuilora.dataset.model import (
    BucketCount,
    DatasetReport,
    FolderReport,
    ImageRecord,
    ScanSettings,
)
from tuilora.dataset.problems import Problem, display_path, problem, sort_key
from tuilora.dataset.tags import CaptionUse, tag_report
from tuilora.dataset.thumbs import colour_distance


@dataclass(frozen=True, slots=True)
class Probed:
    """One image of the scan: its folder, whether sd-scripts trains that folder, and
    what probing the file and its caption found."""

    folder: Folder
    trained: bool
    name: str
    probe: ImageProbe
    caption: CaptionRead


def assemble(
    path: str,
    reg_dir: str | None,
    settings: ScanSettings,
    folders: Sequence[tuple[Folder, bool]],
    images: Sequence[Probed],
    problems: list[Problem],
) -> DatasetReport:
    """The report of a scan. ``folders`` are (folder, trained) in report order, ``images``
    their images in the same order."""
    plan = BucketPlan(
        (settings.resolution, settings.resolution),
        settings.min_bucket_reso,
        settings.max_bucket_reso,
        settings.bucket_reso_steps,
        settings.bucket_no_upscale,
    )
    has_captions = {id(item.folder) for item in images if item.caption.exists}
    by_folder: dict[int, list[Probed]] = {}
    for item in images:
        by_folder.setdefault(id(item.folder), []).append(item)
    records: list[ImageRecord] = []
    reports: list[FolderReport] = []
    skipped: list[FolderReport] = []
    buckets: Counter[tuple[int, int]] = Counter()
    weighted: Counter[tuple[int, int]] = Counter()
    for folder, trained in folders:
        usable = captioned = 0
        for item in by_folder.get(id(folder), []):
            record = _record(item, settings, plan, id(folder) in has_captions, problems)
            records.append(record)
            if not record.usable:
                continue
            usable += 1
            captioned += bool(item.caption.exists and item.caption.text)
            if trained and not folder.is_reg and record.bucket is not None:
                buckets[record.bucket] += 1
                weighted[record.bucket] += folder.repeats
        problems.extend(
            _folder_problems(folder, settings.caption_extension, id(folder) in has_captions)
        )
        report = FolderReport(
            display_path(folder.name),
            folder.display,
            folder.repeats,
            folder.class_tokens,
            folder.is_reg,
            usable,
            captioned,
            len(folder.images) - usable + len(folder.not_files),
        )
        (reports if trained else skipped).append(report)
    problems.extend(duplicate_problems(records, images, settings.near_duplicates))
    uses = [
        CaptionUse(r.folder, r.repeats, r.is_reg, r.caption)
        for r in records
        if r.usable and r.trained
    ]
    names = (display_path(folder.name) for folder, trained in folders if trained)
    tags = tag_report(uses, settings.keep_tokens, names)
    train = [report for report in reports if not report.is_reg]
    total = sum(report.images for report in train)
    if total or not any(p.id in ("images-in-root", "bad-folder-name") for p in problems):
        problems.extend(audit.count_problems(path, settings.subject, total))
    problems.extend(audit.tag_problems(path, tags))
    if reg_dir is not None:
        reg_x = sum(report.images_x_repeats for report in reports if report.is_reg)
        train_x = sum(report.images_x_repeats for report in train)
        problems.extend(audit.reg_problems(reg_dir, reg_x, train_x))
    histogram = tuple(
        BucketCount(width, height, buckets[(width, height)], weighted[(width, height)])
        for width, height in sorted(buckets)
    )
    return DatasetReport(
        display_path(path),
        None if reg_dir is None else display_path(reg_dir),
        settings,
        tuple(reports),
        tuple(records),
        histogram,
        tags,
        tuple(sorted(problems, key=sort_key)),
        tuple(skipped),
    )


def _record(
    item: Probed,
    settings: ScanSettings,
    plan: BucketPlan,
    folder_has_captions: bool,
    problems: list[Problem],
) -> ImageRecord:
    """The image's record; its problems go to ``problems``."""
    folder, probe, cap = item.folder, item.probe, item.caption
    stem = os.path.splitext(item.name)[0]
    shown = display_path(os.path.join(folder.display, item.name))
    shown_cap = display_path(os.path.join(folder.display, stem + settings.caption_extension))
    problems.extend(audit.image_problems(shown, probe, settings.resolution))
    usable = probe.failure is None and probe.width is not None and probe.height is not None
    if usable or cap.exists:
        # a missing caption matters little next to an image that cannot be read
        problems.extend(
            audit.caption_problems(
                shown,
                shown_cap,
                cap,
                class_tokens=folder.class_tokens,
                folder_has_captions=folder_has_captions,
            )
        )
    bucket = None
    if usable and probe.width is not None and probe.height is not None:
        bucket = plan.choose(probe.width, probe.height).reso
    return ImageRecord(
        shown,
        display_path(folder.name),
        folder.is_reg,
        folder.repeats,
        probe.width,
        probe.height,
        probe.format,
        bucket,
        folder.class_tokens if not cap.exists else cap.text,
        cap.exists,
        usable,
        item.trained,
    )


def _folder_problems(folder: Folder, ext: str, has_captions: bool) -> list[Problem]:
    found: list[Problem] = []
    if not folder.images:
        found.append(
            problem(
                "empty-folder",
                folder.display,
                f"{folder.display} has no .png/.jpg/.jpeg/.webp/.bmp images; sd-scripts skips it",
                "add the images or remove the folder",
            )
        )
    elif not has_captions and not folder.is_reg:
        found.append(
            audit.no_captions_problem(folder.display, len(folder.images), ext, folder.class_tokens)
        )
    stems = {os.path.splitext(name)[0] for name in folder.images}
    for name in sorted(folder.captions):
        if name[: len(name) - len(ext)] not in stems:
            found.append(
                audit.orphan_caption_problem(display_path(os.path.join(folder.display, name)))
            )
    return found


def duplicate_problems(
    records: Sequence[ImageRecord], images: Sequence[Probed], near_duplicates: bool
) -> list[Problem]:
    """Exact copies (same bytes) and, with ``near_duplicates``, look-alikes. Of two files
    the later one is the copy: newer modification time, then the longer name ("x (1).png",
    "copy of x.png"), then the path; the fix names it, never the original."""
    order = sorted(
        (
            (item.probe.mtime_ns, len(item.name), record.path, index)
            for index, (record, item) in enumerate(zip(records, images, strict=True))
            if record.usable
        ),
    )
    usable = [index for *_, index in order]
    found: list[Problem] = []
    digests = [
        (records[i].path, digest) for i in usable if (digest := images[i].probe.digest) is not None
    ]
    copies: set[str] = set()
    for group in exact_groups(digests):
        first = group[0]
        for other in group[1:]:
            copies.add(other)
            found.append(audit.duplicate_problem(other, first))
    if not near_duplicates:
        return found
    looks = [
        i
        for i in usable
        if images[i].probe.dhash is not None
        and images[i].probe.thumb is not None
        and records[i].path not in copies
    ]
    thumbs = [images[i].probe.thumb or b"" for i in looks]

    def same_colours(earlier: int, later: int) -> bool:
        return colour_distance(thumbs[earlier], thumbs[later]) <= NEAR_COLOUR

    hashes = [(records[i].path, images[i].probe.dhash or 0) for i in looks]
    for other, first, _ in near_matches(hashes, confirm=same_colours):
        found.append(audit.near_duplicate_problem(other, first))
    return found
