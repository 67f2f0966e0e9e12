"""Every case of every [[check]] in rules/diagnose*.toml, run through diagnose()."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tuilora.advisor.diagnose import Observations, diagnose
from tuilora.advisor.diagnose_rules import Check, CheckCase, iter_check_cases, load_checks
from tuilora.advisor.rules import RuleError, guide_index, load_rules
from tuilora.config import TrainingConfig, config_field_names

CASES = list(iter_check_cases())

MANUAL: dict[str, Any] = {
    "output_name": "aria",
    "network_dim": 32,
    "network_alpha": 16.0,
    "optimizer_type": "AdamW8bit",
    "learning_rate": 1e-4,
    "unet_lr": 1e-4,
    "text_encoder_lr": 5e-5,
    "lr_scheduler": "cosine_with_restarts",
    "max_train_epochs": 10,
    "save_every_n_epochs": 1,
}
PRODIGY: dict[str, Any] = {
    **MANUAL,
    "network_alpha": 1.0,
    "optimizer_type": "Prodigy",
    "optimizer_args": [
        "decouple=True",
        "weight_decay=0.01",
        "d_coef=2",
        "use_bias_correction=True",
        "safeguard_warmup=False",
        "betas=0.9,0.999",
    ],
    "learning_rate": 1.0,
    "unet_lr": 1.0,
    "text_encoder_lr": 1.0,
    "lr_scheduler": "constant",
    "min_snr_gamma": 3.0,
}
OBSERVATIONS = {
    "strength",
    "unet",
    "te",
    "noise",
    "object",
    "overfit_from_start",
    "one_checkpoint",
    "epoch",
}
UNSET = "<unset>"


def run_case(case: CheckCase) -> Any:
    given = dict(case.given)
    config_values = dict(PRODIGY if given.pop("preset", None) == "prodigy" else MANUAL)
    observed: dict[str, Any] = {}
    facts: dict[str, Any] = {}
    steps_per_epoch = given.pop("steps_per_epoch", None)
    fields = set(config_field_names())
    for key, value in given.items():
        if key in OBSERVATIONS:
            observed[key] = value
        elif key in fields:
            config_values[key] = None if value == UNSET else value
        else:
            facts[key] = value
    config = TrainingConfig.from_dict(
        {k: v for k, v in config_values.items() if v is not None}, source="case"
    )
    return diagnose(
        config,
        Observations(**observed),
        dataset_steps_per_epoch=steps_per_epoch,
        facts=facts,
    )


def _actual(diagnosis: Any, key: str) -> Any:
    if key == "snapshot":
        return diagnosis.snapshot.epoch if diagnosis.snapshot else None
    if key in set(config_field_names()):
        return getattr(diagnosis.config, key)
    return diagnosis.context[key]


def _same(actual: Any, expected: Any) -> bool:
    if expected == UNSET:
        return actual is None
    if isinstance(expected, float) and isinstance(actual, int | float):
        return math.isclose(actual, expected, rel_tol=1e-9)
    return bool(actual == expected)


@pytest.mark.parametrize(
    ("check", "number", "case"), CASES, ids=[f"{c.id}-{n}" for c, n, _ in CASES]
)
def test_check_case(check: Check, number: int, case: CheckCase) -> None:
    diagnosis = run_case(case)
    fired = check.id in diagnosis.applied
    assert fired == case.fires, f"{check.id} case {number}: fired={fired}, expected {case.fires}"
    for key, expected in case.expect.items():
        actual = _actual(diagnosis, key)
        assert _same(actual, expected), f"{key}: got {actual!r}, expected {expected!r}"
    ids = {finding.id for finding in diagnosis.findings}
    for finding_id in case.expect_findings:
        assert finding_id in ids, f"finding {finding_id} missing; got {sorted(ids)}"


def test_checks_cite_only_indexed_guide_ids() -> None:
    index = guide_index()
    for check in load_checks():
        for gid in check.guide:
            assert gid in index, f"{check.id} cites {gid}, which rules/guide-index.toml lacks"


def test_checks_stay_out_of_the_advisor() -> None:
    advisor_ids = {rule.id for rule in load_rules()}
    assert not advisor_ids & {check.id for check in load_checks()}
    assert all(not rule.source.startswith("diagnose") for rule in load_rules())


def test_every_check_has_a_case_and_a_purpose() -> None:
    for check in load_checks():
        assert check.cases
        assert check.text or check.set or check.snapshot is not None


def test_loader_refuses_a_check_without_a_firing_case() -> None:
    from tuilora.advisor.diagnose_rules import parse_check

    raw = {"id": "x", "guide": ["G-TEST"], "text": "t", "cases": [{"fires": False}]}
    with pytest.raises(RuleError, match="no case where it fires"):
        parse_check(raw, "test.toml")
    with pytest.raises(RuleError, match="unknown keys"):
        parse_check({**raw, "cases": [{}], "bogus": 1}, "test.toml")
