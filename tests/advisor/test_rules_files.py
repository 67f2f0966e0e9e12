"""The rules files themselves: guide ids, categories, the loader's checks, the expressions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tuilora.advisor import expr, steps
from tuilora.advisor.answers import CATEGORIES
from tuilora.advisor.rules import RuleError, _parse_rule, categories, guide_index, load_rules

GUIDE = Path(__file__).resolve().parents[3] / "shared" / "GUIDE.md"


def test_every_cited_guide_id_is_in_the_index() -> None:
    index = guide_index()
    for rule in load_rules():
        for gid in rule.guide:
            assert gid in index, f"{rule.id} cites {gid}, which rules/guide-index.toml lacks"


@pytest.mark.skipif(not GUIDE.is_file(), reason="../shared/GUIDE.md is not beside the checkout")
def test_the_index_matches_the_guide() -> None:
    in_guide = set(re.findall(r"G-[A-Z0-9]+(?:-[A-Z0-9]+)*", GUIDE.read_text(encoding="utf-8")))
    assert set(guide_index()) == in_guide


def test_categories_table_is_complete_and_ordered() -> None:
    table = categories()
    assert list(table) == list(CATEGORIES)
    previous_low = 0
    for letter in CATEGORIES:
        low, high = table[letter]["rank"]
        assert 1 <= low <= high <= 256
        assert low >= previous_low  # harder categories never need less
        previous_low = low
        assert "lora" in table[letter]["types"]
        assert table[letter]["examples"]


def test_rule_ids_are_unique_and_every_rule_has_cases() -> None:
    rules = load_rules()
    assert len({rule.id for rule in rules}) == len(rules)
    assert all(rule.cases for rule in rules)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"id": "x", "set": {"a": 1}, "text": "t", "cases": [{}]}, "cites no guide id"),
        ({"id": "x", "guide": ["G-CAT"], "cases": [{}]}, "does nothing"),
        ({"id": "x", "guide": ["G-CAT"], "set": {"a": 1}, "cases": [{}]}, "has no text"),
        ({"id": "x", "guide": ["G-CAT"], "set": {"a": 1}, "text": "t"}, "has no cases"),
        (
            {
                "id": "x",
                "guide": ["G-CAT"],
                "set": {"a": 1},
                "text": "t",
                "cases": [{}],
                "bogus": 1,
            },
            "unknown keys",
        ),
        (
            {
                "id": "x",
                "guide": ["G-CAT"],
                "warn": {"severity": "fatal", "message": "m"},
                "cases": [{}],
            },
            "severity",
        ),
    ],
)
def test_loader_rejects_malformed_rules(raw: dict[str, object], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        _parse_rule(raw, "test.toml")


def test_expressions_compute_and_refuse_code() -> None:
    context = {"images": 41, "train_batch_size": 2, "base": "sdxl"}
    assert expr.evaluate("=epoch_steps(images, train_batch_size)", context) == 21
    assert expr.evaluate("=16 if base == 'sdxl' else 6", context) == 16
    assert expr.evaluate("=kv('d_coef', 2)", context) == "d_coef=2"
    assert (
        expr.evaluate("=kv('safeguard_warmup', images > 100)", context) == "safeguard_warmup=False"
    )
    for bad in (
        "=__import__('os')",
        "=images.__class__",
        "=[x for x in 'ab']",
        "=lambda: 1",
        "=open",
    ):
        with pytest.raises(expr.ExpressionError):
            expr.evaluate(bad, context)


def test_step_arithmetic() -> None:
    assert steps.steps_per_epoch(41, 2) == 21
    assert steps.steps_per_epoch(40, 2, processes=2) == 10
    assert steps.epochs_for(1000, 21) == 48
    assert steps.epochs_for(10, 500) == 1
    assert steps.repeats_for(2, 1, 100) == 50
    assert steps.round_rank(6) == 6
    assert steps.round_rank(10) == 12  # nearest multiple of 4, halves round up
    assert steps.round_rank(22) == 24
    assert steps.save_every(10) == 1 and steps.save_every(11) == 4
    with pytest.raises(ValueError):
        steps.steps_per_epoch(0, 1)
