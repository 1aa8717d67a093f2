"""The rule language of the schema: parsed without eval, checked row by row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.errors import SchemaError
from dpsynth.release.rules import breaking_rows, check_rules, parse_rule
from dpsynth.schema import Schema

FRAME = pd.DataFrame({
    "participant": ["yes", "no", "yes", None], "eligible": ["no", "no", "yes", "yes"],
    "age": [15, 30, 17, 12], "employed": ["yes", "yes", "no", "yes"],
    "start": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01", "2020-01-01"]),
    "end": pd.to_datetime(["2020-01-02", "2020-01-01", "2020-03-02", "2020-01-01"]),
    "status": ["retired", "working", "retired", "x"]})
COLUMNS = list(FRAME.columns)


@pytest.mark.parametrize(("rule", "broken", "applicable"), [
    ("participant implies eligible", [1, 0, 0, 0], [1, 1, 1, 0]),
    ("age >= 16 if employed", [1, 0, 0, 1], [1, 1, 1, 1]),
    ("end >= start", [0, 1, 0, 0], [1, 1, 1, 1]),
    ("not (status == 'retired' and age < 40)", [1, 0, 1, 0], [1, 1, 1, 1]),
    ("`age` > 1e1 or eligible", [0, 0, 0, 0], [1, 1, 1, 1]),
])
def test_rules_break_on_the_expected_rows(rule, broken, applicable):
    got, where = parse_rule(rule, COLUMNS).broken(FRAME)
    assert got.tolist() == [bool(b) for b in broken]
    assert where.tolist() == [bool(a) for a in applicable]


@pytest.mark.parametrize(("rule", "message"), [
    ("age >=", "ends too early"), ("foo > 1", "'foo' is not a column"),
    ("(age > 1", "not closed"), ("age > 'x'", "only be compared with == or !="),
    ("age > 1 extra", "unexpected 'extra'"),
    ("__import__('os')", "'__import__' is not a column"), ("age; b", "cannot read"),
    ("", "non-empty string"),
])
def test_bad_rules_are_refused_with_the_reason(rule, message):
    with pytest.raises(SchemaError, match=message):
        parse_rule(rule, COLUMNS)


def test_schema_reads_writes_and_checks_its_rules():
    doc = {"columns": [{"name": "a", "kind": "integer", "lower": 0, "upper": 9},
                       {"name": "b", "kind": "integer", "lower": 0, "upper": 9}],
           "rules": ["b >= a"]}
    schema = Schema.from_dict(doc)
    assert schema.rules == ("b >= a",)
    assert Schema.from_dict(schema.to_dict()).rules == ("b >= a",)
    with pytest.raises(SchemaError, match="'c' is not a column"):
        Schema.from_dict({**doc, "rules": ["c > 1"]})
    with pytest.raises(SchemaError, match="list of strings"):
        Schema.from_dict({**doc, "rules": "b >= a"})


def test_rates_compare_synthetic_with_real():
    real = pd.DataFrame({"a": np.arange(100), "b": np.arange(100) + 1})
    synthetic = real.assign(b=np.where(np.arange(100) < 10, -1, real["b"]))
    [row] = check_rules(["b >= a"], synthetic, real, ["a", "b"])
    assert row["synthetic_rate"] == pytest.approx(0.1) and row["real_rate"] == 0.0
    assert breaking_rows(["b >= a"], synthetic, ["a", "b"]).sum() == 10
