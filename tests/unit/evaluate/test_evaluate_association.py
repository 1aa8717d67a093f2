"""Bias-corrected Cramér's V and the association-difference matrix, on known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.errors import ParameterError
from dpsynth.evaluate.association import association_difference, association_matrix, cramers_v
from dpsynth.schema import Column, Schema


def test_identical_columns_are_fully_associated():
    x = np.repeat([0, 1, 2], 50)
    assert cramers_v(x, x) == pytest.approx(1.0)
    assert cramers_v(x, 2 - x) == pytest.approx(1.0)  # relabelled: still determined


def test_independent_columns_are_near_zero():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 5000), rng.integers(0, 6, 5000)
    assert cramers_v(a, b) < 0.03


def test_constant_column_and_shape_mismatch():
    assert cramers_v(np.zeros(10), np.arange(10) % 2) == 0.0
    with pytest.raises(ParameterError):
        cramers_v(np.zeros(3), np.zeros(4))


def test_bias_correction_shrinks_small_sample_noise():
    # 20 rows, 5 x 5 table of independent draws: the plain V is large by chance alone.
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 5, 20), rng.integers(0, 5, 20)
    n = 20
    table = pd.crosstab(a, b).to_numpy()
    expected = np.outer(table.sum(1), table.sum(0)) / n
    plain = np.sqrt(((table - expected) ** 2 / expected).sum() / n / 4)
    assert cramers_v(a, b) < plain


def _schema() -> Schema:
    return Schema((Column("c", "categorical", categories=("a", "b")),
                   Column("n", "numeric", lower=0.0, upper=1.0),
                   Column("d", "categorical", categories=("u", "v"))))


def test_matrix_and_difference():
    rng = np.random.default_rng(2)
    c = rng.choice(["a", "b"], 400)
    real = pd.DataFrame({"c": c, "n": np.where(c == "a", 0.1, 0.9), "d": rng.choice(["u", "v"],
                                                                                     400)})
    shuffled = real.assign(n=rng.permutation(real["n"].to_numpy()))
    a = association_matrix(real, _schema())
    assert list(a.columns) == ["c", "n", "d"]
    assert np.allclose(np.diag(a), 1) and np.allclose(a, a.T)
    assert a.loc["c", "n"] == pytest.approx(1.0)
    _, _, same = association_difference(real, real, _schema())
    assert same == 0.0
    ra, sa, broken = association_difference(real, shuffled, _schema())
    assert sa.loc["c", "n"] < 0.1
    assert broken > 0.3  # the c-n pair lost its association (1 of 3 pairs)
