"""Public rules between columns, declared in the schema and checked on every release.

A schema may list rules in a small language (no ``eval``: a tokenizer and a recursive-descent
parser)::

    rules:
      - participant implies eligible
      - age >= 16 if employed
      - end >= start
      - not (status == 'retired' and age < 40)

Grammar::

    rule       := expr [("implies" | "if") expr]
    expr       := conj ("or" conj)*
    conj       := unary ("and" unary)*
    unary      := "not" unary | "(" expr ")" | comparison
    comparison := operand [op operand]          op: >= <= > < == !=
    operand    := column | number | 'text' | "text"   (`a column name` in backquotes)

``A implies B`` and ``B if A`` are broken by rows where ``A`` holds and ``B`` does not; a plain
expression by rows where it does not hold. A lone column is true when it reads as yes (``yes``,
``true``, ``1``, ``y``, ``t``, any case) or is a non-zero number. Rows with a missing value in a
column the rule reads are not counted. The rates on the card compare the synthetic rows with
the real training rows (which may break a rule too); the real rate reads the private rows
without noise and is not covered by epsilon. Dropping the synthetic rows that break a rule is
post-processing of the generator's output (no privacy cost) and is recorded as a filter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.errors import SchemaError

_TOKEN = re.compile(r"\s*(?:(?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(?P<op>>=|<=|==|!=|>|<)"
                    r"|(?P<paren>[()])|'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\"|`(?P<bq>[^`]+)`"
                    r"|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))")
_KEYWORDS = {"and", "or", "not", "implies", "if"}
_TRUE = {"yes", "true", "1", "y", "t", "1.0"}
Evaluator = Callable[[pd.DataFrame], tuple[pd.Series, pd.Series]]
"""``frame -> (holds, known)``: where the expression holds, and where it could be read."""


@dataclass(frozen=True)
class Rule:
    """A parsed rule: its text, the columns it reads, and its evaluator."""

    text: str
    columns: tuple[str, ...]
    premise: Evaluator | None
    conclusion: Evaluator

    def broken(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(broken, applicable)`` boolean arrays over the rows of ``frame``."""
        holds, known = self.conclusion(frame)
        if self.premise is None:
            return (~holds & known).to_numpy(bool), known.to_numpy(bool)
        given, known_p = self.premise(frame)
        applicable = known & known_p
        return (given & ~holds & applicable).to_numpy(bool), applicable.to_numpy(bool)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise SchemaError(f"rule {text!r}: cannot read {text[pos:].strip()[:20]!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "word" and value.lower() in _KEYWORDS:
            kind, value = "kw", value.lower()
        out.append(({"sq": "str", "dq": "str", "bq": "word"}.get(kind, kind), value))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, columns: Sequence[str]):
        self.text, self.known = text, set(columns)
        self.toks = _tokens(text)
        self.i = 0
        self.used: list[str] = []

    def error(self, what: str) -> SchemaError:
        return SchemaError(f"rule {self.text!r}: {what}")

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str, value: str | None = None) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == kind and (value is None or tok[1] == value):
            self.i += 1
            return True
        return False

    def rule(self) -> Rule:
        first = self.expr()
        premise: Evaluator | None = None
        conclusion = first
        if self.take("kw", "implies"):
            premise, conclusion = first, self.expr()
        elif self.take("kw", "if"):
            premise = self.expr()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return Rule(self.text, tuple(dict.fromkeys(self.used)), premise, conclusion)

    def expr(self) -> Evaluator:
        parts = [self.conj()]
        while self.take("kw", "or"):
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else _combine(parts, any_=True)

    def conj(self) -> Evaluator:
        parts = [self.unary()]
        while self.take("kw", "and"):
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else _combine(parts, any_=False)

    def unary(self) -> Evaluator:
        if self.take("kw", "not"):
            return _negate(self.unary())
        if self.take("paren", "("):
            inner = self.expr()
            if not self.take("paren", ")"):
                raise self.error("a '(' is not closed")
            return inner
        left = self.operand()
        tok = self.peek()
        if tok is not None and tok[0] == "op":
            self.i += 1
            right = self.operand()
            try:
                return _compare(left, tok[1], right)
            except SchemaError as exc:
                raise self.error(str(exc)) from None
        if left[0] != "col":
            raise self.error(f"{left[1]!r} alone is not a condition")
        return _truthy(str(left[1]))

    def operand(self) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None:
            raise self.error("the rule ends too early")
        self.i += 1
        kind, value = tok
        if kind == "num":
            return "num", float(value)
        if kind == "str":
            return "str", value
        if kind == "word":
            if value not in self.known:
                raise self.error(f"{value!r} is not a column of the schema")
            self.used.append(value)
            return "col", value
        raise self.error(f"unexpected {value!r}")


def _negate(inner: Evaluator) -> Evaluator:
    def run(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        holds, known = inner(frame)
        return ~holds & known, known
    return run


def _combine(parts: list[Evaluator], *, any_: bool) -> Evaluator:
    def run(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        results = [p(frame) for p in parts]
        holds = results[0][0]
        known = results[0][1]
        for h, k in results[1:]:
            holds = (holds | h) if any_ else (holds & h)
            known = known & k
        return holds, known
    return run


def _truthy(column: str) -> Evaluator:
    def run(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        values = frame[column]
        known = values.notna()
        numbers = pd.to_numeric(values, errors="coerce")
        holds = values.astype(str).str.strip().str.lower().isin(_TRUE) | (
            numbers.notna() & (numbers != 0))
        return holds & known, known
    return run


def _numbers(series: pd.Series) -> pd.Series | None:
    """``series`` as floats (datetimes as nanoseconds), or ``None`` when it is text."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return pd.Series(series.astype("int64"), index=series.index, dtype=float).where(
            series.notna())
    numbers = pd.to_numeric(series, errors="coerce")
    if not (numbers.isna() & series.notna()).any():
        return numbers.astype(float)
    dates = pd.to_datetime(series, errors="coerce", format="mixed")
    if (dates.isna() & series.notna()).any():
        return None
    return pd.Series(dates.astype("int64"), index=series.index, dtype=float).where(
        dates.notna())


def _value(operand: tuple[str, Any], frame: pd.DataFrame, numeric: bool) -> pd.Series | None:
    kind, value = operand
    if kind != "col":
        return pd.Series(value, index=frame.index, dtype=float if kind == "num" else object)
    series = frame[value]
    if numeric:
        return _numbers(series)
    return series.astype(str).where(series.notna())


_OPS = {">=": np.greater_equal, "<=": np.less_equal, ">": np.greater, "<": np.less,
        "==": np.equal, "!=": np.not_equal}


def _compare(left: tuple[str, Any], op: str, right: tuple[str, Any]) -> Evaluator:
    text = "str" in (left[0], right[0])
    if text and op not in ("==", "!="):
        raise SchemaError(f"text can only be compared with == or != (found {op!r})")

    def run(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
        a, b = _value(left, frame, not text), _value(right, frame, not text)
        if a is None or b is None:  # a text column: compare as text
            if op not in ("==", "!="):
                none = pd.Series(False, index=frame.index)
                return none, none
            a, b = _value(left, frame, False), _value(right, frame, False)
        assert a is not None and b is not None
        if text or a.dtype == object:
            a, b = a.astype(object), b.astype(object).map(
                lambda v: str(v) if not pd.isna(v) else v)
        known = a.notna() & b.notna()
        holds = pd.Series(_OPS[op](a.to_numpy(), b.to_numpy()), index=frame.index)
        return holds.astype(bool) & known, known
    return run


def parse_rule(text: str, columns: Sequence[str]) -> Rule:
    """Parse one rule over ``columns``; :class:`SchemaError` names what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise SchemaError(f"a rule must be a non-empty string; got {text!r}")
    return _Parser(text, columns).rule()


def rule_problems(rules: Sequence[Any], columns: Sequence[str]) -> list[str]:
    """Every rule that does not parse, one message each."""
    out = []
    for text in rules:
        try:
            parse_rule(text, columns)
        except SchemaError as exc:
            out.append(str(exc))
    return out


def check_rules(rules: Sequence[str], synthetic: pd.DataFrame, real: pd.DataFrame,
                columns: Sequence[str]) -> list[dict[str, Any]]:
    """Violation rate of each rule in the synthetic rows beside the real rows'."""
    out = []
    for text in rules:
        rule = parse_rule(text, columns)
        row: dict[str, Any] = {"rule": text}
        for name, frame in (("synthetic", synthetic), ("real", real)):
            broken, applicable = rule.broken(frame)
            n = int(applicable.sum())
            row[f"{name}_violations"] = int(broken.sum())
            row[f"{name}_rate"] = float(broken.sum() / n) if n else None
        out.append(row)
    return out


def breaking_rows(rules: Sequence[str], frame: pd.DataFrame,
                  columns: Sequence[str]) -> np.ndarray:
    """Boolean mask of the rows of ``frame`` that break at least one rule."""
    mask = np.zeros(len(frame), dtype=bool)
    for text in rules:
        mask |= parse_rule(text, columns).broken(frame)[0]
    return mask


def sample_within_rules(synth: Any, n_rows: int, seed: int, rules: Sequence[str],
                        columns: Sequence[str], *,
                        max_rounds: int = 20) -> tuple[pd.DataFrame, int]:
    """Draw ``n_rows`` from the fitted ``synth``, dropping the rows that break ``rules`` and
    drawing again (post-processing: no privacy cost). Returns the rows and how many were
    dropped; fewer than ``n_rows`` come back only if ``max_rounds`` draws were not enough."""
    kept: list[pd.DataFrame] = []
    dropped = have = 0
    seeds = np.random.SeedSequence(seed).generate_state(max_rounds, dtype=np.uint32)
    for r in range(max_rounds):
        want = n_rows - have
        draw = synth.sample(want if r == 0 else max(want * 2, 16), random_state=int(seeds[r]))
        mask = breaking_rows(rules, draw, columns)
        dropped += int(mask.sum())
        good = draw.loc[~mask]
        kept.append(good.iloc[:want])
        have += min(len(good), want)
        if have >= n_rows:
            break
    return pd.concat(kept, ignore_index=True), dropped


__all__ = ["Rule", "breaking_rows", "check_rules", "parse_rule", "rule_problems",
           "sample_within_rules"]
