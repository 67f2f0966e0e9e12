"""Every guide id a rule or check cites is a section that speaks about what it decides.

``rules/guide-index.toml`` lists, per section, the fields and facts it gives a number or a
judgment for (``[topics]``). For each advice rule and diagnose check:

- a rule that decides fields: every field it sets or explains is spoken about by one of its
  ids, and every id speaks about one of those fields (an interpretation may instead cite
  the section whose situation it answers: a name its condition or text reads);
- a warning or finding: every id speaks about a name its condition or message reads.

So a reason can never cite a section that says nothing of its value (the bf16 reason once
cited G-BASE-CLIPSKIP; LoKr's arguments for a character cited G-CAT-VEHICLE).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

import pytest

from tuilora.advisor import expr
from tuilora.advisor.diagnose_rules import Check, load_checks
from tuilora.advisor.rules import UNCITED, Rule, guide_index, guide_topics, load_rules


def _read(when: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for key, condition in when.items():
        if key in ("all", "any"):
            for part in condition:
                names |= _read(part)
        elif key == "not":
            names |= _read(condition)
        elif key == "test":
            names |= expr.names(condition)
        else:
            names.add(key)
    return names


def _template_names(text: str) -> set[str]:
    fields = (name for _, name, _, _ in string.Formatter().parse(text) if name)
    return {name.split(".")[0].split("[")[0] for name in fields}


def _cases() -> list[tuple[str, Rule | Check]]:
    items: list[tuple[str, Rule | Check]] = [(f"rule:{r.id}", r) for r in load_rules()]
    items += [(f"check:{c.id}", c) for c in load_checks()]
    return items


CASES = _cases()


@pytest.mark.parametrize(("label", "item"), CASES, ids=[label for label, _ in CASES])
def test_cited_sections_speak_about_the_decision(label: str, item: Rule | Check) -> None:
    topics = guide_topics()
    uncited = topics[UNCITED]
    decided = {key for key in item.set if not key.startswith("_")}
    if isinstance(item, Rule):
        decided |= set(item.explain)
        said = item.text + (item.warn.message if item.warn else "")
    else:
        said = item.text + item.reason
    read = _read(item.when) | _template_names(said)
    if not decided and not said:
        return  # facts for later rules only: nothing is shown, nothing is cited to a user
    for gid in item.guide:
        assert gid in guide_index(), f"{label}: {gid} is not in the guide index"
        assert gid in topics, f"{label}: {gid} has no topics in rules/guide-index.toml"
        spoken = topics[gid]
        if decided:
            ok = bool(spoken & decided) or (item.interpretation and bool(spoken & read))
            assert ok, f"{label}: {gid} says nothing about {sorted(decided)}"
        elif read:
            assert spoken & read, f"{label}: {gid} says nothing about {sorted(read)}"
    for key in decided:
        covered = any(key in topics[gid] for gid in item.guide)
        assert covered or (item.interpretation and key in uncited), (
            f"{label}: no cited section speaks about {key} (cites {list(item.guide)})"
        )


def test_every_topic_names_a_cited_section() -> None:
    """The topics table has no stale ids."""
    index = guide_index()
    assert set(guide_topics()) - {UNCITED} <= set(index)
