"""Captions read as sd-scripts reads them; tag statistics as ss_tag_frequency counts them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuilora.dataset.captions import decode_caption, leading_tags, read_caption, split_tags
from tuilora.dataset.tags import CaptionUse, tag_report


@pytest.mark.parametrize(
    ("raw", "text", "failure", "bom", "extra"),
    [
        (b"aria, 1girl\n", "aria, 1girl", None, False, 0),
        (b"  aria , smile  \r\nsecond line\r\n\r\n", "aria , smile", None, False, 1),
        (b"\xef\xbb\xbfaria, hat", "aria, hat", None, True, 0),
        (b"\n\naria", "", None, False, 1),  # sd-scripts trains with the empty first line
        (b"   \n", "", None, False, 0),
        (b"", None, "empty-caption", False, 0),
        ("aria, café".encode("latin-1"), None, "caption-not-utf8", False, 0),
        ("ariа, 日本語".encode(), "ariа, 日本語", None, False, 0),
        (b"a\rb", "a", None, False, 1),  # a lone CR ends a line in text mode too
    ],
)
def test_decode_caption(
    raw: bytes, text: str | None, failure: str | None, bom: bool, extra: int
) -> None:
    read = decode_caption(raw)
    assert read.text == text
    assert (read.failure[0] if read.failure else None) == failure
    assert read.bom is bom
    assert read.extra_lines == extra


def test_not_utf8_detail_names_the_byte() -> None:
    read = decode_caption("aria, café".encode("latin-1"))
    assert read.failure == ("caption-not-utf8", "byte 0xe9 at offset 9 is not UTF-8")


def test_read_caption_missing_and_directory(tmp_path: Path) -> None:
    assert not read_caption(str(tmp_path / "nope.txt")).exists
    (tmp_path / "dir.txt").mkdir()
    read = read_caption(str(tmp_path / "dir.txt"))
    assert read.exists and read.failure is not None and read.failure[0] == "unreadable-caption"


def test_split_tags_like_ss_tag_frequency() -> None:
    assert split_tags(" Aria,1girl,, smile , aria ,") == ["aria", "1girl", "smile", "aria"]


def test_leading_tags_like_keep_tokens() -> None:
    assert leading_tags(" Aria, 1girl, smile ", 2) == ("Aria", "1girl")
    assert leading_tags("aria", 3) == ("aria",)
    assert leading_tags("aria, x", 0) == ()


def _uses() -> list[CaptionUse]:
    return [
        CaptionUse("10_aria", 10, False, "aria, 1girl, smile"),
        CaptionUse("10_aria", 10, False, "aria, 1girl, Smile, smile"),
        CaptionUse("10_aria", 10, False, "aria, 1girl, sword"),
        CaptionUse("10_aria", 10, False, "1girl, aria, hat"),
        CaptionUse("10_aria", 10, False, None),  # unusable caption file: not counted
        CaptionUse("2_extra", 2, False, "aria, 1girl, night"),
        CaptionUse("1_person", 1, True, "1girl, person"),  # regularization
    ]


def test_ss_tag_frequency_is_per_folder_unweighted_and_counts_repeats_in_a_caption() -> None:
    report = tag_report(
        _uses(), keep_tokens=1, folders=["10_aria", "2_extra", "1_person", "3_empty"]
    )
    assert report.ss_tag_frequency == {
        "10_aria": {"aria": 4, "1girl": 4, "smile": 3, "sword": 1, "hat": 1},
        "2_extra": {"aria": 1, "1girl": 1, "night": 1},
        "1_person": {"1girl": 1, "person": 1},
        "3_empty": {},
    }


def test_tag_table_trigger_single_and_weighted() -> None:
    report = tag_report(_uses(), keep_tokens=1)
    assert report.captions == 5  # training captions only; reg and the unusable one left out
    table = {tag.tag: tag for tag in report.tags}
    assert (table["aria"].images, table["aria"].count, table["aria"].weighted) == (5, 5, 42)
    assert (table["smile"].images, table["smile"].count, table["smile"].weighted) == (2, 3, 30)
    assert "person" not in table
    assert report.trigger == ("1girl", "aria")  # both in 5 of 5 (>= 90%); ties by name
    assert report.single_image == ("hat", "night", "sword")
    assert report.leading[0].tags == ("aria",) and report.leading[0].images == 4
    assert [tag.tag for tag in report.tags[:2]] == ["1girl", "aria"]


def test_trigger_needs_ninety_percent() -> None:
    uses = [CaptionUse("1_x", 1, False, f"aria, tag{i}") for i in range(9)]
    uses.append(CaptionUse("1_x", 1, False, "tag9"))
    assert tag_report(uses, 1).trigger == ("aria",)  # 9 of 10 = 90%
    uses.append(CaptionUse("1_x", 1, False, "tag10"))
    assert tag_report(uses, 1).trigger == ()  # 9 of 11 < 90%


def test_one_caption_has_no_trigger() -> None:
    assert tag_report([CaptionUse("1_x", 1, False, "aria, hat")], 1).trigger == ()


def test_caption_cut_inside_a_character_is_not_called_non_utf8() -> None:
    raw = "aria, café".encode()[:-1]  # the read limit fell inside "é"
    assert decode_caption(raw, cut=True).text == "aria, caf"
    assert decode_caption(raw).failure is not None  # a file that really ends there is broken
