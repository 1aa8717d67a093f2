"""Pairwise association between columns, and how much synthetic data distorts it.

Every column is first coded on the schema's declared domain (:func:`~dpsynth.evaluate.fidelity.
discretize`: categories as declared, numbers in equal-width bins between the declared bounds,
nulls as their own value), so one measure covers every pair of kinds: the bias-corrected
Cramér's V (Cramér, *Mathematical Methods of Statistics*, 1946; the small-sample correction of
Bergsma, *Journal of the Korean Statistical Society* 42:323, 2013). It lies in [0, 1]: 0 for
independent columns, 1 when one column determines the other.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dpsynth.errors import param_error
from dpsynth.evaluate.fidelity import discretize
from dpsynth.schema import Schema


def cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    """Bias-corrected Cramér's V between two integer-coded columns of equal length.

    Returns 0.0 when either column takes a single value (no association can be measured).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([0, 1] * 50)
    >>> round(cramers_v(x, x), 3)
    1.0
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise param_error("b", f"an array of the same shape as a {a.shape}", b.shape, "cramers_v")
    n = a.size
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    r, k = int(ia.max(initial=-1)) + 1, int(ib.max(initial=-1)) + 1
    if n < 2 or r < 2 or k < 2:
        return 0.0
    table = np.bincount(ia * k + ib, minlength=r * k).reshape(r, k).astype(float)
    expected = np.outer(table.sum(1), table.sum(0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    phi2 = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    r_c = r - (r - 1) ** 2 / (n - 1)
    k_c = k - (k - 1) ** 2 / (n - 1)
    denom = min(r_c - 1, k_c - 1)
    if denom <= 0:
        return 0.0
    return float(min(1.0, math.sqrt(phi2 / denom)))


def association_matrix(df: pd.DataFrame, schema: Schema, *, bins: int = 10) -> pd.DataFrame:
    """Symmetric matrix of bias-corrected Cramér's V between the schema's data columns.

    Text and identifier columns are left out; the diagonal is 1.
    """
    codes = discretize(df, schema, bins=bins)
    names = list(codes.columns)
    values = codes.to_numpy()
    out = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            out[i, j] = out[j, i] = cramers_v(values[:, i], values[:, j])
    return pd.DataFrame(out, index=names, columns=names)


def association_difference(real: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *,
                           bins: int = 10) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Association matrices of ``real`` and ``synthetic`` and their mean absolute difference.

    Returns ``(real_matrix, synthetic_matrix, mean_abs_difference)``; the mean runs over the
    pairs of distinct columns (0.0 when there is a single column).
    """
    if len(real) < 2 or len(synthetic) < 2:
        raise param_error("real/synthetic", "frames with at least 2 rows",
                          (len(real), len(synthetic)), "association_difference")
    a = association_matrix(real, schema, bins=bins)
    b = association_matrix(synthetic, schema, bins=bins)
    n = len(a)
    if n < 2:
        return a, b, 0.0
    upper = np.triu_indices(n, k=1)
    diff = np.abs(a.to_numpy() - b.to_numpy())[upper]
    return a, b, float(diff.mean())


__all__ = ["association_difference", "association_matrix", "cramers_v"]
