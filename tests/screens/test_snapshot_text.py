"""What the stored snapshots say as text: nothing a user must copy is cut, focus reads.

The SVG snapshots (``__snapshots__``) are the screens at 80x24 and 120x40; this test reads
their text back (each ``<text>`` element at its column) and checks, on every 80x24 screen,
that no path or command ends in or contains "…" (a cut), and on the NO_COLOR ones that the
focus bar and the selection marker are there as characters.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

SNAPSHOTS = Path(__file__).with_name("__snapshots__")
CELL_PX = 12.2  # the width of one terminal cell in Textual's SVG export
_TEXT = re.compile(
    r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+"[^>]*'
    r'clip-path="url\(#[\w-]+-line-(\d+)\)">([^<]*)</text>'
)
_WIDTH = re.compile(r'<clipPath id="[\w-]+-line-0">\s*<rect x="0" y="[\d.]+" width="([\d.]+)"')
#: A word that is a path or a command line: it must never be shown cut.
_PATHLIKE = re.compile(r"[/~\\]|^--|=|\.(safetensors|toml|txt|jsonl|log|sh|png)\b|^tuilora$")


def screen_lines(svg: Path) -> tuple[int, list[str]]:
    """(columns, the lines of text) of a snapshot."""
    content = svg.read_text(encoding="utf-8")
    width = _WIDTH.search(content)
    columns = round(float(width.group(1)) / CELL_PX) if width else 0
    rows: dict[int, dict[int, str]] = {}
    for x, line, text in _TEXT.findall(content):
        column = round(float(x) / CELL_PX)
        rows.setdefault(int(line), {})[column] = html.unescape(text).replace("\xa0", " ")
    lines = []
    for number in range(max(rows, default=-1) + 1):
        cells: list[str] = []
        for column, text in sorted(rows.get(number, {}).items()):
            cells.extend(" " * (column - len(cells)))
            cells[column : column + len(text)] = list(text)
        lines.append("".join(cells))
    return columns, lines


def snapshots() -> list[Path]:
    return sorted(SNAPSHOTS.glob("*/*.svg"))


def cut_words(line: str) -> list[str]:
    """Path- or command-like words that hold an ellipsis."""
    words = re.split(r"[\s│╭╮╰╯─▌▐█▀▄]+", line)
    return [w for w in words if "…" in w and _PATHLIKE.search(w.replace("…", ""))]


def test_there_are_snapshots_at_both_sizes() -> None:
    sizes = {screen_lines(svg)[0] for svg in snapshots()}
    assert {80, 120} <= sizes, sizes


@pytest.mark.parametrize("svg", snapshots(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_nothing_a_user_copies_is_cut_at_80x24(svg: Path) -> None:
    columns, lines = screen_lines(svg)
    if columns != 80:
        pytest.skip("only the 80x24 screens are scanned")
    cut = [(number, word) for number, line in enumerate(lines) for word in cut_words(line)]
    assert not cut, f"cut paths or commands (line, word): {cut}"


@pytest.mark.parametrize(
    "svg",
    [svg for svg in snapshots() if "no_color" in svg.stem],
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_focus_and_selection_read_without_colour(svg: Path) -> None:
    text = "\n".join(screen_lines(svg)[1])
    assert "▌" in text, "no focus bar"
    if "monitor" not in svg.stem:  # the monitor's NO_COLOR screen is a yes/no dialog
        assert any(mark in text for mark in ("›", "(•)", "[x]")), "no selection marker"


def test_the_scan_finds_a_cut_path() -> None:
    """The scan itself: it flags a cut path and a cut command, not ordinary prose."""
    assert cut_words("│ model /home/me/models/illustr… │") == ["/home/me/models/illustr…"]
    assert cut_words(" tuilora train --resume runs/ar…") == ["runs/ar…"]
    assert cut_words(" …or just the number of images") == []
