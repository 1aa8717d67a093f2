"""``release`` end to end in Python: a copying generator is rejected, a DP generator ships,
regeneration spends through the ledger, the holdout is never trained on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from planted import Copycat

from dpsynth.accounting import Budget, pld_epsilon
from dpsynth.accounting.ledger import Ledger, UnknownDatasetError
from dpsynth.datasets import load_dataset
from dpsynth.errors import BudgetExceededError, ParameterError
from dpsynth.release import ReleasePolicy, release, split_holdout
from dpsynth.schema import Column, Schema


@pytest.fixture(scope="module")
def wage():
    return load_dataset("wage")


@pytest.fixture(scope="module")
def small(wage):
    rows, schema = wage
    return rows.sample(1000, random_state=1).reset_index(drop=True), schema


def _entries(ledger: Ledger, dataset: str, release_id: str):
    return [s for s in ledger.spends(dataset) if s.reservation.release_id == release_id]


def test_copying_generator_is_rejected(small, tmp_path):
    rows, schema = small
    book = Ledger(tmp_path / "l.sqlite")
    result = release(rows, schema, epsilon=1.0, dataset="wage", ledger=book,
                     cap=Budget(5, 1e-5), synthesizer=Copycat(), target="jobclass",
                     out=tmp_path / "bundle", random_state=0, n_targets=500)
    card = result.card
    assert card.decision == "reject" and not result.shipped
    assert len(card.attempts) == 1  # a leak is never regenerated
    assert any(c.area == "privacy" and c.passed is False for c in card.checks)
    assert card.audit["verdict"] == "leak"
    assert not (tmp_path / "bundle" / "synthetic.csv").exists()
    assert not (tmp_path / "bundle" / "model").exists()
    assert (tmp_path / "bundle" / "dataset_card.yaml").exists()
    assert card.synthetic["withheld"] is True
    # the spend was recorded under the release id, tagged with its attempt
    spent = _entries(book, "wage", card.release_id)
    assert [s.purpose for s in spent] == ["release attempt 1: memorise rows"]


def test_dp_generator_at_small_epsilon_ships(wage, tmp_path):
    rows, schema = wage
    result = release(rows, schema, epsilon=1.0, dataset="wage", ledger=tmp_path / "l.sqlite",
                     cap=Budget(3, 1e-5), synthesizer="mst", target="health_ins",
                     out=tmp_path / "bundle", random_state=0)
    card = result.card
    assert card.decision == "ship", card.reasons
    assert all(c.passed is not False for c in card.checks)
    assert card.privacy["release_epsilon"] <= 1.0 + 1e-9
    assert card.source["n_train"] + card.source["n_holdout"] == len(rows)
    assert card.source["n_holdout"] == 600
    assert card.synthetic["n_rows"] == 2400 and card.synthetic["withheld"] is False
    for name in ("synthetic.csv", "synthetic.parquet", "model/manifest.json", "report.html"):
        assert (tmp_path / "bundle" / name).exists()
    assert pd.read_parquet(tmp_path / "bundle" / "synthetic.parquet").shape == (2400, 10)


def test_regenerate_spends_again_and_is_capped(small, tmp_path):
    rows, schema = small
    book = Ledger(tmp_path / "l.sqlite")
    impossible = ReleasePolicy(max_tvd_2way=0.0, max_attempts=2)
    result = release(rows, schema, epsilon=0.5, dataset="wage", ledger=book,
                     cap=Budget(4, 1e-5), synthesizer="mst", policy=impossible,
                     random_state=3, n_targets=200)
    card = result.card
    assert [a.outcome for a in card.attempts] == ["regenerate", "reject"]
    assert card.decision == "reject"
    assert any("after 2 attempts" in r for r in card.reasons)
    first, second = card.attempts
    assert first.seeds["generator"] != second.seeds["generator"]
    assert first.epsilon == pytest.approx(0.5, abs=1e-3)
    assert second.epsilon == pytest.approx(0.5, abs=1e-3)
    spent = _entries(book, "wage", card.release_id)
    assert {s.purpose.split(":")[0] for s in spent} == {"release attempt 1",
                                                        "release attempt 2"}
    total = pld_epsilon([s.event for s in spent], 1e-5)
    assert card.privacy["release_epsilon"] == pytest.approx(total)
    assert 0.5 < total < 1.0 + 1e-6  # two attempts, composed (tighter than the sum)
    assert card.privacy["dataset_epsilon_after"] == pytest.approx(book.status("wage").epsilon)


def test_ledger_refusal_ends_the_release(small, tmp_path):
    rows, schema = small
    book = Ledger(tmp_path / "l.sqlite")
    impossible = ReleasePolicy(max_tvd_2way=0.0, max_attempts=3)
    result = release(rows, schema, epsilon=1.0, dataset="wage", ledger=book,
                     cap=Budget(1.2, 1e-5), synthesizer="mst", policy=impossible,
                     random_state=0, n_targets=200)
    outcomes = [a.outcome for a in result.card.attempts]
    assert outcomes == ["regenerate", "refused"]
    assert result.card.decision == "reject"
    assert any("refused" in r for r in result.card.reasons)
    assert book.status("wage").epsilon <= 1.2
    with pytest.raises(BudgetExceededError):  # a first attempt over the cap is an error
        release(rows, schema, epsilon=1.0, dataset="wage", ledger=book, synthesizer="mst",
                random_state=0)


def test_unregistered_dataset_needs_a_cap(small, tmp_path):
    rows, schema = small
    Ledger(tmp_path / "l.sqlite").register_table("other", Budget(1, 1e-6),
                                                 rows.head(50), schema)
    with pytest.raises(UnknownDatasetError, match="dpsynth budget register"):
        release(rows, schema, epsilon=1.0, dataset="wage", ledger=tmp_path / "l.sqlite")
    assert [d.name for d in Ledger(tmp_path / "l.sqlite").datasets()] == ["other"]


def test_arguments_are_validated_before_anything_is_spent(small, tmp_path):
    rows, schema = small
    with pytest.raises(ParameterError) as info:
        release(rows, schema, epsilon=-1, dataset="", holdout_fraction=0.9, target="age",
                secrets=["nope"], synthesizer="nope", policy={"max_attempts": 0},
                ledger=tmp_path / "l.sqlite", cap=Budget(1, 1e-6))
    text = str(info.value)
    for part in ("'epsilon'", "'dataset'", "'holdout_fraction'", "'target'", "'secrets'",
                 "'synthesizer'", "max_attempts"):
        assert part in text
    assert not (tmp_path / "l.sqlite").exists()
    with pytest.raises(ParameterError, match="synthesizer_params"):
        release(rows, schema, epsilon=1, dataset="wage", synthesizer="mst",
                synthesizer_params={"epsilon": 3}, ledger=tmp_path / "l.sqlite")


def test_holdout_is_never_trained_on(small, tmp_path):
    rows, schema = small
    result = release(rows, schema, epsilon=1.0, dataset="wage", ledger=tmp_path / "l.sqlite",
                     cap=Budget(5, 1e-5), synthesizer=Copycat(), random_state=5,
                     holdout_fraction=0.3, n_targets=100)
    seen = set(result.synthesizer.seen_)
    held = set(result.holdout_index)
    assert len(held) == 300 and not seen & held
    assert seen | held == set(rows.index)


def test_split_keeps_users_together():
    schema = Schema((Column("user", "identifier"), Column("x", "categorical",
                                                          categories=("a", "b"))),
                    user_key="user")
    data = pd.DataFrame({"user": np.repeat(np.arange(50), 3), "x": ["a", "b", "a"] * 50})
    train, holdout = split_holdout(data, schema, 0.2, seed=0)
    assert set(train["user"]).isdisjoint(holdout["user"])
    assert holdout["user"].nunique() == 10 and len(train) + len(holdout) == len(data)


def test_existing_bundle_is_not_overwritten_silently(small, tmp_path):
    rows, schema = small
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "synthetic.csv").write_text("old rows\n")
    book = Ledger(tmp_path / "l.sqlite")
    book.register_table("wage", Budget(5, 1e-5), rows, schema)
    with pytest.raises(ParameterError, match="already holds a release bundle"):
        release(rows, schema, epsilon=1.0, dataset="wage", ledger=book, out=out)
    assert book.status("wage").n_spends == 0
    # with overwrite, a rejected release removes the old rows
    release(rows, schema, epsilon=1.0, dataset="wage", ledger=book, out=out, overwrite=True,
            synthesizer=Copycat(), random_state=0, n_targets=100)
    assert not (out / "synthetic.csv").exists()


def test_secure_mode_is_recorded(small, tmp_path):
    rows, schema = small
    result = release(rows, schema, epsilon=1.0, dataset="wage", ledger=tmp_path / "l.sqlite",
                     cap=Budget(5, 1e-5), synthesizer="mst", secure=True, n_targets=100)
    card = result.card
    assert card.privacy["randomness"].startswith("secure")
    assert card.generator["params"]["secure_mode"] is True
    assert card.generator["params"]["random_state"] is None
    assert card.attempts[0].seeds["generator"] is None
    assert "--secure" in card.reproduce["rerun"]
    with pytest.raises(ParameterError, match="random_state"):
        release(rows, schema, epsilon=1.0, dataset="wage", ledger=tmp_path / "l.sqlite",
                secure=True, random_state=0)


def test_text_release_that_copies_is_rejected(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    notes = pd.DataFrame({"topic": rng.choice(["a", "b"], n), "note": [
        f"patient {i} reached at 555-{rng.integers(100, 999)}-{rng.integers(1000, 9999)} "
        f"about case {rng.integers(10**6)}" for i in range(n)]})
    schema = Schema((Column("topic", "categorical", categories=("a", "b")),
                     Column("note", "text")))
    result = release(notes, schema, epsilon=2.0, dataset="notes", ledger=tmp_path / "l.sqlite",
                     cap=Budget(5, 1e-5), synthesizer=Copycat(), out=tmp_path / "bundle",
                     random_state=0)
    card = result.card
    assert card.decision == "reject"
    assert card.audit["verdict"] == "leak" and "note" in card.audit["text"]
    assert any(c.name == "text:note:exact" and c.passed is False for c in card.checks)
    page = (tmp_path / "bundle" / "report.html").read_text()
    assert "Copies of the private text" in page
