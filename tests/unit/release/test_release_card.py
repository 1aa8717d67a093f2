"""The dataset card: exact YAML round trip, strict loading, dotted access."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from dpsynth.accounting import Budget
from dpsynth.errors import ModelFormatError
from dpsynth.release import Attempt, Check, DatasetCard, ReleasePolicy
from dpsynth.release.card import value_at
from dpsynth.release.card_sections import (
    AttackRow,
    AttemptSeeds,
    AuditSection,
    EvaluationSection,
    GeneratorSection,
    PrivacySection,
    ReproduceSection,
    SourceSection,
    SpendRow,
    SyntheticSection,
    UtilitySection,
)


def _card(**changes) -> DatasetCard:
    check = Check("attack:dcr_membership", "privacy", -0.0123456789, 0.05, True, "<= 0.05")
    rate = {"value": -0.01, "ci": (-0.05, 0.03)}
    fields = dict(
        release_id="release-abc", dataset="toy", created="2026-01-02T03:04:05+00:00",
        decision="ship", reasons=("every check passed",),
        generator=GeneratorSection("mst", "0.1.0", "dpsynth.synthesizers.MST",
                                   {"epsilon": 1.0, "delta": None, "seed": 2**62},
                                   "2026-01-02", "Adult"),
        source=SourceSection("toy", "sha256:00", None, np.int64(100), 80, 20, 0.2, "row",
                             "the holdout"),
        schema={"version": 1, "columns": [{"name": "a", "kind": "categorical",
                                           "categories": ("x", "y")}]},
        synthetic=SyntheticSection(80),
        privacy=PrivacySection(1.0, 1e-5, "PLD", 0.1 + 0.2, 1e-5, 0.5, 1, Budget(3, 1e-5),
                               0.0, 0.3, 2.7, "row", "seeded", "ledger.sqlite", "1:ab",
                               ("not covered",)),
        attempts=(Attempt(1, "ship", ["every check passed"], 0.3,
                          [SpendRow("p", "m", 0.3)], AttemptSeeds(7, 8, 9), [check]),),
        evaluation=EvaluationSection({"tvd_2way": np.float64(1 / 3)},
                                     UtilitySection("a", "y", 0.7, 0.8, float("nan"),
                                                    "holdout rows")),
        audit=AuditSection("no risk found", 0.05, 0.95, 0, 1.5, 80, 20, 80, (AttackRow(
            "dcr_membership", "membership", "no knowledge", 20, rate, rate, rate, rate,
            "no risk found", None, None),)),
        checks=(check,), policy=ReleasePolicy(max_attempts=2),
        reproduce=ReproduceSection(0, False, 0.2, None, 2000, None, None, (), "mst", 8,
                                   "dpsynth sample ...", "dpsynth release ..."),
        filters=(), notes=("a note",))
    fields.update(changes)
    return DatasetCard(**fields)


def test_round_trip_is_exact():
    card = _card()
    text = card.to_yaml()
    again = DatasetCard.from_yaml(text)
    assert again == card
    assert again.to_yaml() == text
    # values that YAML would re-type are kept as they were
    assert again.created == "2026-01-02T03:04:05+00:00"
    assert again.generator.fitted_at == "2026-01-02"
    assert again.privacy.release_epsilon == 0.1 + 0.2
    assert again.evaluation.utility.ratio is None  # NaN becomes null, so equality holds
    assert again.generator.params["seed"] == 2**62
    assert again.generator.defaults_tuned_on == "Adult"


def test_sections_are_read_by_attribute_and_by_yaml_key():
    card = _card()
    assert card.privacy.dataset_cap == Budget(3, 1e-5)
    assert card.privacy["dataset_cap"] == {"epsilon": 3, "delta": 1e-5}
    assert card.generator.class_path == card.generator["class"] == "dpsynth.synthesizers.MST"
    assert card.attempts[0].seeds.sample == card.attempts[0].seeds["sample"] == 8
    assert card.audit.attacks[0].risk["ci"] == [-0.05, 0.03]
    assert card.source.n_rows == 100 and type(card.source.n_rows) is int
    assert card.policy.max_attempts == 2
    # sections that did not run keep their historical YAML form
    empty = _card(audit=AuditSection(), evaluation=EvaluationSection(),
                  generator=GeneratorSection("mst", "0.1.0"))
    data = empty.to_dict()
    assert data["audit"] == {} and data["evaluation"] == {"fidelity": None, "utility": None}
    assert data["generator"] == {"name": "mst", "dpsynth_version": "0.1.0"}
    assert DatasetCard.from_yaml(empty.to_yaml()) == empty


def test_yaml_is_plain_and_commented():
    text = _card().to_yaml()
    assert text.startswith("# dpsynth dataset card")
    data = yaml.safe_load(text)
    assert data["format"] == "dpsynth.dataset_card" and data["format_version"] == 1
    assert data["attempts"][0]["checks"][0]["name"] == "attack:dcr_membership"


def test_save_load_file_and_directory(tmp_path):
    card = _card()
    card.save(tmp_path / "dataset_card.yaml")
    assert DatasetCard.load(tmp_path) == card
    assert DatasetCard.load(tmp_path / "dataset_card.yaml") == card


@pytest.mark.parametrize("text", ["format: other\n", "[1, 2]\n",
                                  "format: dpsynth.dataset_card\nformat_version: 9\n",
                                  "format: dpsynth.dataset_card\nformat_version: 1\n", "a: [\n"])
def test_bad_documents_are_refused(text):
    with pytest.raises(ModelFormatError):
        DatasetCard.from_yaml(text)


def test_missing_card(tmp_path):
    with pytest.raises(ModelFormatError, match="no dataset card"):
        DatasetCard.load(tmp_path)


def test_dotted_access():
    card = _card()
    assert card.value("attempts.0.epsilon") == 0.3
    assert card.value("audit.attacks.0.risk.ci.1") == 0.03
    assert card.value("evaluation.fidelity.tvd_2way") == 1 / 3
    assert card.value("privacy.dataset_cap.epsilon") == 3
    with pytest.raises(KeyError):
        value_at({"a": 1}, "a.b")


def test_shipped_flag():
    assert _card().shipped
    assert not _card(decision="reject").shipped


def test_resolved_parameters_round_trip_and_show_in_the_report():
    from dpsynth.release.report import render_report

    generator = GeneratorSection("dpar", "0.1.0", "dpsynth.synthesizers.ar.DPARSynthesizer",
                                 {"epsilon": 1.0, "epochs": None, "d_model": 32},
                                 "2026-01-02", "HMDA",
                                 {"epsilon": 1.0, "epochs": 20.04, "d_model": 32, "steps": 81})
    card = _card(generator=generator)
    again = DatasetCard.from_yaml(card.to_yaml())
    assert again == card and again.generator.automatic() == {"epochs": 20.04, "steps": 81}
    html = render_report(card)
    assert "The fit chose its automatic settings as: epochs=20.04, steps=81." in html
    # a card without them (written before the field) renders as before
    assert "The fit chose" not in render_report(_card())
    assert "resolved_params" not in _card().to_dict()["generator"]
