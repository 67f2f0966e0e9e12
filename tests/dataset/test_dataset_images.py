"""Header parsing and image probing: sizes as Pillow sees them, and every bad file caught."""

from __future__ import annotations

import builtins
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tuilora.dataset import images
from tuilora.dataset.headers import exif_orientation, parse_header
from tuilora.dataset.images import probe_image

MakeImage = Callable[..., Path]
Draw = Callable[..., Image.Image]


def _encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mode", "params"),
    [
        ("PNG", "RGB", {}),
        ("PNG", "P", {}),
        ("JPEG", "RGB", {"quality": 80}),
        ("JPEG", "RGB", {"progressive": True}),
        ("JPEG", "L", {}),
        ("WEBP", "RGB", {"quality": 80}),
        ("WEBP", "RGB", {"lossless": True}),
        ("WEBP", "RGBA", {}),
        ("BMP", "RGB", {}),
        ("GIF", "P", {}),
    ],
)
@pytest.mark.parametrize("size", [(1, 1), (37, 5), (300, 1234)])
def test_header_size_matches_pillow(
    fmt: str, mode: str, params: dict[str, Any], size: tuple[int, int], draw: Draw
) -> None:
    data = _encode(draw(size, 1).convert(mode), fmt, **params)
    header = parse_header(data)
    with Image.open(io.BytesIO(data)) as reference:
        expected = reference.size
    assert header is not None
    assert header.format == fmt
    assert (header.width, header.height) == expected


def test_header_reads_jpeg_exif_orientation(draw: Draw) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(draw((64, 32), 2), "JPEG", exif=exif)
    header = parse_header(data)
    assert header is not None and header.orientation == 6


def test_exif_orientation_big_endian_and_garbage() -> None:
    # MM, IFD at 8, one entry: tag 0x0112, type SHORT, count 1, value 3
    tiff = (
        b"MM\x00\x2a\x00\x00\x00\x08"
        + b"\x00\x01"
        + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x03\x00\x00"
    )
    assert exif_orientation(tiff) == 3
    assert exif_orientation(b"XX") == 1
    assert exif_orientation(b"II\x2a\x00\xff\xff\x00\x00") == 1  # IFD offset past the end


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff\xda\x00\x02",
        b"RIFF\x00\x00\x00\x00WEBPXXXX",
    ],
)
def test_header_gives_up_on_garbage(data: bytes) -> None:
    assert parse_header(data) is None


def test_probe_good_image(tmp_path: Path, make_image: MakeImage) -> None:
    probe = probe_image(str(make_image(tmp_path / "a.png", (300, 200))))
    assert (probe.width, probe.height, probe.format) == (300, 200, "PNG")
    assert probe.failure is None and probe.dhash is not None and probe.digest is not None


@pytest.mark.parametrize(
    ("fmt", "ext"), [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("BMP", "bmp")]
)
def test_probe_detects_truncation(tmp_path: Path, fmt: str, ext: str, draw: Draw) -> None:
    data = _encode(draw((256, 256), 3), fmt)
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(data[: len(data) * 2 // 3])
    probe = probe_image(str(path), near_duplicates=False)
    assert probe.failure is not None and probe.failure[0] == "truncated-image"


def test_jpeg_with_trailing_bytes_after_eoi_is_fine(tmp_path: Path, draw: Draw) -> None:
    path = tmp_path / "trailer.jpg"
    path.write_bytes(_encode(draw((128, 128), 4), "JPEG") + b"camera trailer data")
    assert probe_image(str(path)).failure is None


def test_probe_empty_and_non_image(tmp_path: Path) -> None:
    (tmp_path / "zero.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("<html>not an image</html>")
    zero = probe_image(str(tmp_path / "zero.png"))
    text = probe_image(str(tmp_path / "text.png"))
    assert zero.failure == ("unreadable-image", "the file is empty (0 bytes)")
    assert text.failure is not None and text.failure[0] == "unreadable-image"


def test_probe_corrupt_body_is_caught_by_the_decode(tmp_path: Path, draw: Draw) -> None:
    data = bytearray(_encode(draw((256, 256), 5), "PNG"))
    for at in range(100, len(data) - 20, 7):  # scramble the pixel data, keep header and IEND
        data[at] ^= 0x5A
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    assert probe_image(str(path), near_duplicates=False).failure is None  # headers can't tell
    failure = probe_image(str(path), near_duplicates=True).failure
    assert failure is not None and failure[0] in ("unreadable-image", "truncated-image")


def test_probe_permission_denied(
    tmp_path: Path, make_image: MakeImage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root, where chmod does not stop a read: refuse the open instead.
    path = str(make_image(tmp_path / "locked.png", (64, 64)))
    real_open = builtins.open

    def refuse(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file) == path:
            raise PermissionError(13, "Permission denied", path)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(images, "open", refuse, raising=False)
    assert probe_image(path).failure == ("unreadable-image", "permission denied")


def test_probe_decompression_bomb_and_huge(
    tmp_path: Path, make_image: MakeImage, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(make_image(tmp_path / "big.png", (200, 100)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 15_000)  # 20,000 px is above 1x
    huge = probe_image(path)
    assert huge.failure is None and huge.dhash is None  # too big to decode for the hash
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)  # and above 2x: refused
    bomb = probe_image(path)
    assert bomb.failure is not None and bomb.failure[0] == "decompression-bomb"


def test_probe_streams_big_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, draw: Draw
) -> None:
    data = _encode(draw((256, 256), 6), "PNG")
    path = tmp_path / "big.png"
    path.write_bytes(data)
    monkeypatch.setattr(images, "IN_MEMORY_LIMIT", 1024)
    monkeypatch.setattr(images, "CHUNK", 333)
    streamed = probe_image(str(path))
    monkeypatch.undo()
    whole = probe_image(str(path))
    assert streamed == whole
    path.write_bytes(data[:-100])
    monkeypatch.setattr(images, "IN_MEMORY_LIMIT", 1024)
    cut = probe_image(str(path))
    assert cut.failure is not None and cut.failure[0] == "truncated-image"


def test_wrong_content_keeps_its_real_format(tmp_path: Path, make_image: MakeImage) -> None:
    probe = probe_image(str(make_image(tmp_path / "photo.jpg", (64, 64), fmt="PNG")))
    assert probe.format == "PNG" and probe.failure is None


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_damaged_files_never_raise(tmp_path: Path, draw: Draw, fmt: str) -> None:
    import random

    rng = random.Random(fmt)
    exif = Image.Exif()
    exif[0x0112] = 3
    params: dict[str, Any] = {"exif": exif} if fmt in ("JPEG", "WEBP") else {}
    data = _encode(draw((96, 64), 9), fmt, **params)
    path = tmp_path / "damaged.img"
    for _ in range(60):
        damaged = bytearray(data[: rng.randrange(1, len(data) + 1)])
        for _ in range(rng.randrange(0, 6)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path.write_bytes(bytes(damaged))
        probe = probe_image(str(path))  # must not raise, whatever the bytes
        assert probe.failure is not None or (probe.width, probe.height) != (None, None)
