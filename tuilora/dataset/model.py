"""The typed result of a dataset scan (plain frozen dataclasses, no behaviour beyond sums)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from tuilora.dataset.problems import Problem

Subject = Literal["character", "style", "concept", "vehicle"]
SUBJECTS: Final[tuple[Subject, ...]] = ("character", "style", "concept", "vehicle")


@dataclass(frozen=True, slots=True)
class ScanSettings:
    """The options a scan ran with (echoed in the report so it explains itself)."""

    resolution: int = 512
    subject: Subject = "character"
    caption_extension: str = ".txt"
    keep_tokens: int = 1
    min_bucket_reso: int = 320
    max_bucket_reso: int = 768
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    near_duplicates: bool = True


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """One image file sd-scripts would load. ``usable`` is False when it cannot be read
    (its problems say why); ``caption`` is what sd-scripts trains it with: the caption's
    first line, the folder's class token when the caption is missing, or None when the
    caption file is unusable. ``trained`` is False for an image in a folder sd-scripts
    skips (audited all the same, never counted)."""

    path: str
    folder: str
    is_reg: bool
    repeats: int
    width: int | None
    height: int | None
    format: str | None
    bucket: tuple[int, int] | None
    caption: str | None
    has_caption_file: bool
    usable: bool
    trained: bool = True


@dataclass(frozen=True, slots=True)
class FolderReport:
    """One ``<repeats>_<name>`` folder. ``images`` counts the images that train: the files
    sd-scripts globs, less the ``unreadable`` ones (sd-scripts would stop on them, tuilora
    skips them); ``captioned`` those of them with a caption whose first line has text. For
    a folder sd-scripts skips (``DatasetReport.skipped_folders``) the counts say what its
    suggested rename would train; nothing in it is counted in the totals."""

    name: str
    path: str
    repeats: int
    class_tokens: str
    is_reg: bool
    images: int
    captioned: int
    unreadable: int = 0

    @property
    def images_x_repeats(self) -> int:
        return self.images * self.repeats


@dataclass(frozen=True, slots=True)
class BucketCount:
    """Training images in one bucket, once each and counted with their folder's repeats
    (sd-scripts logs the latter as "count")."""

    width: int
    height: int
    images: int
    images_x_repeats: int


@dataclass(frozen=True, slots=True)
class TagCount:
    """A tag over the training captions: ``images`` captions contain it, ``count`` is its
    occurrences (sd-scripts' ``ss_tag_frequency`` measure), ``weighted`` is occurrences ×
    the folder's repeats (how often training sees it per epoch)."""

    tag: str
    images: int
    count: int
    weighted: int


@dataclass(frozen=True, slots=True)
class LeadingTags:
    """One combination of the ``keep_tokens`` first tags and how many captions start so."""

    tags: tuple[str, ...]
    images: int


@dataclass(frozen=True, slots=True)
class TagReport:
    """Tag statistics over the training captions (regularization folders excluded, except
    in ``ss_tag_frequency``, which mirrors sd-scripts' metadata and includes them)."""

    captions: int
    tags: tuple[TagCount, ...]
    trigger: tuple[str, ...]
    keep_tokens: int
    leading: tuple[LeadingTags, ...]
    single_image: tuple[str, ...]
    ss_tag_frequency: Mapping[str, Mapping[str, int]]


@dataclass(frozen=True, slots=True)
class DatasetReport:
    """Everything a scan found. ``problems`` is sorted errors first. ``folders`` are the
    folders sd-scripts trains; ``skipped_folders`` those it skips (misnamed, with images),
    which count nowhere."""

    path: str
    reg_dir: str | None
    settings: ScanSettings
    folders: tuple[FolderReport, ...]
    images: tuple[ImageRecord, ...]
    buckets: tuple[BucketCount, ...]
    tags: TagReport
    problems: tuple[Problem, ...]
    skipped_folders: tuple[FolderReport, ...] = ()

    @property
    def train_folders(self) -> tuple[FolderReport, ...]:
        return tuple(folder for folder in self.folders if not folder.is_reg)

    @property
    def unreadable_images(self) -> int:
        """Training images that cannot be loaded (not counted in ``total_images``)."""
        return sum(folder.unreadable for folder in self.train_folders)

    @property
    def skipped_images(self) -> int:
        """Readable images in training folders sd-scripts skips (not counted either)."""
        return sum(folder.images for folder in self.skipped_folders if not folder.is_reg)

    @property
    def total_images(self) -> int:
        return sum(folder.images for folder in self.train_folders)

    @property
    def total_images_x_repeats(self) -> int:
        return sum(folder.images_x_repeats for folder in self.train_folders)

    @property
    def reg_images(self) -> int:
        return sum(folder.images for folder in self.folders if folder.is_reg)

    @property
    def captioned(self) -> int:
        return sum(folder.captioned for folder in self.train_folders)

    def count(self, severity: str) -> int:
        return sum(1 for item in self.problems if item.severity == severity)

    @property
    def has_errors(self) -> bool:
        return any(item.severity == "error" for item in self.problems)
