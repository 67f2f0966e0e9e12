"""Buckets must equal sd-scripts' bit for bit: the engine trains with these.

The expected sets below were computed by hand from sd-scripts'
``model_util.make_bucket_resolutions``: area = resolution², the square side is
floor(sqrt(area) / 64) * 64, and for each width w = min, min+64, ..., max the height is
min(max, floor(area // w / 64) * 64), kept when >= min, in both orientations. For 512:
320 -> 819.2 -> 768; 384 -> 682.7 -> 640; 448 -> 585.1 -> 576; 512 -> 512; 576 -> 455.1 ->
448; 640 -> 409.6 -> 384; 704 -> 372.4 -> 320; 768 -> 341.3 -> 320.
"""

from __future__ import annotations

import pytest

from tuilora.dataset.buckets import (
    BucketPlan,
    adjust_bucket_range,
    assign_bucket,
    default_bucket_range,
    make_buckets,
    select_bucket,
    select_bucket_no_upscale,
)

BUCKETS_512 = [
    (320, 704),
    (320, 768),
    (384, 640),
    (448, 576),
    (512, 512),
    (576, 448),
    (640, 384),
    (704, 320),
    (768, 320),
]

# 1024, min 640, max 1536: 640 -> 1638.4 -> 1600 capped 1536; 704 -> 1489.5 -> 1472;
# 768 -> 1365.3 -> 1344; 832 -> 1260.3 -> 1216; 896 -> 1170.3 -> 1152; 960 -> 1092.3 ->
# 1088; 1024 -> 1024; 1088 -> 963.8 -> 960; 1152 -> 910.2 -> 896; 1216 -> 862.3 -> 832;
# 1280 -> 819.2 -> 768; 1344 -> 780.2 -> 768; 1408 -> 744.7 -> 704; 1472 -> 712.3 -> 704;
# 1536 -> 682.7 -> 640.
BUCKETS_1024 = [
    (640, 1536),
    (704, 1408),
    (704, 1472),
    (768, 1280),
    (768, 1344),
    (832, 1216),
    (896, 1152),
    (960, 1088),
    (1024, 1024),
    (1088, 960),
    (1152, 896),
    (1216, 832),
    (1280, 768),
    (1344, 768),
    (1408, 704),
    (1472, 704),
    (1536, 640),
]


def test_bucket_set_512() -> None:
    assert make_buckets((512, 512), 320, 768) == BUCKETS_512


def test_bucket_set_1024() -> None:
    assert make_buckets((1024, 1024), 640, 1536) == BUCKETS_1024


def test_bucket_set_non_square_resolution_uses_its_area() -> None:
    # 512x768: area 393216, square side floor(627.1 / 64) * 64 = 576
    buckets = make_buckets((512, 768), 256, 1024)
    assert (576, 576) in buckets
    assert all(w * h <= 512 * 768 for w, h in buckets)


@pytest.mark.parametrize(
    ("size", "bucket"),
    [
        ((512, 640), (448, 576)),  # 0.8 -> 448/576 = 0.778 beats 512/512 = 1.0
        ((1000, 1000), (512, 512)),
        ((600, 400), (640, 384)),  # 1.5: 640/384 = 1.667 (0.167) beats 576/448 = 1.286 (0.214)
        ((200, 900), (320, 768)),  # 0.222: the narrowest bucket, 320/768 = 0.417
        ((3000, 100), (768, 320)),
        ((448, 576), (448, 576)),  # an image the size of a bucket keeps it
        ((320, 704), (320, 704)),
    ],
)
def test_assign_bucket_nearest_aspect(size: tuple[int, int], bucket: tuple[int, int]) -> None:
    assert assign_bucket(*size, resolution=(512, 512), min_reso=320, max_reso=768) == bucket


def test_assign_bucket_tie_goes_to_the_first_in_sorted_order() -> None:
    # Aspect 1.0 lies exactly between 0.5 and 1.5: equal errors, and the first bucket
    # listed wins, as numpy's argmin picks the first minimum in sd-scripts.
    choice = select_bucket(100, 100, [(64, 128), (192, 128)])
    assert choice.reso == (64, 128)


def test_select_bucket_resized_size_and_error_match_sd_scripts() -> None:
    # 600x400 into 640x384: aspect 1.5 < 1.667, so widths match: scale 640/600
    choice = select_bucket(600, 400, BUCKETS_512)
    assert choice.reso == (640, 384)
    assert choice.resized_size == (640, 427)  # int(400 * 1.0667 + 0.5)
    assert choice.ar_error == pytest.approx(640 / 384 - 1.5)


@pytest.mark.parametrize(
    ("size", "bucket", "resized"),
    [
        ((300, 200), (256, 192), (300, 200)),  # small: no resize, cut down to 64s
        ((512, 512), (512, 512), (512, 512)),
        # 2000x1000 > 512*512: sqrt(262144 * 2) = 724.08 wide, 362.04 high. Rounding the
        # width: 704, height 352 -> 320, aspect 2.2. Rounding the height: 320, width
        # 640, aspect 2.0 = the image's: height wins, resized (640, 320), bucket (640, 320)
        ((2000, 1000), (640, 320), (640, 320)),
        # 4000x1000: sqrt(262144 * 4) = 1024 wide, 256 high. Width 1024, height 256:
        # aspect 4.0, exact; resized (1024, 256), bucket (1024, 256)
        ((4000, 1000), (1024, 256), (1024, 256)),
    ],
)
def test_no_upscale_buckets(
    size: tuple[int, int], bucket: tuple[int, int], resized: tuple[int, int]
) -> None:
    choice = select_bucket_no_upscale(*size, max_area=512 * 512)
    assert choice.reso == bucket
    assert choice.resized_size == resized
    assert (
        assign_bucket(*size, resolution=(512, 512), min_reso=320, max_reso=768, no_upscale=True)
        == bucket
    )


def test_bucket_plan_matches_functions() -> None:
    plan = BucketPlan((512, 512), 320, 768)
    assert list(plan.buckets) == BUCKETS_512
    assert plan.choose(512, 640).reso == (448, 576)
    assert BucketPlan((512, 512), 320, 768, no_upscale=True).buckets == ()


def test_adjust_bucket_range_rounds_like_sd_scripts() -> None:
    assert adjust_bucket_range((512, 512), 330, 760) == (320, 768)
    with pytest.raises(ValueError, match="min_bucket_reso 576"):
        adjust_bucket_range((512, 512), 576, 768)
    with pytest.raises(ValueError, match="max_bucket_reso 448"):
        adjust_bucket_range((512, 512), 320, 448)


@pytest.mark.parametrize(
    ("resolution", "expected"),
    [
        (512, (320, 768)),
        (576, (320, 768)),
        (768, (320, 768)),
        (1024, (640, 1536)),
        (256, (256, 768)),
    ],
)
def test_default_bucket_range(resolution: int, expected: tuple[int, int]) -> None:
    assert default_bucket_range(resolution) == expected


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError):
        make_buckets((512, 512), 768, 320)
    with pytest.raises(ValueError):
        assign_bucket(0, 10, resolution=(512, 512), min_reso=320, max_reso=768)
