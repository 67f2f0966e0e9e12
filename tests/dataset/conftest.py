"""Fixtures for dataset tests: structured images and sd-scripts folders built in tmp_path.

Helpers are handed out as fixtures because the suite runs with --import-mode=importlib,
where a test module cannot import a sibling module by name.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

MakeImage = Callable[..., Path]


def draw_image(size: tuple[int, int], seed: int, mode: str = "RGB") -> Image.Image:
    """A picture with structure (random filled shapes), so that perceptual hashes of two
    seeds differ and a resized copy of one seed stays close."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    width, height = size
    for _ in range(14):
        x, y = rng.randrange(width), rng.randrange(height)
        w, h = (
            rng.randrange(width // 8 + 2, width // 2 + 3),
            rng.randrange(height // 8 + 2, height // 2 + 3),
        )
        fill = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x, y, x + w, y + h), fill=fill)
        else:
            draw.rectangle((x, y, x + w, y + h), fill=fill)
    return image.convert(mode) if mode != "RGB" else image


def save_image(
    path: Path,
    size: tuple[int, int] = (512, 512),
    seed: int = 0,
    fmt: str | None = None,
    **params: object,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_image(size, seed).save(path, fmt, **params)
    return path


@pytest.fixture
def make_image() -> MakeImage:
    return save_image


@pytest.fixture
def draw() -> Callable[..., Image.Image]:
    return draw_image


@pytest.fixture
def character_set(tmp_path: Path) -> Path:
    """``tmp_path/data/10_aria``: 12 captioned 512x640 PNGs, trigger 'aria' first."""
    folder = tmp_path / "data" / "10_aria"
    for index in range(12):
        save_image(folder / f"{index:02d}.png", (512, 640), seed=index)
        extra = "smile" if index % 2 else "sword"
        (folder / f"{index:02d}.txt").write_text(f"aria, 1girl, {extra}, pose{index}\n")
    return tmp_path / "data"
