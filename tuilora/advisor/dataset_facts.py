"""The dataset as the advisor sees it: real folders, counts and problems (``advise --dataset``,
the wizard's dataset step and ``tuilora train``'s pre-flight check).

The adapter from a scan (``tuilora.dataset``) to the advisor's facts lives here, in the
advisor, so the dataset package never imports the advisor (the core's arrows point down).
The scanner loads lazily: importing this module costs nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuilora.advisor import steps
from tuilora.config_fields import normalize_resolution

if TYPE_CHECKING:
    from tuilora.dataset.model import DatasetReport


@dataclass(frozen=True)
class DatasetFolder:
    name: str
    repeats: int
    images: int


@dataclass(frozen=True)
class DatasetProblem:
    id: str
    severity: str
    message: str
    guide: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageSize:
    """One image sd-scripts trains: its size, its folder's repeats, and whether it is a
    regularization image (in the order the trainer loads them: folder, then file name)."""

    width: int
    height: int
    repeats: int
    is_reg: bool = False


@dataclass(frozen=True)
class DatasetFacts:
    """What the advisor needs from a scanned dataset (real counts, repeats and problems,
    and the image sizes that decide the buckets)."""

    path: str
    folders: tuple[DatasetFolder, ...]
    problems: tuple[DatasetProblem, ...] = ()
    images_seen: tuple[ImageSize, ...] = ()

    @property
    def images(self) -> int:
        return sum(folder.images for folder in self.folders)

    @property
    def image_repeats(self) -> int:
        return sum(folder.images * folder.repeats for folder in self.folders)


def facts_from_report(report: DatasetReport) -> DatasetFacts:
    """The advisor's view of a scan already made (the wizard keeps the full report)."""
    folders = tuple(
        DatasetFolder(
            name=folder.class_tokens or folder.name, repeats=folder.repeats, images=folder.images
        )
        for folder in report.train_folders
    )
    problems = tuple(
        DatasetProblem(
            id=problem.id,
            severity=problem.severity,
            message=problem.message,  # the scanner's messages already name the file
            guide=tuple(problem.guide),
        )
        for problem in report.problems
    )
    return DatasetFacts(
        path=report.path, folders=folders, problems=problems, images_seen=_sizes(report)
    )


def _sizes(report: DatasetReport) -> tuple[ImageSize, ...]:
    """The readable images, folder by folder in the scan's order, files by name (the
    trainer's order, which decides which regularization views fill an epoch)."""
    order = {folder.name: index for index, folder in enumerate(report.folders)}
    usable = [  # only folders sd-scripts trains: a skipped (misnamed) folder is not counted
        record
        for record in report.images
        if record.usable
        and record.folder in order
        and record.width is not None
        and record.height is not None
    ]
    usable.sort(key=lambda record: (order[record.folder], record.path))
    return tuple(
        ImageSize(int(r.width or 0), int(r.height or 0), r.repeats, r.is_reg) for r in usable
    )


def bucket_views(
    images: Sequence[ImageSize] | None,
    resolution: int | str,
    enable_bucket: bool,
    min_bucket_reso: int,
    max_bucket_reso: int,
    bucket_reso_steps: int,
    bucket_no_upscale: bool,
    regularization: bool,
) -> list[int] | None:
    """Views per bucket in one epoch, as the trainer batches them (None without images).

    Each training image counts its repeats in its bucket; regularization images fill up to
    the training views (``steps.regularization_fill``). With regularization on but no
    regularization images scanned, their views are assumed to share one bucket.
    """
    if not images:
        return None
    res = normalize_resolution(resolution)
    wh = (res, res) if isinstance(res, int) else tuple(int(p) for p in res.split(","))
    plan = steps.bucket_plan(
        (wh[0], wh[-1]),
        enable_bucket,
        min_bucket_reso,
        max_bucket_reso,
        bucket_reso_steps,
        bucket_no_upscale,
    )
    train: list[object] = []
    reg: list[object] = []
    for image in images:
        bucket = plan.choose(image.width, image.height).reso
        (reg if image.is_reg else train).extend([bucket] * image.repeats)
    if regularization and not reg:
        reg = ["regularization (not scanned)"]
    counts = Counter(steps.regularization_fill(train, reg) if regularization else train)
    return list(counts.values())


def dataset_facts(
    path: str,
    *,
    caption_extension: str = ".txt",
    resolution: int = 512,
    subject: str = "character",
    reg_dir: str | None = None,
) -> DatasetFacts:
    # Near-duplicates are only ever "info", which the advisor and the pre-flight drop; the
    # perceptual hash is the one step that decodes pixels, so it is skipped here.
    from tuilora.dataset.scan import scan_dataset

    report = scan_dataset(
        path,
        resolution=resolution,
        subject=subject,
        caption_extension=caption_extension,
        near_duplicates=False,
        reg_dir=reg_dir,
    )
    return facts_from_report(report)
