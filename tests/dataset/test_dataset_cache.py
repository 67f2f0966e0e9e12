"""The probe cache: a second check decodes nothing, a changed file is probed again, and a
bad cache never changes a report."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tuilora.dataset import images, probecache
from tuilora.dataset.report import report_to_dict
from tuilora.dataset.scan import scan_dataset

MakeImage = Callable[..., Path]


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths decoded for a thumbnail, in this process (scans here run with workers=1)."""
    seen: list[str] = []
    real = images.decode_fingerprint

    def spy(source: Any, fmt: str) -> Any:
        seen.append(fmt)
        return real(source, fmt)

    monkeypatch.setattr(images, "decode_fingerprint", spy)
    return seen


def _scan(root: Path, **options: Any) -> dict[str, object]:
    return report_to_dict(scan_dataset(str(root), workers=1, **options))


def test_cache_file_lives_in_the_xdg_cache_folder(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert probecache.cache_dir() == str(cache_home / "tuilora" / "dataset")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # not absolute: ignored (XDG)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert probecache.cache_dir() == str(tmp_path / ".cache" / "tuilora" / "dataset")


def test_second_check_decodes_nothing(
    character_set: Path, cache_home: Path, decodes: list[str]
) -> None:
    first = _scan(character_set)
    assert len(decodes) == 12
    assert Path(probecache.cache_file(str(character_set))).is_file()
    decodes.clear()
    assert _scan(character_set) == first
    assert decodes == []


def test_a_changed_file_is_probed_again(
    character_set: Path, cache_home: Path, decodes: list[str], make_image: MakeImage
) -> None:
    _scan(character_set)
    decodes.clear()
    changed = character_set / "10_aria" / "03.png"
    make_image(changed, (640, 512), seed=99)
    os.utime(changed, ns=(1, 1_000_000_000))
    report = scan_dataset(str(character_set), workers=1)
    assert decodes == ["PNG"]
    assert (640, 512) in {(r.width, r.height) for r in report.images}


def test_same_size_and_mtime_but_another_header_is_probed_again(
    character_set: Path, cache_home: Path, decodes: list[str]
) -> None:
    _scan(character_set)
    decodes.clear()
    image = character_set / "10_aria" / "04.png"
    stat = image.stat()
    data = bytearray(image.read_bytes())
    data[16:20] = (600).to_bytes(4, "big")  # the IHDR width, same file size
    image.write_bytes(bytes(data))
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    report = scan_dataset(str(character_set), workers=1)
    assert decodes == ["PNG"]
    assert any(p.path.endswith("04.png") for p in report.problems)  # CRC now wrong


def test_headers_only_entries_do_not_satisfy_a_full_check(
    character_set: Path, cache_home: Path, decodes: list[str]
) -> None:
    quick = _scan(character_set, near_duplicates=False)
    assert decodes == []
    full = _scan(character_set)
    assert len(decodes) == 12
    decodes.clear()
    assert _scan(character_set, near_duplicates=False) == quick  # a full entry serves both
    assert _scan(character_set) == full and decodes == []


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff garbage",
        b'{"version": "something else", "entries": {}}',
        b"[1, 2, 3]",
        b'{"version": "%s", "entries": {"10_aria/00.png": [1, "x"], "a": null}}',
        b'{"version": "%s", "entries": {"10_aria/00.png": '
        b'[0, 1, "zz", 1, 1, "PNG", 1, null, "!", true, null, null]}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_a_bad_cache_file_changes_nothing(
    character_set: Path, cache_home: Path, content: bytes
) -> None:
    clean = _scan(character_set, use_cache=False)
    target = Path(probecache.cache_file(str(character_set)))
    target.parent.mkdir(parents=True, exist_ok=True)
    if b"%s" in content:
        content = content.replace(b"%s", probecache.VERSION.encode())
    target.write_bytes(content)
    assert _scan(character_set) == clean


def test_an_unwritable_cache_folder_changes_nothing(
    character_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert _scan(character_set) == _scan(character_set, use_cache=False)


def test_no_cache_reads_and_writes_nothing(character_set: Path, cache_home: Path) -> None:
    _scan(character_set, use_cache=False)
    assert not cache_home.exists()


def test_a_warm_check_on_the_process_pool_gives_the_same_report(
    character_set: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuilora.dataset import workers

    cold = _scan(character_set)
    monkeypatch.setattr(workers, "POOL_WORTH_S", 0.0)
    monkeypatch.setattr(workers, "CHUNK", 4)
    assert report_to_dict(scan_dataset(str(character_set), workers=2)) == cold
