"""The adapter from a dataset scan to the advisor's facts (it lives in the advisor, so the
dataset package never imports the advisor)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tuilora.advisor.dataset_facts import dataset_facts, facts_from_report
from tuilora.dataset.scan import scan_dataset


def _image(path: Path, size: tuple[int, int], caption: str | None = "aria, smile") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 80, 40)).save(path)
    if caption is not None:
        path.with_suffix(".txt").write_text(caption, encoding="utf-8")


def test_facts_from_a_scan(tmp_path: Path) -> None:
    """Training folders give the counts (regularization folders stay out of them) and the
    scan's errors and warnings come along; dataset_facts (no near-duplicate hashing) agrees
    with a full scan on everything but info notes."""
    data, reg = tmp_path / "data", tmp_path / "reg"
    for index in range(6):
        _image(data / "10_aria" / f"{index:02d}.png", (512, 640))
    _image(data / "10_aria" / "nocap.png", (512, 640), caption=None)
    _image(reg / "1_person" / "a.png", (512, 512))
    report = scan_dataset(str(data), reg_dir=str(reg))
    facts = facts_from_report(report)
    (folder,) = facts.folders
    assert (folder.name, folder.repeats, folder.images) == ("aria", 10, 7)
    assert (facts.images, facts.image_repeats) == (7, 70)
    assert any(p.id == "missing-caption" for p in facts.problems)
    quick = dataset_facts(str(data))
    assert quick.folders == facts.folders
    serious = {p for p in facts.problems if p.severity != "info"}
    assert {p for p in quick.problems if p.severity != "info"} == serious
