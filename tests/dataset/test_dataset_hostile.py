"""Hostile and broken files in a dataset (issue 17, item 3): each one is named in a one-line
finding, nothing raises, nothing allocates the picture a lying header declares, and the
counts leave out what cannot be trained."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tuilora.cli import main
from tuilora.dataset.model import DatasetReport
from tuilora.dataset.scan import scan_dataset

MakeImage = Callable[..., Path]
GOOD = 10


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")


def lying_png(width: int, height: int) -> bytes:
    """A well-formed PNG whose header declares ``width``×``height`` RGB pixels and whose
    data holds one row: what a decompression-bomb probe looks like."""
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    row = zlib.compress(b"\x00" + b"\x7f" * 30)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", row)
        + _png_chunk(b"IEND", b"")
    )


@pytest.fixture
def hostile_set(tmp_path: Path, make_image: MakeImage) -> Path:
    root = tmp_path / "data"
    folder = root / "10_aria"
    for index in range(GOOD):
        make_image(folder / f"{index:02d}.png", (512, 512), seed=index)
        (folder / f"{index:02d}.txt").write_text(f"aria, 1girl, pose{index}")
    rng = random.Random(17)
    noise = bytes(rng.randrange(256) for _ in range(4096))
    (folder / "noise.png").write_bytes(noise)  # random bytes as an image
    (folder / "noise.jpg").write_bytes(b"\xff\xd8\xff" + noise)  # a JPEG start, then garbage
    for name, fmt in (("cut.png", "PNG"), ("cut.jpg", "JPEG"), ("cut.webp", "WEBP")):
        whole = make_image(folder / name, (512, 512), seed=60, fmt=fmt)
        whole.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    (folder / "bomb.png").write_bytes(lying_png(50_000, 50_000))
    (folder / "wide.png").write_bytes(lying_png(50_000, 1_000))
    make_image(folder / "garbled.png", (512, 512), seed=61)
    (folder / "garbled.txt").write_bytes(noise[:512])  # random bytes as a caption
    make_image(folder / "halfway.png", (512, 512), seed=62)
    (folder / "halfway.txt").write_bytes("aria, café".encode()[:-1])  # cut inside 'é'
    make_image(folder / "novel.png", (512, 512), seed=63)
    (folder / "novel.txt").write_bytes(b"aria, " + b"x" * (10 * 1024 * 1024))  # 10 MB
    (folder / "folder.png").mkdir()  # a directory named like an image
    (folder / "loop.png").symlink_to(folder / "loop.png")  # an image behind a link loop
    (folder / "ping.jpg").symlink_to(folder / "pong.jpg")
    (folder / "pong.jpg").symlink_to(folder / "ping.jpg")
    latin = os.path.join(os.fsencode(folder), b"caf\xe9")  # a Latin-1 file name
    make_image(Path(os.fsdecode(latin + b".png")), (512, 512), seed=64)
    Path(os.fsdecode(latin + b".txt")).write_bytes(b"aria, cafe")
    other = Path(os.fsdecode(os.path.join(os.fsencode(root), b"2_\xe9t\xe9")))
    make_image(other / "summer.png", (512, 512), seed=65)
    (other / "summer.txt").write_text("aria, summer")
    return root


def _named(report: DatasetReport) -> dict[str, set[str]]:
    """file name -> the problem ids that name it."""
    found: dict[str, set[str]] = {}
    for item in report.problems:
        found.setdefault(os.path.basename(item.path), set()).add(item.id)
    return found


def test_every_hostile_file_is_one_finding_and_none_is_counted(hostile_set: Path) -> None:
    report = scan_dataset(str(hostile_set))
    named = _named(report)
    assert named["noise.png"] == {"unreadable-image"}
    assert named["noise.jpg"] == {"unreadable-image"}
    assert named["cut.png"] == named["cut.jpg"] == named["cut.webp"] == {"truncated-image"}
    assert named["bomb.png"] == {"decompression-bomb"}
    assert named["wide.png"] == {"truncated-image"}  # too few bytes for its header's size
    assert named["garbled.txt"] == {"caption-not-utf8"}
    assert named["halfway.txt"] == {"caption-not-utf8"}
    assert named["novel.txt"] == {"long-caption"}
    assert named["folder.png"] == {"unreadable-image"}
    assert named["loop.png"] == named["ping.jpg"] == named["pong.jpg"] == {"unreadable-image"}
    assert named["caf\ufffd.png"] == named["caf\ufffd.txt"] == {"bad-filename"}
    for item in report.problems:
        assert item.message and "\n" not in item.message and "\n" not in item.fix
        item.message.encode("utf-8")  # printable: no lone surrogates left
    # counted: the good images, and the readable ones whose captions are bad
    (aria, summer) = report.folders
    assert aria.images == GOOD + 4 and summer.images == 1
    assert aria.unreadable == 11  # noise x2, cut x3, bomb, wide, a folder, three links
    assert report.total_images == GOOD + 5
    assert report.total_images_x_repeats == (GOOD + 4) * 10 + 2


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out + err


def test_hostile_set_through_the_cli(hostile_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(["dataset", "check", str(hostile_set)], capsys)
    assert code == 1 and "Traceback" not in text
    assert "cannot be read" in text and "cut short" in text
    assert "Not counted: 11 image(s) that cannot be read" in text
    code, text = _run(["dataset", "check", str(hostile_set), "--format", "json"], capsys)
    data = json.loads(text)
    assert code == 1 and data["summary"]["exit_code"] == 1
    assert data["summary"]["images"] == GOOD + 5 and data["summary"]["unreadable_images"] == 11
    code, text = _run(
        ["advise", "--category", "C", "--vram", "12", "--dataset", str(hostile_set)], capsys
    )
    assert code == 0 and "Traceback" not in text, text
    assert "cut short" in text  # dataset errors become the advice's warnings


def test_lying_headers_allocate_nothing_large(tmp_path: Path, make_image: MakeImage) -> None:
    """A 50,000-px-wide PNG header: reported without the decoder allocating the picture
    (50,000 x 1,000 RGBA would be 200 MB, 50,000 x 50,000 10 GB). Measured as the growth
    of the process's peak address space (VmPeak) over probing an honest image first."""
    for name, (width, height) in {
        "bomb.png": (50_000, 50_000),
        "wide.png": (50_000, 1_000),
    }.items():
        (tmp_path / name).write_bytes(lying_png(width, height))
    honest = make_image(tmp_path / "honest.png", (512, 512))
    script = (
        "import re, sys\n"
        "from tuilora.dataset.images import probe_image\n"
        "def peak():\n"
        "    status = open('/proc/self/status').read()\n"
        "    return int(re.search(r'VmPeak:\\s+(\\d+)', status).group(1)) // 1024\n"
        "probe_image(sys.argv[1])\n"
        "before = peak()\n"
        "for name in sys.argv[2:]:\n"
        "    print(probe_image(name).failure[0])\n"
        "print(peak() - before)\n"
    )
    paths = [str(honest), str(tmp_path / "bomb.png"), str(tmp_path / "wide.png")]
    done = subprocess.run(
        [sys.executable, "-c", script, *paths], capture_output=True, text=True, check=True
    )
    bomb, wide, growth_mb = done.stdout.split()
    assert (bomb, wide) == ("decompression-bomb", "truncated-image")
    assert int(growth_mb) < 50


def test_a_real_wide_image_is_still_read(tmp_path: Path, make_image: MakeImage) -> None:
    """The size check that stops lying headers leaves honest files alone."""
    make_image(tmp_path / "1_x" / "strip.png", (6000, 40), seed=3)
    report = scan_dataset(str(tmp_path))
    assert report.total_images == 1
    assert {p.id for p in report.problems} >= {"extreme-aspect"}
    assert not report.has_errors


def test_advise_counts_neither_a_skipped_folder_nor_a_broken_image(
    character_set: Path, make_image: MakeImage, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16: `advise --dataset` listed a folder without the N_ prefix as `1_<name>` and
    counted it, and counted a broken image."""
    for index in range(3):
        make_image(character_set / "aria_noreps" / f"{index}.png", (512, 512), seed=80 + index)
    (character_set / "10_aria" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    base = ["advise", "--category", "C", "--vram", "12", "--dataset", str(character_set)]
    code, text = _run([*base, "--format", "json"], capsys)
    assert code == 0
    result = json.loads(text)
    assert result["plan"]["folders"] == [{"name": "aria", "repeats": 10, "images": 12}]
    assert result["plan"]["steps_per_epoch"] == 120
    messages = " ".join(w["message"] for w in result["warnings"])
    assert (
        "aria_noreps: sd-scripts skips this folder and its 3 image(s), which are not counted"
        in (messages)
    )
    assert "broken.png cannot be read" in messages and "not counted" in messages
    code, text = _run(base, capsys)
    assert code == 0 and "1_aria_noreps" not in text.split("Dataset error")[0]
