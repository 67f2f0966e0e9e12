"""Every case of every rule in rules/*.toml, run through the whole advisor."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tuilora.advisor.answers import Answers
from tuilora.advisor.recommend import PLAN_SOURCES, recommend
from tuilora.advisor.rules import Case, Rule, iter_cases

CASES = list(iter_cases())

# What every case starts from, so a case names only what matters to its rule.
BASE_ANSWERS: dict[str, Any] = {"images": 40, "vram": 12.0}


def _answers(case: Case) -> Answers:
    values = {**BASE_ANSWERS, **case.answers}
    values.pop("processes", None)  # not an answer: recommend() takes it (see _processes)
    if values.get("subject", "character") == "character":
        values.setdefault("category", "C")
    return Answers.from_dict(values)


def _lookup(rec: Any, key: str) -> Any:
    if key in rec.config:
        return rec.config[key]
    if key in PLAN_SOURCES:
        return rec.plan[key]
    if key in rec.context:
        return rec.context[key]
    return "<absent>"


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, int | float):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)
    return bool(actual == expected)


@pytest.mark.parametrize(
    ("rule", "number", "case"),
    CASES,
    ids=[f"{rule.id}-{number}" for rule, number, _ in CASES],
)
def test_rule_case(rule: Rule, number: int, case: Case) -> None:
    rec = recommend(
        _answers(case), overrides=case.pins, processes=int(case.answers.get("processes", 1))
    )
    fired = rule.id in rec.applied
    assert fired == case.fires, f"{rule.id} case {number}: fired={fired}, expected {case.fires}"
    for key, expected in case.expect.items():
        actual = _lookup(rec, key)
        if expected == "<absent>":
            assert key not in rec.config, f"{key} should be left out, is {actual!r}"
        else:
            assert _same(actual, expected), f"{key}: got {actual!r}, expected {expected!r}"
    ids = {warning.id for warning in rec.warnings}
    for warning_id in case.expect_warnings:
        assert warning_id in ids, f"warning {warning_id} missing; got {sorted(ids)}"
    for warning_id in case.expect_no_warnings:
        assert warning_id not in ids, f"warning {warning_id} should not be raised"


def test_every_rule_has_a_firing_case() -> None:
    """A rule whose cases all say it does not fire would be tested by nothing."""
    for rule, _, _ in CASES:
        assert any(case.fires for case in rule.cases), f"{rule.id} has no case where it fires"
