"""Braille line charts for the monitor: downsampled series drawn as rich ``Text``.

Each terminal cell holds a 2×4 grid of braille dots, so a chart of W×H cells has 2W×4H
dots. Series are reduced to one (min, max) envelope per dot column before drawing
(``Series.envelope``), so a 100,000-step run costs the same to draw as a 100-step one and a
single spike still shows. Consecutive columns are joined so sparse data reads as a line.

No Textual here: the monitor's widgets call ``render_chart`` with their size, and the
benchmark calls it directly. Colours are styles only; with NO_COLOR the primary series
stays bold, so it still stands out from the raw cloud in a plain-text capture because it
is drawn over it.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.text import Text

BRAILLE_BASE = 0x2800
#: Dot bits by (column in cell, row in cell), Unicode braille order.
DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
GUTTER = 9
EPOCH_MARK = "┊"
LOG_FLOOR = 1e-12

Envelope = list[tuple[float, float] | None]


#: Points per precomputed (min, max) block: an envelope column reads whole blocks and at
#: most two partial ones, so a 100,000-point series costs ~1/10 of a full scan.
BLOCK = 32


@dataclass
class Series:
    """Points (x ascending, y finite) of one curve; appended live, truncated on a resume."""

    xs: list[int] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    _lows: list[float] = field(default_factory=list, repr=False)  # per complete block
    _highs: list[float] = field(default_factory=list, repr=False)

    def append(self, x: int, y: float | None) -> None:
        if y is None or not math.isfinite(y):
            return
        if self.xs and x <= self.xs[-1]:
            self.truncate_from(x)  # a resumed run rewrites from its saved step
        self.xs.append(x)
        self.ys.append(float(y))
        if len(self.ys) % BLOCK == 0:
            block = self.ys[-BLOCK:]
            self._lows.append(min(block))
            self._highs.append(max(block))

    def truncate_from(self, x: int) -> None:
        index = bisect_left(self.xs, x)
        del self.xs[index:], self.ys[index:]
        del self._lows[index // BLOCK :], self._highs[index // BLOCK :]

    def _span(self, start: int, stop: int) -> tuple[float, float]:
        """(min, max) of ys[start:stop], from the block summaries where they cover it."""
        first, last = -(-start // BLOCK), stop // BLOCK  # whole blocks first..last-1
        if last - first < 2:
            chunk = self.ys[start:stop]
            return min(chunk), max(chunk)
        head, tail = self.ys[start : first * BLOCK], self.ys[last * BLOCK : stop]
        lows, highs = self._lows[first:last], self._highs[first:last]
        low, high = min(lows), max(highs)
        if head or tail:
            edges = head + tail
            low, high = min(low, min(edges)), max(high, max(edges))
        return low, high

    def envelope(self, x0: int, x1: int, columns: int) -> Envelope:
        """(min, max) of the points falling in each of ``columns`` equal x ranges."""
        out: Envelope = [None] * columns
        if not self.xs or columns <= 0:
            return out
        span = max(x1 - x0, 1)
        xs = self.xs
        start = bisect_left(xs, x0)
        for column in range(columns):
            # The last column is closed on the right so x1 itself lands in it.
            edge = x0 + span * (column + 1) / columns
            stop = len(xs) if column == columns - 1 else bisect_left(xs, edge, lo=start)
            if stop > start:
                out[column] = self._span(start, stop)
            start = stop
        return out


@dataclass(frozen=True)
class Curve:
    """One series to draw: its envelope, the style it is drawn in, and its draw order."""

    envelope: Envelope
    style: str


def _scale(value: float, log: bool) -> float:
    return math.log10(max(value, LOG_FLOOR)) if log else value


def value_range(envelopes: Sequence[Envelope], log: bool) -> tuple[float, float] | None:
    lows = [cell[0] for env in envelopes for cell in env if cell is not None]
    highs = [cell[1] for env in envelopes for cell in env if cell is not None]
    if not lows:
        return None
    low, high = _scale(min(lows), log), _scale(max(highs), log)
    if high - low < 1e-12:
        pad = abs(high) * 0.05 or 0.5
        low, high = low - pad, high + pad
    return low, high


def format_value(value: float) -> str:
    """Axis and legend numbers: 4 significant digits, exponent form for tiny or huge ones."""
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.4g}"
    return f"{value:.2e}"


def _dots(envelope: Envelope, low: float, high: float, rows: int, log: bool) -> list[set[int]]:
    """The dot rows (0 = top) lit in each dot column, joining neighbouring columns."""
    dot_rows = rows * 4
    per_unit = (dot_rows - 1) / (high - low)

    def row_of(value: float) -> int:
        row = round((high - _scale(value, log)) * per_unit)
        return min(max(row, 0), dot_rows - 1)

    lit: list[set[int]] = [set() for _ in envelope]
    previous: tuple[int, int] | None = None  # (column, middle row) of the last point
    for column, cell in enumerate(envelope):
        if cell is None:
            continue
        top, bottom = row_of(cell[1]), row_of(cell[0])
        if previous is not None:
            # A straight line from the previous point, filled vertically so steep slopes
            # and sparse data (fewer points than columns) still read as one line.
            last_column, last = previous
            target = (top + bottom) // 2
            gap = column - last_column
            for offset in range(1, gap):
                row = round(previous[1] + (target - previous[1]) * offset / gap)
                lit[last_column + offset].update(range(min(last, row), max(last, row) + 1))
                last = row
            top, bottom = min(top, last), max(bottom, last)
            lit[column].update(range(top, bottom + 1))
            top, bottom = row_of(cell[1]), row_of(cell[0])
        else:
            lit[column].update(range(top, bottom + 1))
        previous = (column, (top + bottom) // 2)
    return lit


def render_chart(
    curves: Sequence[Curve],
    *,
    width: int,
    height: int,
    log: bool = False,
    marks: Sequence[tuple[int, str]] = (),
    x_range: tuple[int, int] = (0, 1),
    axis: bool = True,
) -> Text:
    """A chart ``width`` cells wide and ``height`` rows high (with the x-axis row if ``axis``).

    ``curves`` have envelopes of ``2 × (width - GUTTER)`` columns; later curves are drawn
    over earlier ones. ``marks`` are (x, label) pairs (epoch starts) shown as dotted
    verticals in empty cells, their labels on the axis row where they fit.
    """
    plot_w = max(width - GUTTER, 1)
    rows = max(height - (1 if axis else 0), 1)
    bounds = value_range([c.envelope for c in curves], log)
    if bounds is None:
        return Text("\n".join(["waiting for the first step ..."] + [""] * (height - 1)))
    low, high = bounds
    x0, x1 = x_range
    span = max(x1 - x0, 1)
    mark_cols = {
        min(int((x - x0) / span * plot_w), plot_w - 1): label for x, label in marks if x0 < x < x1
    }
    # cells[row][col] = (bits, style) of the topmost curve that lit it.
    cells: list[list[tuple[int, str] | None]] = [[None] * plot_w for _ in range(rows)]
    for curve in curves:
        lit = _dots(curve.envelope, low, high, rows, log)
        layer: dict[tuple[int, int], int] = {}
        for dot_col, dot_rows in enumerate(lit):
            col, side = divmod(dot_col, 2)
            for dot_row in dot_rows:
                row, sub = divmod(dot_row, 4)
                key = (row, col)
                layer[key] = layer.get(key, 0) | DOT_BITS[side][sub]
        for (row, col), bits in layer.items():
            cells[row][col] = (bits, curve.style)
    text = Text(no_wrap=True, overflow="crop")
    labels = {0: high, rows - 1: low}
    if rows >= 5:
        labels[rows // 2] = high - (high - low) * (rows // 2) / (rows - 1)
    for row in range(rows):
        label = labels.get(row)
        shown = "" if label is None else format_value(10**label if log else label)
        text.append(f"{shown:>{GUTTER - 1}}│", style="dim")
        _append_cells(text, cells[row], set(mark_cols))
        if row < rows - 1 or axis:
            text.append("\n")
    if axis:
        text.append(_axis_row(plot_w, x0, x1, sorted(mark_cols.items())), style="dim")
    return text


def _append_cells(text: Text, row: list[tuple[int, str] | None], marks: set[int]) -> None:
    """Append one row, merging neighbouring cells of the same style into one span."""
    run: list[str] = []
    run_style = ""
    for col, cell in enumerate(row):
        if cell is None:
            char, style = (EPOCH_MARK, "dim") if col in marks else (" ", "")
        else:
            char, style = chr(BRAILLE_BASE + cell[0]), cell[1]
        if style != run_style and run:
            text.append("".join(run), style=run_style or None)
            run = []
        run_style = style
        run.append(char)
    if run:
        text.append("".join(run), style=run_style or None)


def _axis_row(plot_w: int, x0: int, x1: int, mark_cols: list[tuple[int, str]]) -> str:
    """Step numbers at both ends and epoch labels ("e3") at the boundaries where they fit."""
    row = [" "] * plot_w
    left, right = str(x0), str(x1)
    taken = len(left) + 1
    limit = plot_w - len(right) - 1
    for col, label in mark_cols:
        if col >= taken and col + len(label) <= limit:
            row[col : col + len(label)] = label
            taken = col + len(label) + 1
    row[: len(left)] = left
    row[plot_w - len(right) :] = right
    return f"{'step':>{GUTTER - 1}} " + "".join(row)
