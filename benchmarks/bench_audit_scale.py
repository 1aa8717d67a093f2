"""The audit at scale (issue 19, item 4): CPU-seconds and peak memory of ``run_audit`` at
100,000 and 1,000,000 rows, against the all-pairs path as the baseline where it fits.

Usage (from the repository root)::

    python benchmarks/bench_audit_scale.py --rows 100000 1000000

Tables: Adult (``benchmarks/data/adult.csv``) split in three disjoint thirds; the training
table, the holdout and the synthetic table are each resampled from their own third to
``--rows`` rows, numeric columns de-binned with uniform jitter (so rows are not duplicates),
categorical codes as labels, and one derived numeric column with 5 % missing values: 15 mixed
columns. Each size is measured in its own child process (``resource`` peak RSS per process).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA = Path(__file__).resolve().parent / "data" / "adult.csv"
RESULTS = Path(__file__).resolve().parent / "results"
ORDINAL = ("age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week")


def _resample(third: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = third.iloc[rng.integers(len(third), size=n)].reset_index(drop=True)
    out = pd.DataFrame(index=range(n))
    for name in third.columns:
        col = rows[name].to_numpy()
        if name in ORDINAL:
            out[name] = col + rng.uniform(-0.5, 0.5, size=n)
        else:
            out[name] = pd.Series(np.char.add(f"{name[:3]}_", col.astype(str)), dtype=object)
    derived = np.log1p(out["hours-per-week"].abs().to_numpy()) + rng.normal(0, 0.1, size=n)
    derived[rng.random(n) < 0.05] = np.nan
    out["derived_num"] = derived
    return out


def scale_tables(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Training, holdout and synthetic tables of ``n`` rows each (15 mixed columns).

    The three are independent draws from one population (Adult rows resampled with jitter), so
    the audit of this synthetic table must find no risk; the continuous jitter makes the
    tables disjoint (no row of one equals a row of another; :func:`main` checks it). Drawing
    them from disjoint thirds of Adult would not do: each table would then hold jittered twins
    of its own rows that the others lack, which the holdout-based attacks rightly tell apart.
    """
    adult = pd.read_csv(DATA)
    rng = np.random.default_rng(seed)
    train, holdout, synthetic = (_resample(adult, n, rng) for _ in range(3))
    return train, holdout, synthetic
