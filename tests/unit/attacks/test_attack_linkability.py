"""Linkability through the synthetic data, with hand-made tables."""

import numpy as np
import pandas as pd
import pytest

from dpsynth.attacks import AuditData, ThreatModel, linkability
from dpsynth.attacks.linkability import default_split
from dpsynth.errors import ParameterError


def _rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                         "c": rng.normal(size=n), "d": rng.choice(list("xyz"), size=n)})


def test_default_split_is_a_disjoint_cover():
    first, second = default_split(("a", "b", "c", "d", "e"), np.random.default_rng(0))
    assert len(first) == 3 and len(second) == 2
    assert set(first) | set(second) == set("abcde") and not set(first) & set(second)


def test_copy_with_unique_rows_links_every_target():
    train, holdout = _rows(300, 1), _rows(300, 2)
    result = linkability(AuditData.from_frames(train, holdout, train),
                         ThreatModel.linkability([["a", "d"], ["b", "c"]]), random_state=0)
    assert result.success.value == 1.0 and result.leak
    assert result.metrics["source_a"] == "a, d" and result.metrics["source_b"] == "b, c"
    assert result.baseline.value < 0.05


def test_independent_sample_links_no_better_than_controls():
    train, holdout, other = _rows(300, 1), _rows(300, 2), _rows(300, 3)
    result = linkability(AuditData.from_frames(train, holdout, other), random_state=0)
    assert not result.leak
    assert result.success.value < 0.05


def test_more_neighbours_raise_success_and_baseline():
    train, holdout, other = _rows(300, 1), _rows(300, 2), _rows(300, 3)
    data = AuditData.from_frames(train, holdout, other)
    one = linkability(data, random_state=0)
    many = linkability(data, n_neighbors=30, random_state=0)
    assert many.control.value > one.control.value and many.baseline.value > one.baseline.value


def test_linkability_validates():
    frame = _rows(20, 4)
    data = AuditData.from_frames(frame, frame, frame)
    with pytest.raises(ParameterError, match="'n_neighbors'"):
        linkability(data, n_neighbors=0)
    with pytest.raises(ParameterError, match="'columns'"):
        linkability(data, ThreatModel.linkability([["a"], ["nope"]]))
    single = AuditData.from_frames(frame[["a"]], frame[["a"]], frame[["a"]])
    with pytest.raises(ParameterError, match="two audited columns"):
        linkability(single)
