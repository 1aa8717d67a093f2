"""Provenance: versions, the call, declared licence, and a bundle that verifies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dpsynth.accounting import Budget
from dpsynth.release import DatasetCard, release
from dpsynth.release.provenance import (
    ProvenanceSection,
    api_call,
    dependency_versions,
    new_provenance,
    verify_bundle,
)
from dpsynth.schema import Schema


def test_dependency_versions_name_the_core_stack():
    versions = dependency_versions()
    assert versions["numpy"] and versions["pandas"] != "not installed"


def test_provenance_round_trips_and_states_secure_mode():
    prov = new_provenance("dpsynth release x", seed=None, secure=True, licence="CC-BY-4.0")
    again = ProvenanceSection.from_dict(prov.to_dict())
    assert again == prov and again.seed is None and again.randomness.startswith("secure")


def test_api_call_lists_only_given_options():
    text = api_call("d", 1.0, target="y", time_column=None, secure=False)
    assert text == "dpsynth.release.release(data, schema, epsilon=1.0, dataset='d', target='y')"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    rng = pd.Series(range(400)) % 7
    data = pd.DataFrame({"a": rng.map(lambda v: f"c{v % 3}"), "b": (rng * 3) % 50,
                         "y": rng.map(lambda v: "yes" if v % 2 else "no")})
    schema = Schema.from_dict({"columns": [
        {"name": "a", "kind": "categorical", "categories": ["c0", "c1", "c2"]},
        {"name": "b", "kind": "integer", "lower": 0, "upper": 50},
        {"name": "y", "kind": "categorical", "categories": ["no", "yes"]}]})
    out = tmp_path_factory.mktemp("prov") / "bundle"
    release(data, schema, epsilon=2.0, dataset="toy", out=out,
            ledger=out.parent / "ledger.sqlite", cap=Budget(10, 1e-5), synthesizer="mst",
            random_state=3, n_targets=50, source_licence="public domain",
            policy={"fidelity": {"max_tvd_1way": None, "max_tvd_2way": None},
                    "utility": {"min_ratio": None}})
    return out


def test_api_release_card_names_the_call_and_verifies(bundle):
    card = DatasetCard.load(bundle)
    assert card.provenance.invocation.startswith("dpsynth.release.release(")
    assert card.provenance.source_licence == "public domain"
    assert verify_bundle(bundle) == []


def test_verify_reports_a_missing_and_an_unlisted_file(bundle, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    (copy / "report.html").unlink()
    (copy / "model" / "extra.bin").write_bytes(b"x")
    problems = verify_bundle(copy, ledger=bundle.parent / "ledger.sqlite")
    assert any("report.html: listed on the card but missing" in p for p in problems)
    assert any("model/extra.bin: in the bundle but not listed" in p for p in problems)


def test_card_with_evidence_and_provenance_round_trips(bundle):
    card = DatasetCard.load(bundle)
    assert card.evidence is not None and card.evidence.tails is not None
    assert card.evidence.anchor_ablation is None  # no target: no ablation
    assert DatasetCard.from_yaml(card.to_yaml()) == card
