"""End-to-end scans of small datasets built in tmp_path: every problem named, none fatal."""

from __future__ import annotations

import builtins
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tuilora.dataset import captions, workers
from tuilora.dataset.model import DatasetReport
from tuilora.dataset.problems import CATALOGUE
from tuilora.dataset.scan import scan_dataset
from tuilora.errors import UserError

MakeImage = Callable[..., Path]


def ids(report: DatasetReport) -> dict[str, list[str]]:
    """problem id -> the names (last path part) it was reported for."""
    found: dict[str, list[str]] = {}
    for item in report.problems:
        found.setdefault(item.id, []).append(os.path.basename(item.path))
    return found


def test_clean_character_set(character_set: Path) -> None:
    report = scan_dataset(str(character_set))
    assert report.problems == ()
    (folder,) = report.folders
    assert (folder.name, folder.repeats, folder.images, folder.captioned) == ("10_aria", 10, 12, 12)
    assert folder.class_tokens == "aria"
    assert report.total_images_x_repeats == 120
    assert [(b.width, b.height, b.images, b.images_x_repeats) for b in report.buckets] == [
        (448, 576, 12, 120)
    ]
    assert report.tags.trigger == ("1girl", "aria")
    assert report.tags.leading[0].tags == ("aria",)
    assert not report.has_errors


def test_broken_dataset_scenario(tmp_path: Path, make_image: MakeImage) -> None:
    """DESIGN scenario 7: a folder without repeats, a corrupt JPEG, a Latin-1 caption, a
    0-byte file: each named with what to do, nothing crashes."""
    root = tmp_path / "data"
    good = root / "10_aria"
    for index in range(10):
        make_image(good / f"{index}.png", (512, 512), seed=index)
        (good / f"{index}.txt").write_text("aria, 1girl")
    make_image(root / "aria" / "x.png", (512, 512), seed=50)
    jpeg = make_image(good / "corrupt.jpg", (512, 512), seed=51, fmt="JPEG")
    jpeg.write_bytes(jpeg.read_bytes()[:-2000])
    (good / "corrupt.txt").write_text("aria")
    make_image(good / "latin.png", (512, 512), seed=52)
    (good / "latin.txt").write_bytes("aria, café".encode("latin-1"))
    (good / "empty.png").write_bytes(b"")
    (good / "empty.txt").write_text("aria")
    report = scan_dataset(str(root))
    found = ids(report)
    assert found["bad-folder-name"] == ["aria"]
    assert found["truncated-image"] == ["corrupt.jpg"]
    assert found["caption-not-utf8"] == ["latin.txt"]
    assert found["unreadable-image"] == ["empty.png"]
    assert report.has_errors
    rename = next(p for p in report.problems if p.id == "bad-folder-name")
    assert rename.fix.startswith(f"rename it: mv '{root / 'aria'}' '{root / '1_aria'}'")
    assert rename.guide == ("G-START-EPOCHS",)
    latin = next(p for p in report.problems if p.id == "caption-not-utf8")
    assert "iconv" in latin.fix and str(good / "latin.txt") in latin.message
    assert all(item.message and item.fix and "\n" not in item.message for item in report.problems)


def test_caption_problems(tmp_path: Path, make_image: MakeImage) -> None:
    folder = tmp_path / "2_kai"
    for name in ("a", "b", "c", "d", "e", "f"):
        make_image(folder / f"{name}.png", (512, 512), seed=ord(name))
    (folder / "a.txt").write_text("kai, boy")
    (folder / "b.txt").write_text("")  # 0 bytes: sd-scripts asserts
    (folder / "c.txt").write_text("\nkai, boy")  # first line blank
    (folder / "d.txt").write_bytes(b"\xef\xbb\xbfkai, boy")
    (folder / "e.txt").write_text("kai, boy\nsecond line")
    (folder / "orphan.txt").write_text("kai")
    report = scan_dataset(str(tmp_path))
    found = ids(report)
    assert found["empty-caption"] == ["b.txt"]
    assert found["blank-caption"] == ["c.txt"]
    assert found["caption-bom"] == ["d.txt"]
    assert found["multiline-caption"] == ["c.txt", "e.txt"]
    assert found["missing-caption"] == ["f.png"]
    assert found["orphan-caption"] == ["orphan.txt"]
    missing = next(p for p in report.problems if p.id == "missing-caption")
    assert "class token 'kai'" in missing.message
    assert report.folders[0].captioned == 3  # a, d, e have text on their first line


def test_folder_without_any_caption_is_one_info(tmp_path: Path, make_image: MakeImage) -> None:
    for index in range(12):
        make_image(tmp_path / "1_aria" / f"{index}.png", (512, 512), seed=index)
    report = scan_dataset(str(tmp_path))
    assert ids(report) == {"no-captions": ["1_aria"]}
    assert report.tags.trigger == ("aria",)  # every image trains with the class token


def test_image_checks(tmp_path: Path, make_image: MakeImage) -> None:
    folder = tmp_path / "1_x"
    make_image(folder / "tiny.png", (200, 300), seed=1)
    make_image(folder / "wide.png", (2100, 500), seed=2)
    make_image(folder / "named.jpg", (512, 512), seed=3, fmt="PNG")
    make_image(folder / "copy_a.png", (512, 512), seed=4)
    shutil.copy(folder / "copy_a.png", folder / "copy_b.png")
    near = make_image(folder / "near_a.png", (640, 512), seed=5)
    with Image.open(near) as original:  # a half-size, re-compressed copy
        original.resize((320, 256)).save(folder / "near_b.jpg", quality=70)
    report = scan_dataset(str(tmp_path), subject="style")
    found = ids(report)
    assert found["tiny-image"] == ["tiny.png"]
    assert found["extreme-aspect"] == ["wide.png"]
    assert found["wrong-extension"] == ["named.jpg"]
    assert found["duplicate-image"] == ["copy_b.png"]
    assert found["near-duplicate"] == ["near_b.jpg"]
    assert found["too-few-images"] == [tmp_path.name]
    wrong = next(p for p in report.problems if p.id == "wrong-extension")
    assert wrong.fix == f"rename it to {folder / 'named.png'}"


def test_exif_rotation_is_flagged(tmp_path: Path, make_image: MakeImage) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    make_image(tmp_path / "1_x" / "phone.jpg", (640, 480), seed=1, exif=exif)
    assert "exif-rotated" in ids(scan_dataset(str(tmp_path)))


@pytest.mark.parametrize(
    ("subject", "count", "problem", "guide"),
    [
        ("character", 3, "too-few-images", ("G-NEEDS-IMAGES", "G-RARE", "G-RARE-GACHA")),
        ("vehicle", 9, "too-few-images", ("G-NEEDS-IMAGES", "G-RARE", "G-RARE-GACHA")),
        ("concept", 49, "too-few-images", ("G-NEEDS-IMAGES",)),
        ("character", 51, "too-many-images", ("G-NEEDS-IMAGES",)),
        ("character", 10, None, ()),
    ],
)
def test_image_count_for_the_subject(
    tmp_path: Path,
    make_image: MakeImage,
    subject: str,
    count: int,
    problem: str | None,
    guide: tuple[str, ...],
) -> None:
    folder = tmp_path / "1_subject"
    make_image(folder / "0.png", (512, 512), seed=0)
    for index in range(1, count):  # copies are cheap to make; they are not what's tested
        os.link(folder / "0.png", folder / f"{index}.png")
    report = scan_dataset(str(tmp_path), subject=subject, near_duplicates=False)
    counted = [p for p in report.problems if p.id in ("too-few-images", "too-many-images")]
    if problem is None:
        assert counted == []
    else:
        assert [(p.id, p.guide) for p in counted] == [(problem, guide)]


def test_images_in_root_and_zero_images(tmp_path: Path, make_image: MakeImage) -> None:
    make_image(tmp_path / "loose.png", (512, 512))
    assert ids(scan_dataset(str(tmp_path))) == {"images-in-root": [tmp_path.name]}
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ids(scan_dataset(str(empty))) == {"no-images": ["empty"]}


def test_passing_the_repeats_folder_itself(tmp_path: Path, make_image: MakeImage) -> None:
    make_image(tmp_path / "10_aria" / "a.png", (512, 512))
    report = scan_dataset(str(tmp_path / "10_aria"))
    (item,) = report.problems
    assert item.id == "images-in-root"
    assert f"tuilora dataset check '{tmp_path}'" in item.fix


def test_folder_names_as_sd_scripts_parses_them(tmp_path: Path, make_image: MakeImage) -> None:
    for name in ("10", "0_zero", "x_10", "3_two_words", "logs"):
        (tmp_path / name).mkdir()
    for name in ("10", "0_zero", "x_10", "3_two_words"):
        make_image(tmp_path / name / "a.png", (512, 512), seed=len(name))
    report = scan_dataset(str(tmp_path), near_duplicates=False)
    assert sorted(ids(report)["bad-folder-name"]) == ["0_zero", "x_10"]
    folders = {f.name: (f.repeats, f.class_tokens) for f in report.folders}
    assert folders == {"10": (10, ""), "3_two_words": (3, "two_words")}
    # sd-scripts skips misnamed folders: they are audited as their suggested rename would
    # train them, but counted nowhere
    skipped = {f.name: (f.repeats, f.class_tokens, f.images) for f in report.skipped_folders}
    assert skipped == {"0_zero": (1, "zero", 1), "x_10": (1, "x_10", 1)}
    assert report.total_images == 2 and report.skipped_images == 2
    assert set(report.tags.ss_tag_frequency) == {"10", "3_two_words"}
    fixes = {os.path.basename(p.path): p.fix for p in report.problems if p.id == "bad-folder-name"}
    assert f"'{tmp_path / '1_zero'}'" in fixes["0_zero"]
    assert f"'{tmp_path / '1_x_10'}'" in fixes["x_10"]


def test_regularization_dir(tmp_path: Path, make_image: MakeImage, character_set: Path) -> None:
    reg = tmp_path / "reg"
    for index in range(30):
        make_image(reg / "5_person" / f"{index}.png", (512, 512), seed=1000 + index)
    report = scan_dataset(str(character_set), reg_dir=str(reg), near_duplicates=False)
    assert [(f.name, f.is_reg, f.images) for f in report.folders] == [
        ("10_aria", False, 12),
        ("5_person", True, 30),
    ]
    assert report.total_images == 12 and report.reg_images == 30
    assert ids(report) == {"reg-unused": ["reg"]}  # 150 reg x repeats > 120; no caption nags
    assert report.tags.ss_tag_frequency["5_person"] == {"person": 30}


def test_awkward_file_system_cases(tmp_path: Path, make_image: MakeImage) -> None:
    folder = tmp_path / "3_ümlaut name"
    make_image(folder / "ä b c.png", (512, 512), seed=1)
    (folder / "ä b c.txt").write_text("ümlaut, 日本")
    make_image(folder / ".hidden.png", (512, 512), seed=2)  # sd-scripts' glob skips it
    (folder / "._resource.png").write_bytes(b"\x00\x05")  # macOS junk, hidden too
    (folder / "loop.png").symlink_to(folder / "loop.png")
    (folder / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to(folder)  # a directory loop
    make_image(folder / "upper.Png", (512, 512), seed=3)
    make_image(folder / "anim.gif", (64, 64), seed=4, fmt="GIF")
    (tmp_path / "3_link").symlink_to(folder)  # the same folder twice
    (tmp_path / "9_loop").symlink_to(tmp_path / "9_loop")
    report = scan_dataset(str(tmp_path), near_duplicates=False)
    found = ids(report)
    assert found["broken-link"] == ["9_loop"]
    # sd-scripts' glob takes a broken link named like an image for one, and stops on it
    assert sorted(found["unreadable-image"]) == ["dangling.png", "loop.png"]
    assert found["nested-folder"] == ["sub"]
    assert sorted(found["ignored-extension"]) == ["anim.gif", "upper.Png"]
    assert found["duplicate-folder"] == ["3_ümlaut name"]
    assert [f.name for f in report.folders] == ["3_link"]
    assert report.folders[0].images == 1 and report.folders[0].captioned == 1
    assert report.tags.trigger == ()  # one caption only


def test_non_utf8_file_name(tmp_path: Path, make_image: MakeImage) -> None:
    folder = tmp_path / "1_x"
    image = make_image(folder / "a.png", (512, 512))
    bad = os.path.join(os.fsencode(folder), b"caf\xe9.png")
    os.rename(image, bad)
    report = scan_dataset(str(tmp_path))
    bad_names = [p for p in report.problems if p.id == "bad-filename"]
    assert len(bad_names) == 1 and "caf\ufffd.png" in bad_names[0].path
    for item in report.problems:
        item.message.encode("utf-8")  # printable: no lone surrogates left


def test_permission_denied_caption_and_folder(
    tmp_path: Path, character_set: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root ignores chmod, so refuse the reads the way the OS would for another user.
    locked = str(character_set / "10_aria" / "03.txt")
    real_open = builtins.open

    def refuse(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(captions, "open", refuse, raising=False)
    (character_set / "2_closed").mkdir()
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if str(path).endswith("2_closed"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = ids(scan_dataset(str(character_set)))
    assert found["unreadable-caption"] == ["03.txt"]
    assert found["unreadable-folder"] == ["2_closed"]
    assert "empty-folder" not in found  # one problem per cause


def test_process_pool_gives_the_same_report(
    character_set: Path, make_image: MakeImage, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = character_set / "10_aria"
    for index in range(12, 80):
        make_image(folder / f"{index:02d}.jpg", (96, 128), seed=index, fmt="JPEG")
    make_image(folder / "copy.png", (256, 320), seed=3)  # near and exact matches too
    (folder / "twin.png").write_bytes((folder / "05.png").read_bytes())
    single = scan_dataset(str(character_set), workers=1, use_cache=False)
    monkeypatch.setattr(workers, "POOL_WORTH_S", 0.0)
    calls: list[tuple[int, int]] = []
    pooled = scan_dataset(
        str(character_set), workers=2, use_cache=False, progress=lambda d, t: calls.append((d, t))
    )
    assert pooled == single
    assert calls[-1] == (82, 82) and len(calls) == 3  # chunks of 32: 32, 64, 82
    assert {"duplicate-image", "near-duplicate"} <= {p.id for p in pooled.problems}


def test_pool_started_from_a_thread_gives_the_same_report(
    character_set: Path, make_image: MakeImage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wizard scans in a worker thread, where fork() is unsafe: the pool then starts
    its workers fresh (forkserver) and the report is the same."""
    folder = character_set / "10_aria"
    for index in range(12, 70):
        make_image(folder / f"{index:02d}.jpg", (96, 128), seed=index, fmt="JPEG")
    single = scan_dataset(str(character_set), workers=1, use_cache=False)
    monkeypatch.setattr(workers, "POOL_WORTH_S", 0.0)
    contexts: list[str] = []
    real_context = workers._context

    def context() -> Any:
        chosen = real_context()
        contexts.append(chosen.get_start_method())
        return chosen

    monkeypatch.setattr(workers, "_context", context)
    found: list[DatasetReport] = []
    thread = threading.Thread(
        target=lambda: found.append(scan_dataset(str(character_set), workers=2, use_cache=False))
    )
    thread.start()
    thread.join()
    assert contexts == ["forkserver"]
    assert found == [single]


def test_the_later_copy_is_the_one_to_delete(tmp_path: Path, make_image: MakeImage) -> None:
    folder = tmp_path / "1_x"
    original = make_image(folder / "photo.png", (512, 512), seed=1)
    copy = folder / "photo (1).png"  # sorts before the original
    copy.write_bytes(original.read_bytes())
    os.utime(original, ns=(1, 1_000_000_000))
    os.utime(copy, ns=(1, 2_000_000_000))
    (dup,) = [p for p in scan_dataset(str(tmp_path)).problems if p.id == "duplicate-image"]
    assert dup.path == str(copy) and dup.fix.startswith(f"delete {copy}, the later copy")
    # the same age: the longer name is the copy ("x (1).png", "copy of x.png")
    os.utime(copy, ns=(1, 1_000_000_000))
    (dup,) = [p for p in scan_dataset(str(tmp_path)).problems if p.id == "duplicate-image"]
    assert dup.path == str(copy)
    # an older "copy" is the original: the newer file is named, whatever its name
    os.utime(original, ns=(1, 3_000_000_000))
    (dup,) = [p for p in scan_dataset(str(tmp_path)).problems if p.id == "duplicate-image"]
    assert dup.path == str(original)


def test_unreadable_images_and_skipped_folders_are_not_counted(
    character_set: Path, make_image: MakeImage
) -> None:
    (character_set / "10_aria" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    for index in range(3):
        make_image(character_set / "aria_noreps" / f"{index}.png", (512, 512), seed=70 + index)
    report = scan_dataset(str(character_set))
    (folder,) = report.folders
    assert (folder.images, folder.unreadable, folder.images_x_repeats) == (12, 1, 120)
    assert report.total_images == 12 and report.total_images_x_repeats == 120
    assert [f.name for f in report.skipped_folders] == ["aria_noreps"]
    assert report.skipped_images == 3
    assert sum(b.images for b in report.buckets) == 12
    assert set(report.tags.ss_tag_frequency) == {"10_aria"}
    assert report.tags.captions == 12
    rename = next(p for p in report.problems if p.id == "bad-folder-name")
    assert "not counted" in rename.message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subject": "pony"}, "subject 'pony' is not one of character, style, concept, vehicle"),
        ({"resolution": 10}, "resolution 10 is out of range"),
        ({"caption_extension": "txt"}, "must start with a dot"),
        ({"keep_tokens": -1}, "keep_tokens -1"),
        ({"min_bucket_reso": 640}, "min_bucket_reso 640 is above the resolution 512"),
        ({"max_bucket_reso": 400}, "max_bucket_reso 448 is below the resolution 512"),
        ({"reg_dir": "/nonexistent/reg"}, "/nonexistent/reg: no such regularization directory"),
    ],
)
def test_user_errors(character_set: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        scan_dataset(str(character_set), **kwargs)


def test_path_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such dataset directory"):
        scan_dataset(str(tmp_path / "missing"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match="is a file, not a directory"):
        scan_dataset(str(tmp_path / "file.txt"))


def test_every_problem_id_reported_is_catalogued(tmp_path: Path, make_image: MakeImage) -> None:
    make_image(tmp_path / "1_a" / "a.png", (100, 100))
    for item in scan_dataset(str(tmp_path)).problems:
        assert CATALOGUE[item.id].severity == item.severity
