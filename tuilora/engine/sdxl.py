"""SDXL's size and crop conditioning (``add_time_ids``), per image, as sd-scripts computes it.

Each training image tells the UNet its original size, where the crop starts, and the target
size, as ``(orig_h, orig_w, crop_top, crop_left, target_h, target_w)``. diffusers' UNet
embeds them with sinusoidal features of width 256 (flip sin/cos), exactly sd-scripts'
``get_size_embeddings``, so passing the six numbers as ``time_ids`` is the same thing.

sd-scripts takes the crop from ``BucketManager.get_crop_ltrb`` (Stability's preprocessing:
the image fitted inside the bucket, centred) whatever crop the pixels really got, and for a
flipped view mirrors the left edge; the target size is the bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tuilora.engine.data import Entry, TrainItem
from tuilora.engine.text import TextConditions


def crop_ltrb(bucket: tuple[int, int], original: tuple[int, int]) -> tuple[float, ...]:
    """sd-scripts' ``get_crop_ltrb``: (left, top, right, bottom) of the fitted image."""
    bucket_w, bucket_h = bucket
    image_ar = original[0] / original[1]
    if bucket_w / bucket_h > image_ar:
        width, height = bucket_h * image_ar, float(bucket_h)
    else:
        width, height = float(bucket_w), bucket_w / image_ar
    left = (bucket_w - width) // 2
    top = (bucket_h - height) // 2
    return left, top, left + width, top + height


def time_ids(item: TrainItem, flip: bool) -> list[int]:
    """``(orig_h, orig_w, crop_top, crop_left, target_h, target_w)`` for one view."""
    original = item.original if item.original[0] and item.original[1] else item.bucket
    left, top, right, _ = crop_ltrb(item.bucket, original)
    target_w, target_h = item.bucket
    if flip:
        left = target_w - right
    return [original[1], original[0], int(top), int(left), target_h, target_w]


def batch_time_ids(
    items: Sequence[TrainItem], batch: Sequence[Entry], device: torch.device
) -> torch.Tensor:
    rows = [time_ids(item, entry.flip) for item, entry in zip(items, batch, strict=True)]
    return torch.tensor(rows, dtype=torch.float32, device=device)


def unet_kwargs(
    text: TextConditions,
    items: Sequence[TrainItem],
    batch: Sequence[Entry],
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, Any]:
    """The UNet's extra arguments: none for SD1/SD2, SDXL's pooled text and time ids."""
    if text.pooled is None:
        return {}
    ids = batch_time_ids(items, batch, device)
    return {"added_cond_kwargs": {"text_embeds": text.pooled.to(device, dtype), "time_ids": ids}}
