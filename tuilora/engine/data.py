"""Training data: the items of a sd-scripts folder layout, buckets, augmentation (flip,
colour, random and face crops) and the per-epoch batch order. Captions are
``captions.py``; latent caching is
``latent_cache.py``.

Folders are found by the dataset package (``dataset.layout.discover``) and bucketed with its
bucket code (``dataset.buckets``), so the audit and the training see the same thing. The
batch order of an epoch is a pure function of (seed, epoch): a resumed run replays it and
skips the batches already done.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tuilora.advisor import steps
from tuilora.config import TrainingConfig
from tuilora.dataset.buckets import BucketChoice, BucketPlan, select_bucket
from tuilora.dataset.captions import read_caption
from tuilora.dataset.images import training_size
from tuilora.dataset.layout import discover
from tuilora.errors import UserError

log = logging.getLogger("tuilora.train")


@dataclass
class TrainItem:
    image: Path
    caption: str
    is_reg: bool
    bucket: tuple[int, int]
    resized: tuple[int, int]
    #: The image's own (width, height): SDXL's size conditioning needs it.
    original: tuple[int, int] = (0, 0)
    #: Face centre and size (cx, cy, w, h) from a file name ``..._cx_cy_w_h`` (sd-scripts'
    #: face_crop_aug_range convention), else None.
    face: tuple[int, int, int, int] | None = None
    latents: torch.Tensor | None = field(default=None, repr=False)
    latents_flipped: torch.Tensor | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Entry:
    """One image view in an epoch: which item, and whether this view is flipped."""

    item: int
    flip: bool


def _bucket_plan(config: TrainingConfig) -> BucketPlan | None:
    """The bucket plan, or None without buckets: then the one bucket is the resolution
    (``_choose``). The plan itself is the advisor's (one source for the step arithmetic)."""
    if not config.enable_bucket:
        return None
    return steps.bucket_plan(
        config.resolution_wh(),
        True,
        config.min_bucket_reso,
        config.max_bucket_reso,
        config.bucket_reso_steps,
        config.bucket_no_upscale,
    )


def _choose(config: TrainingConfig, plan: BucketPlan | None, size: tuple[int, int]) -> BucketChoice:
    if plan is not None:
        return plan.choose(*size)
    # sd-scripts without buckets: one predefined bucket, the resolution itself (W x H, so
    # "512,768" trains at 512 x 768); each image is scaled to cover it, then cropped.
    return select_bucket(size[0], size[1], (config.resolution_wh(),))


def face_from_name(path: Path) -> tuple[int, int, int, int] | None:
    """sd-scripts' face position in a file name: the last four ``_``-separated numbers."""
    tokens = path.stem.split("_")
    if len(tokens) < 5:
        return None
    try:
        cx, cy, w, h = (int(token) for token in tokens[-4:])
    except ValueError:
        return None
    return cx, cy, w, h


def collect_items(config: TrainingConfig) -> list[TrainItem]:
    """Every image of the train (and regularization) folders, with caption and bucket."""
    if not config.train_data_dir:
        raise UserError("train_data_dir is not set: give the folder of <repeats>_<name> folders")
    plan = _bucket_plan(config)
    train = _items_in(config.train_data_dir, False, config, plan)
    if not train:
        raise UserError(
            f"{config.train_data_dir}: no training images found (sd-scripts layout:"
            " DIR/<repeats>_<name>/ with png, jpg, webp or bmp images)"
        )
    reg = _items_in(config.reg_data_dir, True, config, plan) if config.reg_data_dir else []
    return train + reg


def _items_in(
    root: str, is_reg: bool, config: TrainingConfig, plan: BucketPlan | None
) -> list[TrainItem]:
    if not Path(root).is_dir():
        kind = "reg_data_dir" if is_reg else "train_data_dir"
        raise UserError(f"{kind} {root}: no such directory")
    layout = discover(root, is_reg=is_reg, caption_extension=config.caption_extension)
    items: list[TrainItem] = []
    for folder in layout.folders:
        for name in sorted(folder.images):
            path = Path(folder.path) / name
            caption = read_caption(str(path.with_suffix(config.caption_extension))).text
            if caption is None:
                caption = folder.class_tokens  # sd-scripts: the folder's class token
            size = training_size(str(path))
            if isinstance(size, str):
                # the dataset check reports it (an error, shown as a warning event under
                # --force) and does not count it; training skips it the same way
                log.warning("%s is skipped: it cannot be loaded (%s)", path, size)
                continue
            width, height = size
            choice = _choose(config, plan, (width, height))
            face = face_from_name(path) if config.face_crop_aug_range else None
            for _ in range(folder.repeats):
                items.append(
                    TrainItem(
                        path,
                        caption,
                        is_reg,
                        choice.reso,
                        choice.resized_size,
                        (width, height),
                        face=face,
                    )
                )
    return items


def balance_regularization(items: Sequence[TrainItem]) -> list[int]:
    """Item indices for one epoch: every training view, plus regularization views filled up
    to the training count as sd-scripts does (``advisor.steps.regularization_fill``, the
    rule the advisor's plan counts with)."""
    train = [index for index, item in enumerate(items) if not item.is_reg]
    reg = [index for index, item in enumerate(items) if item.is_reg]
    return steps.regularization_fill(train, reg)


def loss_weights(items: Sequence[TrainItem], prior_loss_weight: float) -> list[float]:
    """Each sample's loss weight: prior_loss_weight for regularization images, else 1."""
    return [prior_loss_weight if item.is_reg else 1.0 for item in items]


def epoch_batches(
    items: Sequence[TrainItem], batch_size: int, seed: int, epoch: int, flip: bool
) -> list[list[Entry]]:
    """The batches of one epoch: grouped by bucket, shuffled by (seed, epoch)."""
    rng = random.Random(f"{seed}:{epoch}")
    by_bucket: dict[tuple[int, int], list[Entry]] = {}
    for index in balance_regularization(items):
        entry = Entry(index, flip and rng.random() < 0.5)
        by_bucket.setdefault(items[index].bucket, []).append(entry)
    batches: list[list[Entry]] = []
    for bucket in sorted(by_bucket):
        entries = by_bucket[bucket]
        rng.shuffle(entries)
        batches.extend(entries[i : i + batch_size] for i in range(0, len(entries), batch_size))
    rng.shuffle(batches)
    return batches


@dataclass(frozen=True)
class Augment:
    """The per-image options of ``load_pixels``, from the config."""

    random_crop: bool = False
    color_aug: bool = False
    interpolation: str | None = None
    #: face_crop_aug_range as (min, max) face sizes relative to the short side.
    face_range: tuple[float, float] | None = None

    @classmethod
    def of(cls, config: TrainingConfig) -> Augment:
        face = None
        if config.face_crop_aug_range:
            low, high = (float(part) for part in config.face_crop_aug_range.split(","))
            face = (low, high)
        return cls(config.random_crop, config.color_aug, config.resize_interpolation, face)


_FILTERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "linear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "cubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
    "box": Image.Resampling.BOX,
}


def resize(image: Image.Image, size: tuple[int, int], interpolation: str | None) -> Image.Image:
    """sd-scripts' ``resize_image``: the named filter; by default area averaging (PIL's BOX)
    when shrinking both sides, Lanczos when enlarging."""
    if interpolation is None:
        shrinking = image.width >= size[0] and image.height >= size[1]
        interpolation = "area" if shrinking else "lanczos"
    return image.resize(size, _FILTERS[interpolation])


def load_pixels(
    item: TrainItem, *, flip: bool, augment: Augment, rng: random.Random
) -> torch.Tensor:
    """The image resized to cover its bucket, cropped to it (around the face with
    face_crop_aug_range), colour-augmented, as a (3, H, W) tensor in [-1, 1]."""
    with Image.open(item.image) as opened:
        image = opened.convert("RGB")
    if augment.face_range is not None and item.face is not None:
        image = _face_crop(image, item, augment, rng)
    else:
        image = resize(image, item.resized, augment.interpolation)
        bucket_w, bucket_h = item.bucket
        extra_w, extra_h = max(image.width - bucket_w, 0), max(image.height - bucket_h, 0)
        if augment.random_crop:
            left, top = rng.randint(0, extra_w), rng.randint(0, extra_h)
        else:
            left, top = extra_w // 2, extra_h // 2
        image = image.crop((left, top, left + bucket_w, top + bucket_h))
    array = np.asarray(image, dtype=np.uint8)
    if augment.color_aug:
        array = color_augment(array, rng)
    tensor = torch.from_numpy(array.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)
    tensor = tensor.contiguous()
    return torch.flip(tensor, dims=[2]) if flip else tensor


def _face_crop(
    image: Image.Image, item: TrainItem, augment: Augment, rng: random.Random
) -> Image.Image:
    """sd-scripts' ``crop_target``: scale so the face's size falls in face_crop_aug_range of
    the short side (never above 1), then cut the bucket around the face (a little jitter
    when the range is a range; random_crop moves it further to show more background)."""
    assert augment.face_range is not None and item.face is not None
    low, high = augment.face_range
    cx, cy, face_w, face_h = item.face
    target_w, target_h = item.bucket
    width, height = image.size
    if (width, height) == (target_w, target_h):
        return image
    face_size = max(face_w, face_h)
    size = min(target_w, target_h)
    min_scale = max(target_h / height, target_w / width)
    min_scale = min(1.0, max(min_scale, size / (face_size * high)))
    max_scale = min(1.0, max(min_scale, size / (face_size * low)))
    scale = min_scale if min_scale >= max_scale else rng.uniform(min_scale, max_scale)
    new_w, new_h = int(width * scale + 0.5), int(height * scale + 0.5)
    image = resize(image, (new_w, new_h), augment.interpolation)
    centre = (int(cx * scale + 0.5), int(cy * scale + 0.5))
    corner = []
    for target, length, face_at in zip((target_w, target_h), (new_w, new_h), centre, strict=True):
        start = face_at - target // 2
        if augment.random_crop:
            spread = max(length - face_at, face_at)
            start += rng.randint(0, spread) + rng.randint(0, spread) - spread
        elif low != high and face_size > size // 10 and face_size >= 40:
            start += rng.randint(-face_size // 20, face_size // 20)
        corner.append(max(0, min(start, length - target)))
    left, top = corner
    return image.crop((left, top, left + target_w, top + target_h))


def color_augment(array: np.ndarray, rng: random.Random) -> np.ndarray:
    """sd-scripts' ``AugHelper.color_aug``: a third of the time, either a hue shift of up to
    8 of OpenCV's 180 hue steps or a gamma from 0.95 to 1.05."""
    if rng.random() > 0.33:
        return array
    if rng.random() > 0.5:
        shift = rng.uniform(-8, 8) / 180  # as a fraction of the hue circle
        hsv = np.asarray(Image.fromarray(array).convert("HSV"), dtype=np.int16)
        hsv[..., 0] = (hsv[..., 0] + int(round(shift * 256))) % 256
        return np.asarray(Image.fromarray(hsv.astype(np.uint8), mode="HSV").convert("RGB"))
    gamma = rng.uniform(0.95, 1.05)
    return np.clip(array.astype(np.float64) ** gamma, 0, 255).astype(np.uint8)
