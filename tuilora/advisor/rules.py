"""Load ``rules/*.toml`` and apply them, in order, to a context of answers and facts.

A rule (DESIGN §3 "Rules as data") has an ``id``, the guide ids it comes from (``guide``), a
condition (``when``), and what it does: ``set`` config fields or facts, ``explain`` fields it
does not change, and/or ``warn``. ``text`` is the reason shown for the fields it sets;
``interpretation = true`` marks the project's reading of the guide rather than the guide's own
words. ``cases`` are the rule's tests (run by one parametrized test).

Rules run top to bottom (files in name order): each sees the context as the earlier rules left
it, which is how later rules build on earlier decisions (alpha on rank, epochs on batch size).
Pinned fields (the user's ``--rank``, ``--set key=value``, the dataset's real counts) are never
overwritten.

Conditions: ``{ key = value }`` is equality; a table of operators
``{ key = { in = [...], ge = 10 } }`` (eq, ne, in, not_in, lt, le, gt, ge); ``test = "=expr"``
an expression; ``all`` / ``any`` lists and ``not`` nest. Every key of a table must hold.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Generic, Protocol, TypeVar

from tuilora.advisor import expr

SEVERITIES: Final = ("error", "warning", "info")
_RULE_KEYS: Final = frozenset(
    {"id", "guide", "when", "set", "explain", "text", "interpretation", "warn", "cases"}
)
_OPERATORS: Final = frozenset({"eq", "ne", "in", "not_in", "lt", "le", "gt", "ge"})
_INDEX_FILE: Final = "guide-index.toml"
_CATEGORIES_FILE: Final = "categories.toml"


class RuleError(ValueError):
    """A malformed rules file or a rule that cannot be evaluated (a bug, not a user error)."""


@dataclass(frozen=True)
class Warn:
    severity: str
    message: str


@dataclass(frozen=True)
class Case:
    answers: Mapping[str, Any]
    pins: Mapping[str, Any]
    expect: Mapping[str, Any]
    expect_warnings: tuple[str, ...]
    expect_no_warnings: tuple[str, ...]
    #: Whether the rule itself must fire for these answers (False for a negative case).
    fires: bool


@dataclass(frozen=True)
class Rule:
    id: str
    guide: tuple[str, ...]
    when: Mapping[str, Any]
    set: Mapping[str, Any]
    explain: tuple[str, ...]
    text: str
    interpretation: bool
    warn: Warn | None
    cases: tuple[Case, ...]
    source: str

    def reason_text(self, context: Mapping[str, Any]) -> str:
        return interpreted(render(self.text, context, self.id), self.interpretation)


@dataclass(frozen=True)
class Reason:
    rule: str
    guide: tuple[str, ...]
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "guide": list(self.guide), "text": self.text}


@dataclass(frozen=True)
class Notice:
    """What a rule or check says to the user: an advice warning or a checklist finding."""

    id: str
    severity: str
    guide: tuple[str, ...]
    message: str

    def to_json(self, text_key: str = "message") -> dict[str, Any]:
        """The JSON form; the advice calls the text "message", diagnose's findings "text"."""
        return {
            "id": self.id,
            "severity": self.severity,
            "guide": list(self.guide),
            text_key: self.message,
        }


#: The advice's name for a Notice (DESIGN §3: "warnings").
Warning = Notice


@dataclass
class Evaluation:
    """The context after all rules ran, with the reasons and warnings they left."""

    context: dict[str, Any]
    reasons: dict[str, list[Reason]] = field(default_factory=dict)
    warnings: list[Notice] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------
# loading


def rules_dir() -> Path:
    """The installed ``tuilora.rules`` data package (``rules/`` of the checkout when editable)."""
    try:
        located = Path(str(resources.files("tuilora.rules")))
    except ModuleNotFoundError:
        located = _CHECKOUT_RULES
    if not (located / _INDEX_FILE).is_file():
        raise RuleError(f"the rules files are missing from {located}: reinstall tuilora")
    return located


_CHECKOUT_RULES: Final = Path(__file__).resolve().parents[2] / "rules"


@lru_cache(maxsize=1)
def load_rules() -> tuple[Rule, ...]:
    """Every rule of every rules file, files in name order, rules in file order."""
    rules: list[Rule] = []
    for path in sorted(rules_dir().glob("*.toml")):
        data = read_rules_file(path)
        if "rule" in data:
            rules.extend(_parse_rule(raw, path.name) for raw in data["rule"])
    check_unique_ids(rules, "rule")
    return tuple(rules)


class _Identified(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def source(self) -> str: ...


def check_unique_ids(items: Iterable[_Identified], kind: str) -> None:
    """Ids are how reasons, warnings and tests name a rule: two with one id are a bug."""
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise RuleError(f"duplicate {kind} id {item.id!r} ({item.source})")
        seen.add(item.id)


def parse_header(
    raw: Mapping[str, Any], source: str, kind: str, allowed: frozenset[str]
) -> tuple[str, str, tuple[str, ...]]:
    """(id, "file: kind 'id'" for messages, guide ids) of a rule or check, checked."""
    item_id = raw.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise RuleError(f"{source}: a {kind} without an id")
    where = f"{source}: {kind} {item_id!r}"
    extra = set(raw) - allowed
    if extra:
        raise RuleError(f"{where}: unknown keys {sorted(extra)}")
    guide = tuple(raw.get("guide", ()))
    if not guide:
        raise RuleError(f"{where}: cites no guide id")
    return item_id, where, guide


@lru_cache(maxsize=1)
def guide_index() -> Mapping[str, str]:
    """The guide ids rules may cite, with their titles (``rules/guide-index.toml``)."""
    data = read_rules_file(rules_dir() / _INDEX_FILE)
    return dict(data["guide"])


@lru_cache(maxsize=1)
def guide_topics() -> Mapping[str, frozenset[str]]:
    """What each guide section speaks about (``[topics]`` of ``rules/guide-index.toml``):
    the fields and facts a rule citing it may decide or look at."""
    data = read_rules_file(rules_dir() / _INDEX_FILE)
    topics = {gid: frozenset(names) for gid, names in data.get("topics", {}).items()}
    topics[UNCITED] = frozenset(data.get("uncited", {}).get("fields", ()))
    return topics


#: The key of ``guide_topics()`` holding the fields no section speaks about.
UNCITED: Final = "(uncited)"


@lru_cache(maxsize=1)
def categories() -> Mapping[str, Mapping[str, Any]]:
    """The character categories A–I (``rules/categories.toml``)."""
    data = read_rules_file(rules_dir() / _CATEGORIES_FILE)
    return dict(data["category"])


def read_rules_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleError(f"cannot read rules file {path}: {exc}") from None


def _parse_rule(raw: Mapping[str, Any], source: str) -> Rule:
    rule_id, where, guide = parse_header(raw, source, "rule", _RULE_KEYS)
    sets = dict(raw.get("set", {}))
    explain = tuple(raw.get("explain", ()))
    warn = None
    if "warn" in raw:
        severity = raw["warn"].get("severity", "warning")
        if severity not in SEVERITIES:
            raise RuleError(f"{where}: severity {severity!r} not in {SEVERITIES}")
        warn = Warn(severity=severity, message=str(raw["warn"]["message"]))
    if not sets and not explain and warn is None:
        raise RuleError(f"{where}: does nothing (no set, explain or warn)")
    text = str(raw.get("text", ""))
    if (explain or any(not key.startswith("_") for key in sets)) and not text:
        # Facts named _like_this only feed later rules and may go unexplained; nothing else.
        raise RuleError(f"{where}: sets or explains fields but has no text")
    cases = tuple(_parse_case(c, where) for c in raw.get("cases", ()))
    if not cases:
        raise RuleError(f"{where}: has no cases")
    return Rule(
        id=rule_id,
        guide=guide,
        when=dict(raw.get("when", {})),
        set=sets,
        explain=explain,
        text=text,
        interpretation=bool(raw.get("interpretation", False)),
        warn=warn,
        cases=cases,
        source=source,
    )


def _parse_case(raw: Mapping[str, Any], where: str) -> Case:
    extra = set(raw) - {"answers", "pins", "expect", "expect_warnings", "expect_no_warnings"}
    extra -= {"fires"}
    if extra:
        raise RuleError(f"{where}: case has unknown keys {sorted(extra)}")
    return Case(
        answers=dict(raw.get("answers", {})),
        pins=dict(raw.get("pins", {})),
        expect=dict(raw.get("expect", {})),
        expect_warnings=tuple(raw.get("expect_warnings", ())),
        expect_no_warnings=tuple(raw.get("expect_no_warnings", ())),
        fires=bool(raw.get("fires", True)),
    )


# ------------------------------------------------------------------------------------------
# evaluation: one evaluator for the advice's rules and diagnose's checks


class Conditional(Protocol):
    """What the evaluator needs of a rule or a check."""

    @property
    def id(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def when(self) -> Mapping[str, Any]: ...

    @property
    def set(self) -> Mapping[str, Any]: ...


C = TypeVar("C", bound=Conditional)


@dataclass(frozen=True)
class Fired(Generic[C]):
    """A rule or check whose condition held, after its ``set`` ran: ``before`` holds each
    field it changed with its earlier value (so texts can say "from -> to")."""

    item: C
    before: Mapping[str, Any]


def evaluate(
    items: Iterable[C],
    context: dict[str, Any],
    *,
    pins: Collection[str] = (),
    settable: Callable[[str], bool] | None = None,
    adjust: Callable[[str, Any], Any] | None = None,
) -> Iterator[Fired[C]]:
    """Run ``items`` in order over ``context`` (changed in place), yielding each one that
    fired right after its ``set`` ran, so the caller renders its text from the values it
    decided before later items move them. ``pins`` are never overwritten; ``settable``
    refuses keys an item may not set (a bug in a rules file); ``adjust`` shapes a new value
    (diagnose rounds learning rates)."""
    for item in items:
        where = f"{type(item).__name__.lower()} {item.id!r} ({item.source})"
        try:
            fired = matches(item.when, context)
        except (expr.ExpressionError, TypeError, ValueError) as exc:
            raise RuleError(f"{where}: condition failed: {exc}") from exc
        if not fired:
            continue
        before: dict[str, Any] = {}
        for key, value in item.set.items():
            if key in pins:
                continue
            if settable is not None and not key.startswith("_") and not settable(key):
                raise RuleError(f"{where}: sets {key!r}, which it may not")
            try:
                new = expr.resolve(value, context)
            except (expr.ExpressionError, TypeError, ValueError, ZeroDivisionError) as exc:
                raise RuleError(f"{where}: {key}: {exc}") from exc
            before[key] = context.get(key)
            context[key] = adjust(key, new) if adjust is not None else new
        yield Fired(item, before)


def interpreted(text: str, interpretation: bool) -> str:
    """The project's readings are marked as such wherever they are shown."""
    return f"Interpretation: {text}" if interpretation and text else text


def apply_rules(
    rules: Iterable[Rule],
    context: dict[str, Any],
    pins: Mapping[str, Reason],
) -> Evaluation:
    """Run ``rules`` over ``context`` (changed in place); ``pins`` are fields not to touch."""
    evaluation = Evaluation(context=context)
    for key, reason in pins.items():
        evaluation.reasons.setdefault(key, []).append(reason)
    for fired in evaluate(rules, context, pins=pins):
        rule = fired.item
        evaluation.applied.append(rule.id)
        explained = [key for key in (*fired.before, *rule.explain) if not key.startswith("_")]
        if explained:
            reason = Reason(rule=rule.id, guide=rule.guide, text=rule.reason_text(context))
            for key in explained:
                evaluation.reasons.setdefault(key, []).append(reason)
        if rule.warn is not None:
            message = interpreted(render(rule.warn.message, context, rule.id), rule.interpretation)
            evaluation.warnings.append(Notice(rule.id, rule.warn.severity, rule.guide, message))
    return evaluation


def matches(when: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    return all(_holds(key, condition, context) for key, condition in when.items())


def _holds(key: str, condition: Any, context: Mapping[str, Any]) -> bool:
    if key == "all":
        return all(matches(part, context) for part in condition)
    if key == "any":
        return any(matches(part, context) for part in condition)
    if key == "not":
        return not matches(condition, context)
    if key == "test":
        return bool(expr.evaluate(condition, context))
    actual = context.get(key)
    if not isinstance(condition, dict):
        return bool(actual == expr.resolve(condition, context))
    return all(_compare(op, actual, expr.resolve(v, context)) for op, v in condition.items())


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op not in _OPERATORS:
        raise expr.ExpressionError(f"unknown operator {op!r}")
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if op == "in":
        return actual in expected
    if op == "not_in":
        return actual not in expected
    if actual is None or expected is None:
        return False  # an unknown value satisfies no ordering
    return bool(
        {"lt": actual < expected, "le": actual <= expected, "gt": actual > expected}.get(
            op, actual >= expected
        )
    )


class _Formatter(string.Formatter):
    """Rule texts use ``{name}``; floats print compactly (1e-04, 0.5) and lists joined.

    Two specs keep the English right: ``{images:@image}`` is "1 image" / "40 images" (and
    ``{n:@batch|batches}`` for an irregular plural); ``{vram:a}`` is "an 8" / "a 12" (the
    article of the number as it is spoken).
    """

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec.startswith("@"):
            singular, _, plural = format_spec[1:].partition("|")
            return f"{value:g} {singular if value == 1 else (plural or singular + 's')}"
        if format_spec == "a":
            return f"{article(value)} {value:g}"
        if not format_spec:
            if isinstance(value, float):
                return f"{value:g}"
            if isinstance(value, list):
                return " ".join(str(v) for v in value)
        return str(super().format_field(value, format_spec))


def article(number: float) -> str:
    """ "an" before numbers spoken with a vowel (8, 11, 18, 80-89, 800-899, 8,000...)."""
    digits = str(int(abs(number)))
    groups = len(digits) % 3 or 3  # "eleven thousand", "eighteen million"
    lead = digits[:groups]
    return "an" if digits.startswith("8") or lead in ("11", "18") else "a"


_FORMATTER: Final = _Formatter()


def render(template: str, context: Mapping[str, Any], rule_id: str) -> str:
    try:
        return _FORMATTER.vformat(template, (), context)
    except (KeyError, IndexError, ValueError) as exc:
        raise RuleError(f"rule {rule_id!r}: text refers to {exc} which is not known") from exc


def iter_cases() -> Iterator[tuple[Rule, int, Case]]:
    """Every (rule, case number, case) — the parametrization of the rules test."""
    for rule in load_rules():
        for number, case in enumerate(rule.cases, start=1):
            yield rule, number, case
