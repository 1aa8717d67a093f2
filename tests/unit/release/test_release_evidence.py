"""The evidence beyond the gate: real-anchor ablation, temporal holdout, tails."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.errors import ParameterError
from dpsynth.release.ablation import anchor_ablation, anchor_check, split_anchor
from dpsynth.release.evidence import EvidenceSection
from dpsynth.release.policy import ReleasePolicy
from dpsynth.release.tails import tails_report
from dpsynth.release.temporal import split_time
from dpsynth.schema import Schema

SCHEMA = Schema.from_dict({"columns": [
    {"name": "year", "kind": "integer", "lower": 2000, "upper": 2005},
    {"name": "x", "kind": "numeric", "lower": -5, "upper": 5},
    {"name": "c", "kind": "categorical", "categories": ["a", "b", "rare"]},
    {"name": "y", "kind": "categorical", "categories": ["no", "yes"]}]})


def _table(n: int, seed: int, signal: float = 2.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).clip(-5, 5)
    y = np.where(signal * x + rng.normal(size=n) > 0, "yes", "no")
    c = rng.choice(["a", "b", "rare"], size=n, p=[0.6, 0.395, 0.005])
    return pd.DataFrame({"year": rng.integers(2000, 2006, size=n), "x": x, "c": c, "y": y})


def test_split_anchor_is_stratified_and_disjoint():
    holdout = _table(300, 0)
    anchor, test = split_anchor(holdout, "y", seed=1)
    assert set(anchor.index).isdisjoint(test.index) and len(anchor) + len(test) == 300
    assert anchor["y"].nunique() == 2 and test["y"].nunique() == 2
    assert 80 <= len(anchor) <= 100


def test_informative_synthetic_rows_help_and_noise_does_not():
    anchor, test = _table(40, 1), _table(400, 2)
    good = anchor_ablation(anchor, test, _table(2000, 3), SCHEMA, "y", seed=0)
    labels = [p.label for p in good.points]
    assert labels[0] == "anchor alone" and labels[-1] == "synthetic alone"
    assert [p.share for p in good.points[1:-1]] == [0.1, 0.3, 0.5, 1.0, 2.0, 5.0]
    assert good.gain > 0 and "help" in good.verdict
    noise = _table(2000, 4, signal=0.0)
    noise["y"] = np.random.default_rng(5).permutation(noise["y"].to_numpy())
    bad = anchor_ablation(_table(200, 6), test, noise, SCHEMA, "y", seed=0)
    assert bad.synthetic_only_auc < 0.6 < bad.anchor_auc
    assert bad.best_auc <= bad.anchor_auc + 0.01
    assert anchor_check(bad, 0.02).passed is False
    assert anchor_check(good, 0.0).passed is True
    assert EvidenceSection.from_dict(EvidenceSection(good).to_dict()) == EvidenceSection(good)


def test_shares_beyond_the_synthetic_rows_are_skipped():
    found = anchor_ablation(_table(100, 1), _table(200, 2), _table(120, 3), SCHEMA, "y",
                            repeats=1)
    assert [p.share for p in found.points[1:-1]] == [0.1, 0.3, 0.5, 1.0]


def test_policy_reads_the_evidence_thresholds():
    policy = ReleasePolicy.from_dict({"utility": {"min_anchor_gain": 0,
                                                  "max_temporal_regression": 0.05}})
    assert policy.min_anchor_gain == 0 and policy.max_temporal_regression == 0.05
    assert ReleasePolicy.from_dict(policy.to_dict()) == policy


def test_split_time_holds_out_the_latest_period():
    data = _table(600, 0)
    earlier, latest, label, periods = split_time(data, SCHEMA, "year", "y")
    assert label == "2005" and periods == 6 and set(latest["year"]) == {2005}
    assert earlier["year"].max() == 2004 and len(earlier) + len(latest) == 600


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.assign(year=d["year"].astype(float).where(d.index != 3)), "1 missing value"),
    (lambda d: d.assign(year=2003), "one period only (2003)"),
    (lambda d: d.assign(year=np.where(d.index < 5, 2005, 2001)), "has 5 rows"),
])
def test_bad_time_columns_get_one_clear_line(change, message):
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        split_time(change(_table(200, 0)), SCHEMA, "year", "y")


def test_tails_count_real_rows_of_dropped_rare_categories():
    real = _table(2000, 0)
    synthetic = _table(2000, 1)
    synthetic = synthetic[synthetic["c"] != "rare"]
    synthetic = synthetic[synthetic["x"] < np.quantile(real["x"], 0.9)]
    tails = tails_report(real, synthetic, SCHEMA)
    assert tails.real_rows_in_dropped_rare == int((real["c"] == "rare").sum()) > 0
    assert tails.dropped_rare_categories[0]["category"] == "rare"
    flagged = {(r["column"], r["values"][0]) for r in tails.under_represented}
    assert ("x", ">") in flagged and ("c", "r") in flagged
    assert not any(r["column"] == "y" for r in tails.under_represented)
