"""Generations of a generator refitted on its own output, against accumulating real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dpsynth.errors import ParameterError
from dpsynth.release.rounds import METRICS, evaluate_rounds, measure, rounds_html
from dpsynth.schema import Schema

SCHEMA = Schema.from_dict({"columns": [
    {"name": "x", "kind": "numeric", "lower": -5, "upper": 5},
    {"name": "c", "kind": "categorical", "categories": ["a", "b", "rare"]}]})


def _real(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=n).clip(-5, 5),
                         "c": rng.choice(["a", "b", "rare"], size=n, p=[0.6, 0.37, 0.03])})


def test_measure_sees_lost_rare_categories_and_tails():
    real = _real()
    kept = measure(real, real, SCHEMA, "replace", 0)
    assert kept.category_coverage == kept.rare_coverage == 1.0
    assert kept.tail_mass == pytest.approx(1.0) and kept.tvd_2way == pytest.approx(0.0)
    narrow = real.assign(x=real["x"].clip(-0.5, 0.5), c="a")
    lost = measure(real, narrow, SCHEMA, "replace", 1)
    assert lost.rare_coverage == 0.0 and lost.category_coverage == pytest.approx(1 / 3)
    assert lost.tail_mass == 0.0 and lost.tvd_2way > 0.2


def test_rounds_run_both_arms_and_render():
    result = evaluate_rounds(_real(), SCHEMA, rounds=2, epsilon=2.0, random_state=1)
    frame = result.frame()
    assert sorted(frame["arm"].unique()) == ["accumulate", "replace"]
    assert frame.groupby("arm")["round"].max().tolist() == [2, 2]
    assert result.fits_on_real == 3
    assert list(frame.columns) == ["arm", "round", *METRICS]  # no text measures without text
    assert not result.text_reference and kept_rows_have_no_text(result)
    assert "Do not replace real data" in result.warning()
    html = rounds_html(result)
    assert html.count("<svg") == 4 and "accumulate" in html
    with pytest.raises(ParameterError):
        evaluate_rounds(_real(), SCHEMA, rounds=0)


def kept_rows_have_no_text(result) -> bool:
    return all(r.self_bleu is None and r.mauve is None for r in result.rows)
