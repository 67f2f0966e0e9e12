"""Scan a dataset directory: the one function the CLI, the advisor and the UI call.

The steps: list the folders as sd-scripts would (``layout``), probe every image and read
its caption on all cores (``workers``), reusing what the probe cache (``probecache``)
remembers of unchanged files, then build the report (``assemble``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from tuilora.dataset import probecache
from tuilora.dataset.assemble import Probed, assemble
from tuilora.dataset.buckets import adjust_bucket_range, default_bucket_range
from tuilora.dataset.images import ImageProbe
from tuilora.dataset.layout import Folder, Layout, discover
from tuilora.dataset.model import SUBJECTS, DatasetReport, ScanSettings, Subject
from tuilora.dataset.problems import Problem, display_path
from tuilora.dataset.workers import Job, Progress, default_workers, probe_all
from tuilora.errors import UserError


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
    use_cache: bool = True,
) -> DatasetReport:
    """Audit the sd-scripts dataset at ``path`` (and ``reg_dir``); see docs/dataset.md.

    Raises ``UserError`` for a missing directory or a bad option; every problem inside the
    dataset is reported, never raised. ``progress(done, total)`` is called from this thread
    as images are probed. ``workers`` is the number of processes (default: one per core);
    ``use_cache=False`` neither reads nor writes the probe cache.
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
    roots = [(path, discover(path, is_reg=False, caption_extension=caption_extension))]
    if reg_dir is not None:
        roots.append((reg_dir, discover(reg_dir, is_reg=True, caption_extension=caption_extension)))
    folders: list[tuple[Folder, bool]] = []
    problems: list[Problem] = []
    jobs: list[Job] = []
    owners: list[tuple[Folder, bool, str]] = []
    caches: list[dict[str, ImageProbe]] = []
    for root, layout in roots:
        cached = probecache.load(root) if use_cache else {}
        caches.append(cached)
        problems.extend(layout.problems)
        for folder, trained in _folders(layout):
            folders.append((folder, trained))
            for name in folder.images:
                # the folder listing already says which captions exist: no open() for the rest
                caption = os.path.splitext(name)[0] + caption_extension
                listed = caption in folder.captions
                key = f"{folder.name}/{name}"
                jobs.append(
                    (
                        os.path.join(folder.path, name),
                        os.path.join(folder.path, caption) if listed else None,
                        cached.get(key),
                    )
                )
                owners.append((folder, trained, name))
    results = probe_all(jobs, near_duplicates, workers or default_workers(), progress)
    if use_cache:
        _save_caches(roots, owners, results)
    images = [
        Probed(folder, trained, name, probe, caption)
        for (folder, trained, name), (probe, caption) in zip(owners, results, strict=True)
    ]
    return assemble(path, reg_dir, settings, folders, images, problems)


def _folders(layout: Layout) -> list[tuple[Folder, bool]]:
    """The folders to report, with whether sd-scripts trains them: trained ones first."""
    return [(folder, True) for folder in layout.folders] + [
        (folder, False) for folder in layout.skipped
    ]


def _save_caches(
    roots: list[tuple[str, Layout]],
    owners: list[tuple[Folder, bool, str]],
    results: Sequence[tuple[ImageProbe, object]],
) -> None:
    """Remember every probe, per scanned root (the training and regularization folders
    keep separate cache files)."""
    by_root: dict[int, dict[str, ImageProbe]] = {}
    folder_root = {
        id(folder): index
        for index, (_, layout) in enumerate(roots)
        for folder in (*layout.folders, *layout.skipped)
    }
    for (folder, _, name), (probe, _) in zip(owners, results, strict=True):
        by_root.setdefault(folder_root[id(folder)], {})[f"{folder.name}/{name}"] = probe
    for index, (root, _) in enumerate(roots):
        probecache.save(root, by_root.get(index, {}))
