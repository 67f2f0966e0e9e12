"""Path completion for inputs: the rest of the first matching name, accepted with →.

Textual's input shows the suggestion greyed after the cursor; the right arrow (or End)
takes it. Folders get a trailing "/" so the next level completes straight away.
"""

from __future__ import annotations

import os

from textual.suggester import Suggester


def complete_path(value: str, *, dirs_only: bool = False) -> str | None:
    """``value`` completed to the first entry that starts with its last part, or None."""
    if not value:
        return None
    expanded = os.path.expanduser(value)
    folder, prefix = os.path.split(expanded)
    try:
        with os.scandir(folder or ".") as entries:
            names = sorted(
                (entry.name, entry.is_dir())
                for entry in entries
                if entry.name.startswith(prefix)
                and (prefix.startswith(".") or not entry.name.startswith("."))
            )
    except OSError:
        return None
    for name, is_dir in names:
        if dirs_only and not is_dir:
            continue
        if name == prefix and not is_dir:
            continue
        rest = name[len(prefix) :] + ("/" if is_dir else "")
        if rest:
            return value + rest
    return None


class PathSuggester(Suggester):
    def __init__(self, *, dirs_only: bool = False) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.dirs_only = dirs_only

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value, dirs_only=self.dirs_only)
