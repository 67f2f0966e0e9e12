"""Training data: the items of a sd-scripts folder layout, buckets, captions, augmentation,
latent caching and the per-epoch batch order.

Folders are found by the dataset package (``dataset.layout.discover``) and bucketed with its
bucket code (``dataset.buckets``), so the audit and the training see the same thing. The
batch order of an epoch is a pure function of (seed, epoch): a resumed run replays it and
skips the batches already done.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tuilora.config import TrainingConfig
from tuilora.dataset.buckets import BucketPlan
from tuilora.dataset.captions import read_caption
from tuilora.dataset.layout import discover
from tuilora.errors import UserError


@dataclass
class TrainItem:
    image: Path
    caption: str
    is_reg: bool
    bucket: tuple[int, int]
    resized: tuple[int, int]
    #: The image's own (width, height): SDXL's size conditioning needs it.
    original: tuple[int, int] = (0, 0)
    latents: torch.Tensor | None = field(default=None, repr=False)
    latents_flipped: torch.Tensor | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Entry:
    """One image view in an epoch: which item, and whether this view is flipped."""

    item: int
    flip: bool


def _bucket_plan(config: TrainingConfig) -> BucketPlan:
    resolution = config.resolution_wh()
    if not config.enable_bucket:
        # One bucket of the training resolution: every image is resized and cropped to it.
        side = max(resolution)
        return BucketPlan(resolution, side, side, step=8)
    return BucketPlan(
        resolution,
        config.min_bucket_reso,
        config.max_bucket_reso,
        step=config.bucket_reso_steps,
        no_upscale=config.bucket_no_upscale,
    )


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


def _items_in(root: str, is_reg: bool, config: TrainingConfig, plan: BucketPlan) -> list[TrainItem]:
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
            try:
                with Image.open(path) as image:
                    width, height = image.size
            except (OSError, Image.DecompressionBombError):
                continue  # the dataset check reports unreadable images; training skips them
            choice = plan.choose(width, height)
            for _ in range(folder.repeats):
                items.append(
                    TrainItem(
                        path, caption, is_reg, choice.reso, choice.resized_size, (width, height)
                    )
                )
    return items


def balance_regularization(items: Sequence[TrainItem]) -> list[int]:
    """Item indices for one epoch: every training view, plus regularization views cycled
    until they match the training count (sd-scripts fills reg images up to the number of
    training images, so each step sees both in proportion)."""
    train = [index for index, item in enumerate(items) if not item.is_reg]
    reg = [index for index, item in enumerate(items) if item.is_reg]
    if not reg:
        return train
    filled = [reg[i % len(reg)] for i in range(len(train))]
    return train + filled


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


def process_caption(caption: str, config: TrainingConfig, rng: random.Random, epoch: int) -> str:
    """Caption dropout, tag dropout and shuffling with ``keep_tokens`` kept in front."""
    every = config.caption_dropout_every_n_epochs
    if every and epoch % every == 0:
        return ""
    if config.caption_dropout_rate and rng.random() < config.caption_dropout_rate:
        return ""
    if not (config.shuffle_caption or config.caption_tag_dropout_rate):
        return caption
    tags = [tag.strip() for tag in caption.strip().split(",")]
    fixed, free = tags[: config.keep_tokens], tags[config.keep_tokens :]
    if config.caption_tag_dropout_rate:
        free = [tag for tag in free if rng.random() >= config.caption_tag_dropout_rate]
    if config.shuffle_caption:
        rng.shuffle(free)
    return ", ".join(fixed + free)


def load_pixels(
    item: TrainItem, *, flip: bool, random_crop: bool, color_aug: bool, rng: random.Random
) -> torch.Tensor:
    """The image resized to cover its bucket, cropped to it, as a (3, H, W) tensor in [-1, 1]."""
    with Image.open(item.image) as opened:
        image = opened.convert("RGB")
    image = image.resize(item.resized, Image.Resampling.LANCZOS)
    bucket_w, bucket_h = item.bucket
    extra_w, extra_h = image.width - bucket_w, image.height - bucket_h
    if random_crop:
        left, top = rng.randint(0, max(extra_w, 0)), rng.randint(0, max(extra_h, 0))
    else:
        left, top = max(extra_w, 0) // 2, max(extra_h, 0) // 2
    image = image.crop((left, top, left + bucket_w, top + bucket_h))
    if color_aug:
        image = _shift_hue(image, rng.uniform(-0.05, 0.05))
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    return torch.flip(tensor, dims=[2]) if flip else tensor


def _shift_hue(image: Image.Image, amount: float) -> Image.Image:
    hsv = np.asarray(image.convert("HSV"), dtype=np.int16)
    hsv[..., 0] = (hsv[..., 0] + int(amount * 255)) % 256
    return Image.fromarray(hsv.astype(np.uint8), mode="HSV").convert("RGB")


def _cache_key(item: TrainItem) -> str:
    stat = item.image.stat()
    text = f"{item.image.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{item.bucket}|{item.resized}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@torch.no_grad()
def cache_latents(
    items: Sequence[TrainItem],
    vae: Any,
    scaling: float,
    device: torch.device,
    *,
    flip: bool,
    disk_dir: Path | None,
    dtype: torch.dtype,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Encode every distinct image once (and its mirror with flip_aug); optionally on disk.
    ``progress(done)`` follows the distinct images (the trainer's ``caching latents`` phase)."""
    from safetensors.torch import load_file, save_file

    cache: dict[Path, TrainItem] = {}
    rng = random.Random(0)  # no randomness is used without random_crop / color_aug
    for item in items:
        done = cache.get(item.image)
        if done is not None:
            item.latents, item.latents_flipped = done.latents, done.latents_flipped
            continue
        path = disk_dir / f"{_cache_key(item)}.safetensors" if disk_dir else None
        if path is not None and path.is_file():
            stored = load_file(str(path))
            item.latents = stored["latents"]
            item.latents_flipped = stored.get("flipped")
        else:
            views = [False, True] if flip else [False]
            pixels = torch.stack(
                [
                    load_pixels(item, flip=v, random_crop=False, color_aug=False, rng=rng)
                    for v in views
                ]
            )
            encoded = vae.encode(pixels.to(device, dtype)).latent_dist.mode() * scaling
            encoded = encoded.float().cpu()
            item.latents = encoded[0].contiguous()
            item.latents_flipped = encoded[1].contiguous() if flip else None
            if path is not None:
                tensors = {"latents": item.latents}
                if item.latents_flipped is not None:
                    tensors["flipped"] = item.latents_flipped
                path.parent.mkdir(parents=True, exist_ok=True)
                save_file(tensors, str(path))
        cache[item.image] = item
        if progress is not None:
            progress(len(cache))
