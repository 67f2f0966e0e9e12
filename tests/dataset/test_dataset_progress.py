"""The progress bar of `tuilora dataset check`: only past one second, only on a terminal."""

from __future__ import annotations

import io

from tuilora.dataset.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bar_appears_after_a_second_and_is_erased() -> None:
    out, clock = Terminal(), Clock()
    bar = ProgressBar(out, clock)
    bar(32, 1000)
    clock.now += 0.5
    bar(64, 1000)
    assert out.getvalue() == ""  # a short scan shows nothing
    clock.now += 0.6
    bar(500, 1000)
    assert out.getvalue().startswith("\rChecking images ")
    assert out.getvalue().endswith(" 500/1,000")
    drawn = out.getvalue()
    clock.now += 0.01
    bar(532, 1000)
    assert out.getvalue() == drawn  # at most ten redraws a second
    bar(1000, 1000)
    assert out.getvalue().endswith(" 1,000/1,000")  # the last one always shows
    bar.close()
    assert out.getvalue().endswith("\r\x1b[2K")


def test_no_bar_when_stderr_is_not_a_terminal() -> None:
    out, clock = io.StringIO(), Clock()
    bar = ProgressBar(out, clock)
    clock.now += 5
    bar(10, 20)
    bar.close()
    assert out.getvalue() == ""
