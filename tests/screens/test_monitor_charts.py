"""The monitor's braille charts: downsampling envelopes and the drawn grid (no Textual)."""

from __future__ import annotations

import random

import pytest

from tuilora.screens.charts import (
    BLOCK,
    BRAILLE_BASE,
    GUTTER,
    Curve,
    Series,
    format_value,
    render_chart,
)


def brute_envelope(xs: list[int], ys: list[float], x0: int, x1: int, columns: int) -> list:
    span = max(x1 - x0, 1)
    out: list = [None] * columns
    for x, y in zip(xs, ys, strict=True):
        if x < x0:
            continue
        column = columns - 1
        for c in range(columns):
            if x < x0 + span * (c + 1) / columns:
                column = c
                break
        low, high = out[column] or (y, y)
        out[column] = (min(low, y), max(high, y))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_envelope_matches_a_full_scan_after_appends_and_resumes(seed: int) -> None:
    rng = random.Random(seed)
    series = Series()
    step = 0
    for _ in range(rng.randrange(200, 2000)):
        if rng.random() < 0.003 and step > 10:
            step = rng.randrange(1, step)  # a resume rewrites from an earlier step
        step += 1
        series.append(step, rng.uniform(-1, 1) if rng.random() > 0.01 else None)
    assert series.xs == sorted(series.xs)
    columns = rng.randrange(3, 160)
    x0, x1 = series.xs[0], series.xs[-1]
    assert series.envelope(x0, x1, columns) == brute_envelope(series.xs, series.ys, x0, x1, columns)
    assert len(series._lows) == len(series.ys) // BLOCK


def test_nan_and_none_are_left_out_and_a_resume_truncates() -> None:
    series = Series()
    for step, value in enumerate([0.5, float("nan"), None, 0.25, 0.125], start=1):
        series.append(step, value)
    assert series.xs == [1, 4, 5]
    series.append(4, 0.9)  # resumed at step 3
    assert series.xs == [1, 4] and series.ys == [0.5, 0.9]


def plain(text: object) -> list[str]:
    return str(text).split("\n")


def test_chart_fills_exactly_its_size_with_axis_labels_and_epoch_marks() -> None:
    series = Series()
    for step in range(1, 601):
        series.append(step, 1.0 / step)
    width, height = 78, 9
    columns = 2 * (width - GUTTER)
    text = render_chart(
        [Curve(series.envelope(1, 600, columns), "bold")],
        width=width,
        height=height,
        marks=[(60 * k, f"e{k + 1}") for k in range(1, 10)],
        x_range=(1, 600),
    )
    lines = plain(text)
    assert len(lines) == height
    assert all(len(line) == width for line in lines)
    assert lines[0].strip().startswith("1│")  # the top label is the maximum
    assert lines[-1].split()[0] == "step" and lines[-1].rstrip().endswith("600")
    assert "e2" in lines[-1] and "e10" in lines[-1]
    assert "┊" in "".join(lines[:-1])


def test_sparse_points_are_joined_into_an_unbroken_line() -> None:
    series = Series()
    for step, value in [(1, 0.0), (2, 1.0), (3, 0.0)]:
        series.append(step, value)
    width = GUTTER + 30
    text = render_chart(
        [Curve(series.envelope(1, 3, 60), "")], width=width, height=4, x_range=(1, 3), axis=False
    )
    cells = [line[GUTTER:] for line in plain(text)]
    for column in range(30):
        assert any(row[column] != " " for row in cells), f"gap at column {column}"
    assert all(ord(ch) >= BRAILLE_BASE or ch in " ┊" for row in cells for ch in row)


def test_log_scale_labels_show_real_values() -> None:
    series = Series()
    for step, value in enumerate([1e-6, 1e-5, 1e-4], start=1):
        series.append(step, value)
    text = render_chart(
        [Curve(series.envelope(1, 3, 20), "")], width=GUTTER + 10, height=5, log=True,
        x_range=(1, 3),
    )  # fmt: skip
    lines = plain(text)
    assert lines[0].strip().startswith("1.00e-04")
    assert lines[3].strip().startswith("1.00e-06")


def test_an_empty_chart_says_it_waits() -> None:
    text = render_chart([Curve([None] * 10, "")], width=20, height=3)
    assert "waiting" in str(text) and len(plain(text)) == 3


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "0"), (0.12345, "0.1235"), (1.0, "1"), (5e-05, "5.00e-05"), (123456.0, "1.23e+05")],
)
def test_format_value(value: float, shown: str) -> None:
    assert format_value(value) == shown
