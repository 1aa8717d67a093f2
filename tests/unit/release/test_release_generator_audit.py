"""``release(generator_audit_fits=...)``: the white-box generator audit runs before any
spend, goes on the card and in the report, and a broken mechanism is rejected unspent."""

from __future__ import annotations

import pytest
from planted_mechanisms import HalfNoiseMST

from dpsynth.accounting import Budget
from dpsynth.accounting.ledger import Ledger
from dpsynth.datasets import load_dataset
from dpsynth.errors import ParameterError
from dpsynth.release import release
from dpsynth.release.card import DatasetCard


@pytest.fixture(scope="module")
def small():
    rows, schema = load_dataset("wage")
    return rows.sample(600, random_state=2).reset_index(drop=True), schema


def test_correct_generator_ships_with_its_audit_on_the_card(small, tmp_path):
    rows, schema = small
    result = release(rows, schema, epsilon=4.0, dataset="wage", ledger=tmp_path / "l.sqlite",
                     cap=Budget(10, 1e-5), synthesizer="mst", out=tmp_path / "bundle",
                     random_state=0, n_targets=200, generator_audit_fits=60)
    audit = result.card.generator_audit
    assert audit is not None and not audit.violated and audit.verdict == "pass"
    assert audit.claimed_epsilon == 4.0 and audit.n_fits == 60
    assert 0 <= audit.epsilon_lower <= 4.0 and audit.epsilon_ci[0] <= audit.epsilon_ci[1]
    assert "halved noise" in audit.power
    card = DatasetCard.load(tmp_path / "bundle")
    assert card.generator_audit == audit  # round-trips through the YAML
    page = (tmp_path / "bundle" / "report.html").read_text()
    assert "White-box audit of the generator" in page


def test_broken_generator_is_rejected_before_anything_is_spent(small, tmp_path):
    rows, schema = small
    book = Ledger(tmp_path / "l.sqlite")
    result = release(rows, schema, epsilon=4.0, dataset="wage", ledger=book,
                     cap=Budget(10, 1e-5), synthesizer=HalfNoiseMST(n_bins=4),
                     out=tmp_path / "bundle", random_state=0, n_targets=200,
                     generator_audit_fits=200)
    card = result.card
    assert card.decision == "reject" and not result.shipped
    assert card.generator_audit is not None and card.generator_audit.violated
    assert "white-box generator audit" in card.reasons[0]
    assert not book.spends("wage") and book.status("wage").epsilon == 0
    assert not (tmp_path / "bundle" / "synthetic.csv").exists()


@pytest.mark.parametrize(("fits", "synthesizer"), [(5, "mst"), (-1, "mst"), (60, "dptext-table")])
def test_bad_audit_settings_are_refused_before_anything_runs(small, tmp_path, fits,
                                                              synthesizer):
    rows, schema = small
    with pytest.raises(ParameterError, match="generator_audit_fits"):
        release(rows, schema, epsilon=1.0, dataset="wage", ledger=tmp_path / "l.sqlite",
                cap=Budget(10, 1e-5), synthesizer=synthesizer, generator_audit_fits=fits)
    assert not (tmp_path / "l.sqlite").exists()


def test_dp_sgd_generator_is_audited_on_the_card(small, tmp_path):
    """dpar goes through the gradient-canary audit (a small model of the audit's own)."""
    rows, schema = small
    result = release(rows, schema, epsilon=4.0, dataset="wage", ledger=tmp_path / "l.sqlite",
                     cap=Budget(10, 1e-5), synthesizer="dpar",
                     synthesizer_params={"epochs": 1, "d_model": 8, "n_heads": 2},
                     random_state=0, n_targets=200, generator_audit_fits=40)
    audit = result.card.generator_audit
    assert audit is not None and not audit.violated
    assert "gradient-canary" in audit.method and audit.n_fits == 40
