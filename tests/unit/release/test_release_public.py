"""``release(..., public=rows)``: declared public rows reach the generator and the card, and
bad ones are refused before anything is spent."""

from __future__ import annotations

import pytest

from dpsynth.accounting import Budget
from dpsynth.accounting.ledger import Ledger
from dpsynth.datasets import load_dataset
from dpsynth.errors import DataValidationError, ParameterError, PrivacyError
from dpsynth.release import DatasetCard, release

FAST = {"epochs": 2, "d_model": 16, "n_heads": 2}


@pytest.fixture(scope="module")
def wage():
    rows, schema = load_dataset("wage")
    rows = rows.sample(1300, random_state=3).reset_index(drop=True)
    return rows.iloc[:1000].reset_index(drop=True), rows.iloc[1000:].reset_index(drop=True), \
        schema


def _release(private, public, schema, tmp_path, **kwargs):
    return release(private, schema, epsilon=1.0, dataset="wage",
                   ledger=tmp_path / "l.sqlite", cap=Budget(5, 1e-5), random_state=0,
                   n_targets=300, public=public, **{"synthesizer": "dpar",
                                                    "synthesizer_params": FAST, **kwargs})


def test_the_card_records_the_public_rows_and_the_spend_is_the_private_rows(wage, tmp_path):
    private, public, schema = wage
    result = _release(private, public, schema, tmp_path, out=tmp_path / "bundle")
    source = result.card.source
    assert source.public_rows["rows"] == 300
    assert source.public_rows["fingerprint"].startswith("sha256:")
    assert source.n_rows == len(private)  # the holdout and the audit read the private rows
    assert result.card.privacy["release_epsilon"] == pytest.approx(1.0, abs=1e-3)
    loaded = DatasetCard.load(tmp_path / "bundle")  # round trip through the YAML
    assert loaded.source.public_rows == source.public_rows
    report = (tmp_path / "bundle" / "report.html").read_text()
    assert "declared public" in report and source.public_rows["fingerprint"] in report
    assert "public=" in loaded.provenance.invocation


def test_a_card_without_public_rows_has_no_such_key(wage, tmp_path):
    private, _, schema = wage
    result = _release(private, None, schema, tmp_path, synthesizer="mst",
                      synthesizer_params=None)
    assert result.card.source.public_rows is None
    assert "public_rows" not in result.card.source.to_dict()


@pytest.mark.parametrize("case", ["aim", "schema", "itself"])
def test_bad_public_rows_are_refused_before_anything_is_spent(wage, tmp_path, case):
    private, public, schema = wage
    kwargs: dict = {}
    if case == "aim":
        kwargs, error = {"synthesizer": "aim", "synthesizer_params": None}, ParameterError
    elif case == "schema":
        public, error = public.assign(age=500), DataValidationError
    else:
        public, error = private.sample(frac=1.0, random_state=0), PrivacyError
    with pytest.raises(error):
        _release(private, public, schema, tmp_path, out=tmp_path / "bundle", **kwargs)
    assert not (tmp_path / "bundle").exists()
    if (tmp_path / "l.sqlite").exists():
        book = Ledger(tmp_path / "l.sqlite")
        assert "wage" not in [d.name for d in book.datasets()] or not book.spends("wage")
