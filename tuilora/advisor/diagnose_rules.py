"""The checklist as data: ``[[check]]`` entries of ``rules/diagnose*.toml`` (DESIGN §8).

The same machinery as the advisor's rules (``rules.matches`` for conditions, ``expr`` for
values, ``rules.render`` for texts), under another top-level key so the advisor's
``load_rules()`` never sees them. A check has:

- ``id``, ``guide`` (G-ids from ``rules/guide-index.toml``), ``severity`` (error, warning,
  info), ``interpretation`` (the project's reading, not the guide's words);
- ``when``: the condition, over the run's facts, the user's observations and the config;
- ``text``: the finding shown to the user (optional when the check only changes the config);
- ``set``: changes for the next run (config fields, or the levers ``epochs`` and ``d_coef``
  that diagnose maps onto ``max_train_epochs`` / ``max_train_steps`` and ``optimizer_args``),
  with ``reason`` saying why;
- ``snapshot``: the epoch whose snapshot to prefer (an expression); later checks win;
- ``cases``: ``given`` (config fields, observations and facts over a base), ``expect``
  (values in the revised config or the final context), ``expect_findings``, ``fires``.

Texts are rendered after the check's ``set`` ran, with each changed field's earlier value
available as ``from_<field>``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from tuilora.advisor.rules import (
    SEVERITIES,
    RuleError,
    check_unique_ids,
    parse_header,
    read_rules_file,
    rules_dir,
)

CHECK_KEY: Final = "check"
_CHECK_KEYS: Final = frozenset(
    {
        "id",
        "guide",
        "severity",
        "when",
        "text",
        "set",
        "reason",
        "snapshot",
        "interpretation",
        "cases",
    }
)
_CASE_KEYS: Final = frozenset({"given", "expect", "expect_findings", "fires"})


@dataclass(frozen=True)
class CheckCase:
    given: Mapping[str, Any]
    expect: Mapping[str, Any]
    expect_findings: tuple[str, ...]
    fires: bool


@dataclass(frozen=True)
class Check:
    id: str
    guide: tuple[str, ...]
    severity: str
    when: Mapping[str, Any]
    text: str
    set: Mapping[str, Any]
    reason: str
    snapshot: str | int | None
    interpretation: bool
    cases: tuple[CheckCase, ...]
    source: str


@lru_cache(maxsize=1)
def load_checks() -> tuple[Check, ...]:
    """Every ``[[check]]`` of ``rules/diagnose*.toml``, files in name order."""
    checks: list[Check] = []
    for path in sorted(rules_dir().glob("diagnose*.toml")):
        data = read_rules_file(path)
        checks.extend(parse_check(raw, path.name) for raw in data.get(CHECK_KEY, ()))
    check_unique_ids(checks, "check")
    return tuple(checks)


def parse_check(raw: Mapping[str, Any], source: str) -> Check:
    check_id, where, guide = parse_header(raw, source, "check", _CHECK_KEYS)
    severity = raw.get("severity", "info")
    if severity not in SEVERITIES:
        raise RuleError(f"{where}: severity {severity!r} not in {SEVERITIES}")
    sets = dict(raw.get("set", {}))
    text = str(raw.get("text", ""))
    reason = str(raw.get("reason", ""))
    snapshot = raw.get("snapshot")
    if not text and not sets and snapshot is None:
        raise RuleError(f"{where}: does nothing (no text, set or snapshot)")
    if any(not key.startswith("_") for key in sets) and not (reason or text):
        raise RuleError(f"{where}: changes the config but gives no reason")
    cases = tuple(_parse_case(case, where) for case in raw.get("cases", ()))
    if not any(case.fires for case in cases):
        raise RuleError(f"{where}: has no case where it fires")
    return Check(
        id=check_id,
        guide=guide,
        severity=severity,
        when=dict(raw.get("when", {})),
        text=text,
        set=sets,
        reason=reason or text,
        snapshot=snapshot,
        interpretation=bool(raw.get("interpretation", False)),
        cases=cases,
        source=source,
    )


def _parse_case(raw: Mapping[str, Any], where: str) -> CheckCase:
    extra = set(raw) - _CASE_KEYS
    if extra:
        raise RuleError(f"{where}: case has unknown keys {sorted(extra)}")
    return CheckCase(
        given=dict(raw.get("given", {})),
        expect=dict(raw.get("expect", {})),
        expect_findings=tuple(raw.get("expect_findings", ())),
        fires=bool(raw.get("fires", True)),
    )


def iter_check_cases() -> Iterator[tuple[Check, int, CheckCase]]:
    """Every (check, case number, case): the parametrization of the checks test."""
    for check in load_checks():
        for number, case in enumerate(check.cases, start=1):
            yield check, number, case
