"""Copy attacks on a real table: a few planted copies are caught, chance twins are not."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpsynth.attacks.copies import exact_copies, near_copies
from dpsynth.attacks.threat import AuditData
from dpsynth.errors import ParameterError

ADULT = Path(__file__).resolve().parents[3] / "benchmarks" / "data" / "adult.csv"


@pytest.fixture(scope="module")
def split():
    """4,000 training rows, a 2,000-row holdout and 4,000 independent rows of Adult."""
    rows = pd.read_csv(ADULT)
    order = np.random.default_rng(7).permutation(len(rows))
    return (rows.iloc[order[:4000]], rows.iloc[order[4000:6000]],
            rows.iloc[order[6000:10000]])


def _leaky(train, independent, share, jitter=False):
    """The independent rows with ``share`` of them replaced by (jittered) training rows."""
    k = int(share * len(independent))
    copies = train.sample(k, random_state=3).copy()
    if jitter:
        rng = np.random.default_rng(4)
        copies["age"] += rng.integers(-1, 2, k)
        copies["hours-per-week"] += rng.integers(-2, 3, k)
    return pd.concat([independent.iloc[: len(independent) - k], copies])


@pytest.mark.parametrize("attack", [exact_copies, near_copies])
def test_one_percent_verbatim_rows_are_a_leak(split, attack):
    train, holdout, independent = split
    data = AuditData.from_frames(train, holdout, _leaky(train, independent, 0.01))
    result = attack(data, random_state=0)
    assert result.leak, result.to_dict()
    assert result.exposed_row_ids


def test_jittered_copies_are_near_copies(split):
    train, holdout, independent = split
    data = AuditData.from_frames(train, holdout, _leaky(train, independent, 0.02, jitter=True))
    assert near_copies(data, random_state=0).leak
    assert not exact_copies(data, random_state=0).leak  # no row is identical any more


@pytest.mark.parametrize("attack", [exact_copies, near_copies])
def test_an_independent_sample_passes(split, attack):
    train, holdout, independent = split
    for seed in range(3):
        result = attack(AuditData.from_frames(train, holdout, independent), random_state=seed)
        assert not result.leak, result.to_dict()


@pytest.mark.parametrize("attack", [exact_copies, near_copies])
def test_chance_twins_in_a_low_cardinality_table_pass(split, attack):
    """Three binary-ish columns: nearly every row has twins, in members and controls alike."""
    train, holdout, independent = (t[["sex", "race", "income>50K"]] for t in split)
    data = AuditData.from_frames(train, holdout, independent)
    result = attack(data, random_state=1)
    assert result.control.value > 0.5 or attack is near_copies
    assert not result.leak, result.to_dict()


def test_parameters_are_checked(split):
    train, holdout, independent = split
    data = AuditData.from_frames(train, holdout, independent)
    with pytest.raises(ParameterError, match="'ratio' parameter"):
        near_copies(data, ratio=0)
    with pytest.raises(ParameterError, match="'threshold' parameter"):
        exact_copies(data, threshold=-1)
