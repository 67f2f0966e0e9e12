"""A tiny, safe expression language for rule values and conditions.

A rule value written as a string starting with ``=`` is an expression over the context
(answers, facts and the config decided so far): ``"=1e-4 * train_batch_size"``,
``"=round_rank(rank_high)"``. Only arithmetic, comparisons, ``and``/``or``/``not``,
``x if c else y``, names from the context and the functions in ``FUNCTIONS`` are allowed,
so rule files stay data, not code.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final

from tuilora.advisor import dataset_facts, estimates, steps


class ExpressionError(ValueError):
    """A rule expression that cannot be parsed or evaluated (a bug in a rules file)."""


def key_value(key: str, value: Any) -> str:
    """One sd-scripts "key=value" argument; the value in the form its literal_eval reads."""
    if isinstance(value, float):
        return f"{key}={value:g}"
    return f"{key}={value}"


def significant(value: float, digits: int = 2) -> float:
    """``value`` rounded to ``digits`` significant digits (1e-4 / 3 is 3.3e-05)."""
    return float(f"{value:.{digits}g}") if value else 0.0


def span(low: float, high: float) -> str:
    """A range as text: "4-8", or "64" when both ends are one number."""
    return f"{low:g}" if low == high else f"{low:g}-{high:g}"


FUNCTIONS: Final[Mapping[str, Callable[..., Any]]] = {
    "kv": key_value,
    "ceil": math.ceil,
    "floor": math.floor,
    "min": min,
    "max": max,
    "round": round,
    "int": int,
    "float": float,
    "sig": significant,
    "span": span,
    "round_rank": steps.round_rank,
    "epoch_plan": steps.epoch_plan,
    "epoch_steps": steps.steps_per_epoch,
    "snapshots": steps.snapshots,
    "bucket_views": dataset_facts.bucket_views,
    "epochs_for": steps.epochs_for,
    "repeats_for": steps.repeats_for,
    "save_every": steps.save_every,
    "vram_estimate": estimates.vram_estimate,
    "file_size_mb": estimates.file_size_mb,
    "mb_per_rank": estimates.mb_per_rank,
    "memory_tips": estimates.memory_tips,
}

_BINARY: Final[Mapping[type[ast.operator], Callable[[Any, Any], Any]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: Final[Mapping[type[ast.cmpop], Callable[[Any, Any], bool]]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("=")


@lru_cache(maxsize=1024)
def parse(source: str) -> ast.expr:
    """Parse once; the result is reused for every evaluation of the same rule."""
    try:
        tree = ast.parse(source.lstrip("="), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse {source!r}: {exc.msg}") from None
    return tree.body


def names(source: str) -> set[str]:
    """The context names an expression reads (function names excluded)."""
    found = set()
    for node in ast.walk(parse(source)):
        if isinstance(node, ast.Name) and node.id not in FUNCTIONS:
            found.add(node.id)
    return found


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    return _eval(parse(source), context, source)


def resolve(value: Any, context: Mapping[str, Any]) -> Any:
    """A literal stays as it is; an ``=expression`` is evaluated."""
    return evaluate(value, context) if is_expression(value) else value


def _eval(node: ast.expr, ctx: Mapping[str, Any], source: str) -> Any:
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            if name not in ctx:
                raise ExpressionError(f"{source!r}: unknown name {name!r}")
            return ctx[name]
        case ast.Attribute(value=value, attr=attr) if not attr.startswith("_"):
            # A public field of a value a function returned (``_epoch.steps``).
            return getattr(_eval(value, ctx, source), attr)
        case ast.List(elts=items) | ast.Tuple(elts=items):
            return [_eval(item, ctx, source) for item in items]
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            return _BINARY[type(op)](_eval(left, ctx, source), _eval(right, ctx, source))
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_eval(operand, ctx, source)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not _eval(operand, ctx, source)
        case ast.BoolOp(op=ast.And(), values=values):
            return all(_eval(v, ctx, source) for v in values)
        case ast.BoolOp(op=ast.Or(), values=values):
            return any(_eval(v, ctx, source) for v in values)
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            current = _eval(left, ctx, source)
            for cmp, comparator in zip(ops, comparators, strict=True):
                compare = _COMPARE.get(type(cmp))
                if compare is None:
                    raise ExpressionError(f"{source!r}: operator not allowed")
                other = _eval(comparator, ctx, source)
                if not compare(current, other):
                    return False
                current = other
            return True
        case ast.IfExp(test=test, body=body, orelse=orelse):
            chosen = body if _eval(test, ctx, source) else orelse
            return _eval(chosen, ctx, source)
        case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords) if name in FUNCTIONS:
            positional = [_eval(arg, ctx, source) for arg in args]
            named = {kw.arg: _eval(kw.value, ctx, source) for kw in keywords if kw.arg}
            return FUNCTIONS[name](*positional, **named)
    raise ExpressionError(f"{source!r}: {type(node).__name__} is not allowed in a rule")
