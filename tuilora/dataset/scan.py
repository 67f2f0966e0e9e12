"""Scan a dataset directory: the one function the CLI, the advisor and the UI call.

Work per image (read + hash, header parse, caption read, optional small decode) runs in a
thread pool when images are big or the disk is slow: file reads, hashing and Pillow's
decoders release the GIL, so threads overlap I/O and decoding on two cores without the
start-up cost of processes (see ``THREADS_WORTH_S`` for when). Results are kept in job
order, so the report does not depend on thread timing.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from PIL import Image

from tuilora.dataset import audit
from tuilora.dataset.buckets import BucketPlan, adjust_bucket_range, default_bucket_range
from tuilora.dataset.captions import MISSING, CaptionRead, read_caption
from tuilora.dataset.duplicates import exact_groups, near_matches
from tuilora.dataset.images import ImageProbe, probe_image
from tuilora.dataset.layout import Folder, discover
from tuilora.dataset.model import (
    SUBJECTS,
    BucketCount,
    DatasetReport,
    FolderReport,
    ImageRecord,
    ScanSettings,
    Subject,
)
from tuilora.dataset.problems import Problem, display_path, problem, sort_key
from tuilora.dataset.tags import CaptionUse, tag_report
from tuilora.errors import UserError

# Images per task: big enough that the pool's per-task cost (a future, a lock) is small
# next to the work, small enough to keep both cores busy to the end and report progress.
CHUNK: Final = 32
# Threads pay off only when an image keeps a worker busy long enough outside the GIL (a
# large file to hash, a real decode, a slow disk). For small files in the page cache the
# work is mostly Python, and every read hands the GIL to another thread: measured here,
# 4 threads made a 10,000-small-image scan 3x slower, and 2 threads made 300 large
# images 2x faster. The first chunk, run in the calling thread, decides.
THREADS_WORTH_S: Final = 0.001
Progress = Callable[[int, int], None]
_Job = tuple[str, str | None]  # (image path, caption path if the listing had it)
_Result = tuple[ImageProbe, CaptionRead]


def default_workers() -> int:
    """Threads for the scan: I/O waits and GIL-free decoding overlap past the core count."""
    return min(8, 2 * (os.cpu_count() or 1))


def _run_chunk(jobs: Sequence[_Job], near_duplicates: bool) -> list[_Result]:
    return [
        (
            probe_image(image, near_duplicates=near_duplicates),
            MISSING if caption is None else read_caption(caption),
        )
        for image, caption in jobs
    ]


@contextlib.contextmanager
def _quiet_bomb_warnings() -> Iterator[None]:
    """Silence Pillow's DecompressionBombWarning (the audit reports such images itself).

    The warnings filter is process-wide and ``catch_warnings`` is not thread-safe, so this
    is done only when the scan runs in the main thread (the CLI); a UI running the scan in
    a worker thread may see the warning once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _probe_all(
    jobs: list[_Job], near_duplicates: bool, workers: int, progress: Progress | None
) -> list[_Result]:
    """Probe every job, in order. The first chunk runs in this thread and is timed: only
    if an image takes longer than ``THREADS_WORTH_S`` do the rest go to a thread pool."""
    chunks = [jobs[start : start + CHUNK] for start in range(0, len(jobs), CHUNK)]
    results: list[_Result] = []

    def done(part: list[_Result]) -> None:
        results.extend(part)
        if progress is not None:
            progress(len(results), len(jobs))

    with _quiet_bomb_warnings():
        start = time.perf_counter()
        if chunks:
            done(_run_chunk(chunks[0], near_duplicates))
        per_image = (time.perf_counter() - start) / max(1, len(results))
        rest = chunks[1:]
        if workers <= 1 or len(rest) == 0 or per_image < THREADS_WORTH_S:
            for chunk in rest:
                done(_run_chunk(chunk, near_duplicates))
            return results
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tuilora-scan")
        try:
            for future in [pool.submit(_run_chunk, chunk, near_duplicates) for chunk in rest]:
                done(future.result())
        finally:
            # on Ctrl+C, drop the queued chunks instead of finishing a 50,000-image scan
            pool.shutdown(wait=True, cancel_futures=True)
    return results


def _check_dir(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise UserError(f"{display_path(path)}: no such {what}; pass an existing directory")
    if not os.path.isdir(path):
        raise UserError(
            f"{display_path(path)} is a file, not a directory; pass the {what} that holds "
            "the <repeats>_<name> folders"
        )


def make_settings(
    *,
    resolution: int,
    subject: str,
    caption_extension: str,
    keep_tokens: int,
    min_bucket_reso: int | None,
    max_bucket_reso: int | None,
    bucket_no_upscale: bool,
    near_duplicates: bool,
) -> ScanSettings:
    """Validate the options; a bad one raises ``UserError`` naming it."""
    if subject not in SUBJECTS:
        raise UserError(f"subject '{subject}' is not one of {', '.join(SUBJECTS)}")
    chosen: Subject = SUBJECTS[SUBJECTS.index(subject)]
    if not 64 <= resolution <= 8192:
        raise UserError(f"resolution {resolution} is out of range; use 64..8192 (e.g. 512)")
    if len(caption_extension) < 2 or not caption_extension.startswith("."):
        raise UserError(f"caption extension '{caption_extension}' must start with a dot, e.g. .txt")
    if keep_tokens < 0:
        raise UserError(f"keep_tokens {keep_tokens} is negative; use 0 or more (e.g. 1)")
    low, high = default_bucket_range(resolution)
    low = low if min_bucket_reso is None else min_bucket_reso
    high = high if max_bucket_reso is None else max_bucket_reso
    if low < 1 or high < low:
        raise UserError(f"bucket range {low}..{high} is empty; use min <= max (e.g. 320..768)")
    try:
        low, high = adjust_bucket_range((resolution, resolution), low, high)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return ScanSettings(
        resolution=resolution,
        subject=chosen,
        caption_extension=caption_extension,
        keep_tokens=keep_tokens,
        min_bucket_reso=low,
        max_bucket_reso=high,
        bucket_no_upscale=bucket_no_upscale,
        near_duplicates=near_duplicates,
    )


def scan_dataset(
    path: str,
    *,
    resolution: int = 512,
    subject: str = "character",
    caption_extension: str = ".txt",
    keep_tokens: int = 1,
    reg_dir: str | None = None,
    min_bucket_reso: int | None = None,
    max_bucket_reso: int | None = None,
    bucket_no_upscale: bool = False,
    near_duplicates: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
) -> DatasetReport:
    """Audit the sd-scripts dataset at ``path`` (and ``reg_dir``); see docs/dataset.md.

    Raises ``UserError`` for a missing directory or a bad option; every problem inside the
    dataset is reported, never raised. ``progress(done, total)`` is called from this thread
    as images are probed.
    """
    settings = make_settings(
        resolution=resolution,
        subject=subject,
        caption_extension=caption_extension,
        keep_tokens=keep_tokens,
        min_bucket_reso=min_bucket_reso,
        max_bucket_reso=max_bucket_reso,
        bucket_no_upscale=bucket_no_upscale,
        near_duplicates=near_duplicates,
    )
    _check_dir(path, "dataset directory")
    if reg_dir is not None:
        _check_dir(reg_dir, "regularization directory")
    layout = discover(path, is_reg=False, caption_extension=caption_extension)
    if reg_dir is not None:
        reg_layout = discover(reg_dir, is_reg=True, caption_extension=caption_extension)
        layout.folders.extend(reg_layout.folders)
        layout.problems.extend(reg_layout.problems)
    jobs: list[_Job] = []
    owners: list[Folder] = []
    for folder in layout.folders:
        for name in folder.images:
            # the folder listing already says which captions exist: no open() for the rest
            caption = os.path.splitext(name)[0] + caption_extension
            caption_path = os.path.join(folder.path, caption)
            listed = caption in folder.captions
            jobs.append((os.path.join(folder.path, name), caption_path if listed else None))
            owners.append(folder)
    results = _probe_all(jobs, near_duplicates, workers or default_workers(), progress)
    return _assemble(path, reg_dir, settings, layout.folders, owners, results, layout.problems)


def _assemble(
    path: str,
    reg_dir: str | None,
    settings: ScanSettings,
    folders: list[Folder],
    owners: list[Folder],
    results: list[_Result],
    problems: list[Problem],
) -> DatasetReport:
    plan = BucketPlan(
        (settings.resolution, settings.resolution),
        settings.min_bucket_reso,
        settings.max_bucket_reso,
        settings.bucket_reso_steps,
        settings.bucket_no_upscale,
    )
    ext = settings.caption_extension
    has_captions = {
        id(folder) for folder, (_, cap) in zip(owners, results, strict=True) if cap.exists
    }
    records: list[ImageRecord] = []
    captioned: Counter[int] = Counter()
    buckets: Counter[tuple[int, int]] = Counter()
    weighted: Counter[tuple[int, int]] = Counter()
    position = 0
    for folder in folders:
        count = len(folder.images)
        pairs = results[position : position + count]
        position += count
        stems = set()
        for name, (probe, cap) in zip(folder.images, pairs, strict=True):
            stem = os.path.splitext(name)[0]
            stems.add(stem)
            shown = display_path(os.path.join(folder.display, name))
            shown_cap = display_path(os.path.join(folder.display, stem + ext))
            problems.extend(audit.image_problems(shown, probe, settings.resolution))
            usable = probe.failure is None and probe.width is not None
            if usable or cap.exists:
                # a missing caption matters little next to an image that cannot be read
                problems.extend(
                    audit.caption_problems(
                        shown,
                        shown_cap,
                        cap,
                        class_tokens=folder.class_tokens,
                        folder_has_captions=id(folder) in has_captions,
                    )
                )
            bucket = None
            if usable and probe.width is not None and probe.height is not None:
                bucket = plan.choose(probe.width, probe.height).reso
                if not folder.is_reg:
                    buckets[bucket] += 1
                    weighted[bucket] += folder.repeats
            text = folder.class_tokens if not cap.exists else cap.text
            if cap.exists and cap.text:
                captioned[id(folder)] += 1
            records.append(
                ImageRecord(
                    shown,
                    display_path(folder.name),
                    folder.is_reg,
                    folder.repeats,
                    probe.width,
                    probe.height,
                    probe.format,
                    bucket,
                    text,
                    cap.exists,
                    usable,
                )
            )
        problems.extend(_folder_problems(folder, stems, ext, id(folder) in has_captions))
    reports = tuple(
        FolderReport(
            display_path(folder.name),
            folder.display,
            folder.repeats,
            folder.class_tokens,
            folder.is_reg,
            len(folder.images),
            captioned[id(folder)],
        )
        for folder in folders
    )
    problems.extend(_duplicate_problems(records, results))
    uses = [CaptionUse(r.folder, r.repeats, r.is_reg, r.caption) for r in records]
    tags = tag_report(uses, settings.keep_tokens, (display_path(f.name) for f in folders))
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
        reports,
        tuple(records),
        histogram,
        tags,
        tuple(sorted(problems, key=sort_key)),
    )


def _folder_problems(
    folder: Folder, stems: set[str], ext: str, has_captions: bool
) -> list[Problem]:
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
    for name in sorted(folder.captions):
        if name[: len(name) - len(ext)] not in stems:
            found.append(
                audit.orphan_caption_problem(display_path(os.path.join(folder.display, name)))
            )
    return found


def _duplicate_problems(records: list[ImageRecord], results: list[_Result]) -> list[Problem]:
    found: list[Problem] = []
    digests = [
        (record.path, probe.digest)
        for record, (probe, _) in zip(records, results, strict=True)
        if record.usable and probe.digest is not None
    ]
    copies: set[str] = set()
    for group in exact_groups(digests):
        first = group[0]
        for other in group[1:]:
            copies.add(other)
            found.append(
                problem(
                    "duplicate-image",
                    other,
                    f"{other} is a byte-for-byte copy of {first}",
                    f"delete {other}: a copy trains that picture twice as often",
                )
            )
    hashes = [
        (record.path, probe.dhash)
        for record, (probe, _) in zip(records, results, strict=True)
        if record.usable and probe.dhash is not None and record.path not in copies
    ]
    for other, first, distance in near_matches(hashes):
        found.append(
            problem(
                "near-duplicate",
                other,
                f"{other} looks almost the same as {first} ({distance} of 128 hash bits differ)",
                "keep both only if they differ in a way the model should learn; "
                "otherwise delete one (variety beats copies)",
            )
        )
    return found
