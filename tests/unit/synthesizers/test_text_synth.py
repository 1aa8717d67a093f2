"""DPTextSynthesizer: fit/sample/save, conditional generation, budget planning and checks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dpsynth.accounting import Budget, BudgetSession, GaussianEvent, SubsampledGaussianEvent
from dpsynth.errors import BudgetExceededError, NotFittedError, ParameterError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import SYNTHESIZERS, BaseSynthesizer
from dpsynth.synthesizers.text import DPTextSynthesizer
from dpsynth.synthesizers.text.labeller import LABEL_PURPOSE, plan_labels
from dpsynth.synthesizers.text.synthesizer import CONTROL_PURPOSE, TRAIN_PURPOSE

TINY = {"pretrained": None, "d_model": 32, "n_layers": 1, "n_heads": 2, "batch_size": 32,
        "learning_rate": 5e-3}
CATS = ("billing", "login")



def tickets(n: int = 160, seed: int = 0) -> tuple[pd.DataFrame, Schema]:
    """Hand-made support tickets: each category has its own fixed wording."""
    rng = np.random.default_rng(seed)
    kinds = np.where(rng.random(n) < 0.75, "billing", "login")
    texts = [f"invoice {rng.integers(10)} is wrong" if k == "billing" else
             f"cannot log in on day {rng.integers(10)}" for k in kinds]
    schema = Schema((Column("kind", "categorical", categories=CATS),
                     Column("text", "text", max_length=40)))
    return pd.DataFrame({"kind": kinds, "text": texts}), schema


def test_registered():
    assert SYNTHESIZERS["dptext"] is DPTextSynthesizer


def test_non_private_model_learns_conditional_text(tmp_path):
    df, schema = tickets()
    synth = DPTextSynthesizer(epsilon=math.inf, epochs=25, random_state=0, **TINY)
    synth.fit(df, schema)
    out = synth.sample(60, random_state=1)
    assert list(out.columns) == ["kind", "text"]
    billing = out.loc[out.kind == "billing", "text"]
    login = out.loc[out.kind == "login", "text"]
    assert billing.str.startswith("invoice").mean() > 0.8
    assert login.str.startswith("cannot").mean() > 0.8
    assert out.text.str.len().max() <= 40
    assert 0.55 < (out.kind == "billing").mean() < 0.95  # exact histogram (non-private)
    synth.save(tmp_path / "m")
    again = BaseSynthesizer.load(tmp_path / "m")
    assert again.sample(5, random_state=3).equals(synth.sample(5, random_state=3))


def test_private_fit_plans_and_spends_both_mechanisms():
    df, schema = tickets()
    session = BudgetSession(Budget(2.0, 1e-4))
    synth = DPTextSynthesizer(epsilon=2.0, delta=1e-4, epochs=1, random_state=0, **TINY)
    synth.fit(df, schema, ledger=session)
    purposes = [s.purpose for s in session.spends]
    assert purposes == [CONTROL_PURPOSE, LABEL_PURPOSE, TRAIN_PURPOSE]
    assert isinstance(session.spends[0].event, GaussianEvent)
    assert session.spends[1].event == plan_labels(Budget(2.0, 1e-4), 0.5).event
    train = session.spends[2].event
    assert isinstance(train, SubsampledGaussianEvent)
    assert synth.steps_run_ == train.steps == math.ceil(1 / (32 / len(df)))
    assert synth.privacy_.epsilon <= 2.0 + 1e-6
    assert session.epsilon_spent() <= 2.0 + 1e-6
    assert abs(synth.controls_.probs.sum() - 1) < 1e-9


def test_control_distribution_is_released_with_noise():
    df, schema = tickets(400)
    tight = DPTextSynthesizer(epsilon=0.5, epochs=0.1, control_fraction=0.5, label_fraction=0.25,
                              random_state=0, **TINY).fit(df, schema)
    exact = DPTextSynthesizer(epsilon=math.inf, epochs=0.1, random_state=0,
                              **TINY).fit(df, schema)
    truth = (df.kind == "billing").mean()
    assert exact.controls_.probs[0] == pytest.approx(truth)
    sigma = tight.privacy_.spends[0].event.noise_multiplier
    assert 0 < abs(tight.controls_.probs[0] - truth) < 5 * sigma / len(df)


def test_ledger_refusal_happens_before_training():
    df, schema = tickets()
    session = BudgetSession(Budget(1.0, 1e-4))
    synth = DPTextSynthesizer(epsilon=2.0, delta=1e-4, epochs=1, random_state=0, **TINY)
    with pytest.raises(BudgetExceededError):
        synth.fit(df, schema, ledger=session)
    assert session.spends == () and not hasattr(synth, "backend_")


def test_parameter_problems_are_listed_together():
    df, schema = tickets()
    synth = DPTextSynthesizer(epochs=-1, top_p=2.0, grad_sample_mode="x", **TINY)
    with pytest.raises(ParameterError) as info:
        synth.fit(df, schema)
    message = str(info.value)
    for name in ("epochs", "top_p", "grad_sample_mode"):
        assert repr(name) in message


def test_schema_checks():
    df, schema = tickets()
    two = Schema((*schema.columns, Column("note", "text")))
    with pytest.raises(ParameterError, match="exactly one text column"):
        DPTextSynthesizer(**TINY).fit(df.assign(note="x"), two)
    with pytest.raises(ParameterError, match="max_length"):
        DPTextSynthesizer(**{**TINY, "pretrained": None}, max_length=400).fit(df, schema)


def test_sample_before_fit():
    with pytest.raises(NotFittedError):
        DPTextSynthesizer().sample(3)


def test_scores_are_lower_for_training_text():
    df, schema = tickets()
    synth = DPTextSynthesizer(epsilon=math.inf, epochs=10, random_state=0, **TINY)
    synth.fit(df, schema)
    seen = synth.score_records(df.head(20)).mean()
    odd = synth.score_records(df.head(20).assign(text="zq xv kj wp")).mean()
    assert seen < odd


def test_shipped_checkpoint_fine_tunes():
    df, schema = tickets(64)
    synth = DPTextSynthesizer(epsilon=3.0, epochs=0.5, batch_size=32, random_state=0)
    synth.fit(df, schema)
    assert synth.backend_.origin == "byte-small"
    assert len(synth.sample(4, random_state=0)) == 4


def test_dp_fine_tuning_updates_only_the_chosen_parameters(tmp_path):
    from dpsynth.synthesizers.text.pretrain import load_checkpoint

    df, schema = tickets(64)
    _, public, _ = load_checkpoint("byte-small")
    synth = DPTextSynthesizer(epsilon=3.0, epochs=1, batch_size=32, random_state=0)
    synth.fit(df, schema)  # "auto": the norms, biases, byte embedding and output layer
    assert synth.trainable_ == "norms-biases-io"
    tuned = synth.backend_.model.state_dict()
    changed = {k for k, v in tuned.items() if not torch.equal(v, public[k])}
    assert "tok.weight" in changed and "head.weight" in changed
    assert "blocks.0.ln1.weight" in changed and "blocks.0.fc.bias" in changed
    for frozen in ("pos.weight", "blocks.0.attn.qkv.weight", "blocks.0.fc.weight"):
        assert frozen not in changed
    assert synth.trainable_parameters_ == sum(tuned[k].numel() for k in changed)
    synth.save(tmp_path / "m")
    again = BaseSynthesizer.load(tmp_path / "m")
    assert again.trainable_ == "norms-biases-io"
    assert again.trainable_parameters_ == synth.trainable_parameters_


@pytest.mark.parametrize(("params", "expected"), [
    ({"epsilon": math.inf}, "all"),  # the non-private reference trains every weight
    ({"pretrained": None}, "all"),  # from scratch every weight must learn
    ({"trainable": "norms-biases"}, "norms-biases"),
])
def test_trainable_auto_resolution(params, expected):
    df, schema = tickets(64)
    base = {"epsilon": 3.0, "epochs": 0.5, "batch_size": 32, "random_state": 0}
    if params.get("pretrained", "x") is None:
        base.update({k: v for k, v in TINY.items() if k != "learning_rate"})
    synth = DPTextSynthesizer(**{**base, **params}).fit(df, schema)
    assert synth.trainable_ == expected
    total = sum(p.numel() for p in synth.backend_.model.parameters())
    assert (synth.trainable_parameters_ == total) == (expected == "all")


def test_trainable_checks():
    df, schema = tickets()
    with pytest.raises(ParameterError, match="trainable"):
        DPTextSynthesizer(trainable="heads", **TINY).fit(df, schema)
    with pytest.raises(ParameterError, match="lora_rank"):
        DPTextSynthesizer(trainable="norms-biases", model_dir="/nonexistent").fit(df, schema)


def test_text_only_table_spends_on_training_only():
    df, _ = tickets()
    schema = Schema((Column("text", "text", max_length=40),))
    session = BudgetSession(Budget(2.0, 1e-4))
    synth = DPTextSynthesizer(epsilon=2.0, delta=1e-4, epochs=0.5, random_state=0, **TINY)
    synth.fit(df[["text"]], schema, ledger=session)
    assert [s.purpose for s in session.spends] == [TRAIN_PURPOSE]
    assert list(synth.sample(3, random_state=0).columns) == ["text"]


def test_bfloat16_training_with_bookkeeping_clipping():
    df, schema = tickets()
    synth = DPTextSynthesizer(epsilon=2.0, epochs=0.5, precision="bfloat16", random_state=0,
                              **TINY).fit(df, schema)
    assert synth.grad_sample_mode_ == "bookkeeping"
    assert all(np.isfinite(synth.loss_history_))


def test_missing_control_values_are_their_own_code():
    df, _ = tickets()
    df.loc[df.index[:40], "kind"] = None
    schema = Schema((Column("kind", "categorical", categories=CATS, nullable=True),
                     Column("text", "text", max_length=40)))
    synth = DPTextSynthesizer(epsilon=math.inf, epochs=2, random_state=0, **TINY)
    synth.fit(df, schema)
    assert len(synth.controls_.domain) == 3
    assert synth.controls_.probs[2] == pytest.approx(40 / len(df))
    assert np.isfinite(synth.score_records(df.head(45))).all()


def test_a_corpus_without_control_columns_samples_every_row():
    df, _ = tickets(64)
    corpus = Schema((Column("text", "text", max_length=40),))
    synth = DPTextSynthesizer(epsilon=2.0, delta=1e-4, epochs=0.5, random_state=0, **TINY)
    out = synth.fit(df[["text"]], corpus).sample(7, random_state=0)
    assert list(out.columns) == ["text"] and len(out) == 7
