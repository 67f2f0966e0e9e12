"""Training images as sd-scripts' DreamBooth dataset (library/train_util.py) prepares them:
the one bucket without bucketing, face crops, resize filters, regularization images."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from PIL import Image, ImageDraw  # noqa: E402

from tuilora.config import TrainingConfig, load_toml  # noqa: E402
from tuilora.engine import data  # noqa: E402


def config(shapes: Path, **options: Any) -> TrainingConfig:
    values = {"train_data_dir": str(shapes), "caption_extension": ".txt", **options}
    return TrainingConfig.from_dict(values)


def test_non_square_resolution_without_buckets_trains_at_that_size(shapes: Path) -> None:
    # make_buckets without enable_bucket: one predefined bucket, (width, height) of the
    # resolution ("64,96" is 64 wide, 96 high); each image is scaled to cover it.
    items = data.collect_items(config(shapes, resolution="64,96", enable_bucket=False))
    assert {item.bucket for item in items} == {(64, 96)}
    for item in items:
        assert item.resized[0] >= 64 and item.resized[1] >= 96
        assert min(item.resized[0] - 64, item.resized[1] - 96) == 0
    pixels = data.load_pixels(items[0], flip=False, augment=data.Augment(), rng=random.Random(0))
    assert tuple(pixels.shape) == (3, 96, 64)


def test_bucket_no_upscale_never_enlarges(shapes: Path) -> None:
    # select_bucket with no_upscale: a small image keeps its size, cut down to the step.
    options = {"resolution": 512, "enable_bucket": True, "bucket_no_upscale": True}
    for item in data.collect_items(config(shapes, **options, bucket_reso_steps=32)):
        assert item.bucket[0] <= item.original[0] and item.bucket[1] <= item.original[1]


def test_face_crop_aug_range_keeps_the_face_in_the_crop(tmp_path: Path) -> None:
    # crop_target: a file named *_cx_cy_w_h carries the face; the image is scaled so the
    # face is 1/max .. 1/min of the short side (never enlarged), then the bucket is cut
    # around the face.
    folder = tmp_path / "1_faces"
    folder.mkdir()
    image = Image.new("RGB", (200, 100), "black")
    ImageDraw.Draw(image).rectangle((140, 40, 159, 59), fill="red")  # face at (150, 50), 20px
    image.save(folder / "girl_150_50_20_20.png")
    (folder / "girl_150_50_20_20.txt").write_text("girl", encoding="utf-8")
    cfg = config(tmp_path, resolution=64, face_crop_aug_range="2.0,4.0")
    [item] = data.collect_items(cfg)
    assert item.face == (150, 50, 20, 20)
    augment = data.Augment.of(cfg)
    for seed in range(5):
        pixels = data.load_pixels(item, flip=False, augment=augment, rng=random.Random(seed))
        red = (pixels[0] > 0.5) & (pixels[1] < -0.5)
        # the face is 20 x scale wide, scale in [0.8, 1.0] (64 / (20 x 4) .. min(1, 64 / 40))
        assert 0.8 * 0.8 * 400 * 0.8 <= int(red.sum()) <= 400
    with pytest.raises(Exception, match="face_crop_aug_range"):
        config(tmp_path, face_crop_aug_range="4.0,2.0")


def test_resize_interpolation_follows_sd_scripts_defaults() -> None:
    # resize_image: area when shrinking both sides, Lanczos when enlarging, else the named
    # filter (PIL's BOX is area averaging).
    image = Image.effect_noise((40, 30), 60).convert("RGB")
    smaller = data.resize(image, (20, 15), None)
    assert list(smaller.getdata()) == list(image.resize((20, 15), Image.Resampling.BOX).getdata())
    larger = data.resize(image, (80, 60), None)
    assert list(larger.getdata()) == list(
        image.resize((80, 60), Image.Resampling.LANCZOS).getdata()
    )
    nearest = data.resize(image, (80, 60), "nearest")
    assert list(nearest.getdata()) == list(
        image.resize((80, 60), Image.Resampling.NEAREST).getdata()
    )


def test_caption_extention_is_the_old_spelling(tmp_path: Path) -> None:
    # prepare_dataset_args: caption_extention (sic) sets caption_extension.
    path = tmp_path / "c.toml"
    path.write_text('caption_extention = ".txt"\n', encoding="utf-8")
    assert load_toml(path).config.caption_extension == ".txt"


def test_cache_latents_to_disk_turns_caching_on() -> None:
    # verify_training_args: cache_latents_to_disk enables cache_latents.
    assert TrainingConfig.from_dict({"cache_latents_to_disk": True}).cache_latents


def test_regularization_images_fill_up_to_the_training_count(tmp_path: Path, shapes: Path) -> None:
    # DreamBoothDataset: regularization images are repeated to the number of training
    # images (num_reg_images), and each carries prior_loss_weight in the loss.
    reg = tmp_path / "reg" / "1_person"
    reg.mkdir(parents=True)
    Image.new("RGB", (64, 64), "gray").save(reg / "r.png")
    items = data.collect_items(
        config(shapes, reg_data_dir=str(tmp_path / "reg"), prior_loss_weight=0.25)
    )
    order = data.balance_regularization(items)
    train = [i for i in order if not items[i].is_reg]
    regs = [i for i in order if items[i].is_reg]
    assert len(regs) == len(train) == 6
    weights = data.loss_weights([items[i] for i in order], 0.25)
    assert weights == [1.0] * 6 + [0.25] * 6
