"""run_check's two outputs and exit codes, the JSON contract, the advisor summary, the docs."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from tuilora.dataset import run_check, scan_dataset
from tuilora.dataset.problems import CATALOGUE
from tuilora.dataset.report import SCHEMA, report_to_dict
from tuilora.errors import UserError

MakeImage = Callable[..., Path]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "dataset.md"


def _console(width: int = 200) -> tuple[Console, io.StringIO]:
    # Messages carry the paths as given, and pytest's tmp paths are long: the content
    # checks use a wide console, the layout check an 80-column one.
    buffer = io.StringIO()
    return Console(file=buffer, width=width, color_system=None, force_terminal=False), buffer


@pytest.fixture
def broken_set(character_set: Path, make_image: MakeImage) -> Path:
    folder = character_set / "10_aria"
    (folder / "00.txt").unlink()
    (folder / "01.txt").write_bytes(b"\xff\xfe")
    for index in range(20):  # more files of one kind than the table shows
        make_image(folder / f"tiny{index:02d}.png", (100, 100), seed=500 + index)
        (folder / f"tiny{index:02d}.txt").write_text(f"aria, [bold]tag{index}[/bold]")
    return character_set


def test_table_output_and_exit_code(broken_set: Path) -> None:
    console, buffer = _console()
    code = run_check(str(broken_set), console=console)
    text = buffer.getvalue()
    assert code == 1
    assert "caption-not-utf8" in text and "01.txt" in text
    assert "missing-caption" in text and "00.png" in text
    assert "… and 12 more (--format json lists all)" in text  # 20 tiny images, 8 shown
    assert "448x576" in text and "Trigger: aria" in text
    assert "[bold]tag0[/bold]" in text  # user text is never parsed as markup
    assert "error(s): fix them before training." in text
    narrow, narrow_buffer = _console(80)
    run_check(str(broken_set), console=narrow)
    assert max(len(line) for line in narrow_buffer.getvalue().splitlines()) <= 80


def test_clean_dataset_exits_zero(character_set: Path) -> None:
    console, buffer = _console()
    assert run_check(str(character_set), console=console) == 0
    assert "No problems found." in buffer.getvalue()
    assert "Ready to train." in buffer.getvalue()


def test_json_output_shape(broken_set: Path) -> None:
    console, buffer = _console()
    code = run_check(str(broken_set), fmt="json", console=console)
    data = json.loads(buffer.getvalue())
    assert code == 1 and data["summary"]["exit_code"] == 1
    assert list(data) == [
        "schema",
        "path",
        "reg_dir",
        "settings",
        "summary",
        "folders",
        "skipped_folders",
        "buckets",
        "tags",
        "problems",
    ]
    assert data["schema"] == SCHEMA
    assert list(data["summary"]) == [
        "folders",
        "images",
        "images_x_repeats",
        "captioned",
        "unreadable_images",
        "skipped_images",
        "reg_images",
        "errors",
        "warnings",
        "infos",
        "exit_code",
    ]
    assert data["settings"]["min_bucket_reso"] == 320 and data["settings"]["max_bucket_reso"] == 768
    assert data["folders"][0] == {
        "name": "10_aria",
        "path": str(broken_set / "10_aria"),
        "is_reg": False,
        "repeats": 10,
        "class_tokens": "aria",
        "images": 32,
        "images_x_repeats": 320,
        "captioned": 30,
        "unreadable": 0,
    }
    assert set(data["buckets"][0]) == {"width", "height", "images", "images_x_repeats"}
    assert set(data["tags"]) == {
        "captions",
        "trigger",
        "keep_tokens",
        "leading",
        "frequency",
        "single_image",
        "ss_tag_frequency",
    }
    problem = data["problems"][0]
    assert list(problem) == ["id", "severity", "path", "message", "fix", "guide"]
    assert problem["severity"] == "error"
    assert len([p for p in data["problems"] if p["id"] == "tiny-image"]) == 20


def test_json_is_deterministic(broken_set: Path) -> None:
    first = report_to_dict(scan_dataset(str(broken_set)))
    second = report_to_dict(scan_dataset(str(broken_set)))
    assert first == second


def test_run_check_user_errors(tmp_path: Path, character_set: Path) -> None:
    with pytest.raises(UserError, match="format 'yaml' is not one of table, json"):
        run_check(str(character_set), fmt="yaml")
    with pytest.raises(UserError, match="no such dataset directory"):
        run_check(str(tmp_path / "absent"))


def test_docs_list_every_problem_id_and_a_valid_example() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for problem_id, kind in CATALOGUE.items():
        assert re.search(rf"\| `{problem_id}` \| {kind.severity} \|", text), problem_id
    example = re.search(r"```json\n(.*?)\n```", text, re.S)
    assert example is not None
    data = json.loads(example.group(1))
    assert data["schema"] == SCHEMA
