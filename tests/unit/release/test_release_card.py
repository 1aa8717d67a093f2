"""The dataset card: exact YAML round trip, strict loading, dotted access."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from dpsynth.errors import ModelFormatError
from dpsynth.release import Attempt, Check, DatasetCard
from dpsynth.release.card import value_at


def _card(**changes) -> DatasetCard:
    check = Check("attack:dcr_membership", "privacy", -0.0123456789, 0.05, True, "<= 0.05")
    fields = dict(
        release_id="release-abc", dataset="toy", created="2026-01-02T03:04:05+00:00",
        decision="ship", reasons=("every check passed",),
        generator={"name": "mst", "params": {"epsilon": 1.0, "delta": None, "seed": 2**62}},
        source={"fingerprint": "sha256:00", "n_rows": np.int64(100)},
        schema={"version": 1, "columns": [{"name": "a", "kind": "categorical",
                                           "categories": ("x", "y")}]},
        synthetic={"n_rows": 80, "synthetic_share": 1.0, "files": {}},
        privacy={"release_epsilon": 0.1 + 0.2, "when": "2026-01-02", "ratio": float("nan")},
        attempts=(Attempt(1, "ship", ["every check passed"], 0.3,
                          [{"purpose": "p", "mechanism": "m", "epsilon_alone": 0.3}],
                          {"generator": 7, "sample": 8, "audit": 9}, [check]),),
        evaluation={"fidelity": {"tvd_2way": np.float64(1 / 3)}, "utility": None},
        audit={"attacks": [{"attack": "dcr_membership", "risk": {"value": -0.01,
                                                                 "ci": (-0.05, 0.03)}}]},
        checks=(check,), policy={"max_attempts": 2}, reproduce={"seed": 0},
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
    assert again.created == "2026-01-02T03:04:05+00:00" and again.privacy["when"] == "2026-01-02"
    assert again.privacy["release_epsilon"] == 0.1 + 0.2
    assert again.privacy["ratio"] is None  # NaN becomes null, so equality holds
    assert again.generator["params"]["seed"] == 2**62


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
    with pytest.raises(KeyError):
        value_at({"a": 1}, "a.b")


def test_shipped_flag():
    assert _card().shipped
    assert not _card(decision="reject").shipped
