"""A text to copy, alone on the screen: no borders, no panel beside it, nothing cut.

A terminal copies what is drawn, row by row. The command line is therefore laid out as a
shell command continued over lines (`` \\`` at each line's end), broken between arguments
at the terminal's width, so whatever rows a user selects paste into a shell as the one
command. A file (TOML) is shown as it is, wrapped at the width.
"""

from __future__ import annotations

import shlex
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from tuilora.screens.dialogs import KeyHelp


def continued_lines(command: str, width: int) -> list[str]:
    """``command`` as lines of at most ``width`` columns joined by `` \\`` continuations.

    Breaks fall between arguments where they can. An argument longer than a line is cut
    into pieces, each quoted on its own and ended by a backslash with no indent after it:
    the shell removes backslash-newline and joins adjacent quoted pieces, so the pieces are
    the one argument again. Quoting is re-done with ``shlex``.
    """
    limit = width - 2  # room for " \"
    lines: list[str] = []
    current = ""
    for word in shlex.split(command):
        quoted = shlex.quote(word)
        candidate = f"{current} {quoted}" if current else quoted
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            lines.append(current + " \\")
        current = "    " + quoted
        if len(current) > limit:
            pieces = _pieces(word, limit)
            lines.append("    " + pieces[0] + "\\")
            lines.extend(piece + "\\" for piece in pieces[1:-1])
            current = pieces[-1]
    if current:
        lines.append(current)
    return lines


def _pieces(word: str, limit: int) -> list[str]:
    """``word`` in quoted pieces that fit a line after a 4-column indent (the first) or none."""
    pieces: list[str] = []
    rest = word
    room = limit - 4 - 1  # the first piece follows the indent; every piece ends in "\"
    while rest:
        size = max(room - 2, 1)  # quotes, if shlex needs them
        while size > 1 and len(shlex.quote(rest[:size])) > room:
            size -= 1
        pieces.append(shlex.quote(rest[:size]))
        rest = rest[size:]
        room = limit - 1
    return pieces


class CommandView(Screen[None]):
    DEFAULT_CSS = """
    CommandView #copy-hint { height: auto; color: $text-muted; padding: 0 0 1 0; }
    CommandView #copy-text { width: 100%; }
    CommandView VerticalScroll { padding: 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back"),
    ]

    def __init__(self, text: str, title: str, *, command: bool = False) -> None:
        super().__init__()
        self.text = text
        self.title_text = title
        self.command = command

    @classmethod
    def for_command(cls, command: str) -> CommandView:
        return cls(command.strip(), "sd-scripts command line", command=True)

    def key_help(self) -> KeyHelp:
        return KeyHelp(
            f"{self.title_text} (for copying)",
            (
                ("↑ ↓ PgUp PgDn", "scroll"),
                ("Esc / q", "back to the finish step"),
                ("mouse / tmux copy", "select the lines: they are the whole text, unframed"),
            ),
        )

    def compose(self) -> ComposeResult:
        hint = (
            "Copy these lines: they end in \\ so a shell reads them as one command."
            if self.command
            else "Copy these lines as they are."
        )
        yield Static(Text(f"{self.title_text}. {hint} Esc returns."), id="copy-hint")
        with VerticalScroll():
            yield Static(id="copy-text")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.title_text
        self.query_one(VerticalScroll).focus()
        self._lay_out()

    def on_resize(self) -> None:
        self._lay_out()

    def _lay_out(self) -> None:
        width = max(self.size.width - 1, 20)  # a column for the scrollbar
        body = "\n".join(continued_lines(self.text, width)) if self.command else self.text
        self.query_one("#copy-text", Static).update(Text(body, overflow="fold"))

    def action_close(self) -> None:
        self.dismiss(None)
