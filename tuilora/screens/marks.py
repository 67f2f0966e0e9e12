"""Selection and focus drawn as characters, so they read without colour (``NO_COLOR=1``).

Textual shows the focused widget and the highlighted item of a list by colour alone; in a
monochrome terminal, or in a ``tmux capture-pane`` of one, nothing would say where the
keys go. Here every focusable widget gets a bar at its left edge when it has the focus
(``FOCUS_CSS``), the highlighted item of a list or radio set a "›" in front, radio buttons
read "(•)" / "( )" and checkboxes "[x]" / "[ ]".
"""

from __future__ import annotations

from typing import ClassVar, Final, cast

from rich.segment import Segment
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.css.styles import RulesMap
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip
from textual.widgets import Checkbox, OptionList, RadioButton, RadioSet

CURSOR: Final = "›"

#: A bar left of the focused widget (blank, same width, when it has no focus). Compact
#: inputs and buttons drop their borders with !important, hence the same here.
FOCUS_CSS: Final = """
Input.-textual-compact, Button.-textual-compact, Checkbox, RadioSet, Select, OptionList,
DataTable, TextArea {
    border-left: blank !important;
}
Input.-textual-compact:focus, Button.-textual-compact:focus, Checkbox:focus,
RadioSet:focus, Select:focus-within, OptionList:focus, DataTable:focus, TextArea:focus {
    border-left: outer $accent !important;
}
"""


class Radio(RadioButton):
    """A radio button reading "(•)" or "( )", with "›" where the arrow keys are."""

    @property
    def _button(self) -> Content:
        state = "(•)" if self.value else "( )"
        parent = self.parent
        here = self.has_class("-selected") and isinstance(parent, RadioSet) and parent.has_focus
        return Content((CURSOR if here else " ") + state)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """As many rows as the label needs at this width (Textual's toggle buttons take one
        row and cut a long label off)."""
        rules = cast(RulesMap, self.styles)  # what Textual's own widgets pass
        return max(1, self.render().get_height(rules, width))


class Check(Checkbox):
    """A checkbox whose state reads as text, "[x]" or "[ ]"."""

    @property
    def _button(self) -> Content:
        return Content("[x]" if self.value else "[ ]")


class Choices(RadioSet):
    """Radio buttons: arrows move the "›", Space chooses, Enter chooses and goes on.

    Its keyboard highlight starts on the current answer (Textual's starts on the first
    button, whatever is pressed, so the arrows would start from the wrong place when
    coming back to a step). Enter posts ``Chosen`` after choosing: a step with one
    question goes to the next step, a longer form to the next field.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "choose", "Choose", show=False),
        Binding("space", "toggle_button", "Choose", show=False),
    ]

    class Chosen(Message):
        """Enter was pressed on choice ``index``. The Changed message may still be on its
        way: a handler that goes on should take the answer from ``index``."""

        def __init__(self, choices: Choices, index: int) -> None:
            super().__init__()
            self.choices = choices
            self.index = index

    def on_mount(self) -> None:
        self.call_after_refresh(self._highlight_pressed)

    def _highlight_pressed(self) -> None:
        if self.pressed_index >= 0:
            self._selected = self.pressed_index

    def action_choose(self) -> None:
        if self._selected is None:
            return
        if self._selected != self.pressed_index:
            self.action_toggle_button()
        self.post_message(self.Chosen(self, self._selected))

    def watch__selected(self) -> None:
        super().watch__selected()
        self._refresh_buttons()

    def on_focus(self) -> None:
        self._refresh_buttons()

    def on_blur(self) -> None:
        self._refresh_buttons()

    def _refresh_buttons(self) -> None:
        for button in self.query(Radio):
            button.refresh()


class MarkedOptionList(OptionList):
    """An option list that draws "›" before the highlighted option."""

    def _get_left_gutter_width(self) -> int:
        return 2

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        style = self.get_visual_style("option-list--option").rich_style
        try:
            index, offset = self._lines[self.scroll_offset.y + y]
        except IndexError:
            return Strip.join([Strip([Segment("  ", style)], 2), strip])
        here = index == self.highlighted and offset == 0
        gutter = Strip([Segment(f"{CURSOR} " if here else "  ", style)], 2)
        return Strip.join([gutter, strip])
