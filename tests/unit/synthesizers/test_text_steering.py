"""Lexicon steering: the DP label model's word scores as a decoding bias (post-processing)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dpsynth.accounting import NoiseSource
from dpsynth.errors import ParameterError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import BaseSynthesizer
from dpsynth.synthesizers.text import DPTextSynthesizer
from dpsynth.synthesizers.text.labeller import HASHED, LabelModel, _features, embed
from dpsynth.synthesizers.text.steering import lexicon, top_words, word_start_tokens

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import tiny_models  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")

WORDS = {"cat": ("meow", "purr", "whiskers", "litter"), "dog": ("woof", "bark", "fetch", "leash")}
TEXTS = ["the printer is broken again", "please reset my password", "my invoice is wrong"]


class Pieces:
    """A stand-in tokenizer: token ``i`` decodes to ``pieces[i]``."""

    def __init__(self, pieces: list[str]):
        self.pieces = pieces

    def __len__(self) -> int:
        return len(self.pieces)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.pieces[i] for i in ids)


def pet_labels() -> LabelModel:
    """A label model (no noise, hashed embeddings) of a corpus where each pet has its words."""
    rng = np.random.default_rng(0)
    pets = rng.choice(["cat", "dog"], 400)
    texts = [" ".join(rng.choice(WORDS[p], 3)) for p in pets]
    return LabelModel.fit(embed(texts, HASHED), (pets == "dog").astype(int), 2, HASHED,
                          plan=None, noise=NoiseSource.create(0, False))


def test_word_start_tokens_are_scored_by_the_label_model_and_standardised():
    pieces = [" meow", " purr", " woof", " bark", " the", " and", " table", " lamp", "ow",
              " 42", " a", " café", "<eos>"]
    scores = lexicon(pet_labels(), Pieces(pieces), len(pieces) + 3)  # padded head rows
    assert scores.shape == (2, len(pieces) + 3) and scores.dtype == np.float32
    ids, words = word_start_tokens(Pieces(pieces), len(pieces) + 3)
    assert words == ["meow", "purr", "woof", "bark", "the", "and", "table", "lamp"]
    off = np.setdiff1d(np.arange(scores.shape[1]), ids)
    assert not scores[:, off].any()  # fragments, numbers, short and non-ASCII words: 0
    cat, dog = scores
    for w in ("meow", "purr"):
        assert cat[pieces.index(f" {w}")] > 1 > -1 > dog[pieces.index(f" {w}")]
    for w in ("woof", "bark"):
        assert dog[pieces.index(f" {w}")] > 1 > -1 > cat[pieces.index(f" {w}")]
    for row in scores:  # standardised over the scored tokens: median 0, deviation 1
        assert np.median(row[ids]) == pytest.approx(0, abs=1e-6)
        assert np.std(row[ids]) == pytest.approx(1, abs=1e-5)
    favoured = top_words(scores, Pieces(pieces), k=2)
    assert set(favoured[0]) == {"meow", "purr"} and set(favoured[1]) == {"woof", "bark"}


def support_model(tmp_path, labels: bool = True) -> DPTextSynthesizer:
    """The tiny llama fitted on the support texts; with ``labels``, a planted label model
    whose ``acct`` cell favours the word "invoice" (which ``acct`` texts never use)."""
    model_dir = tiny_models.write_tiny_model(tmp_path / "lm", "llama", texts=TEXTS * 5)
    df = pd.DataFrame({"kind": ["hw", "acct", "bill"] * 20, "text": TEXTS * 20})
    schema = Schema((Column("kind", "categorical", categories=("hw", "acct", "bill")),
                     Column("text", "text", max_length=12)))
    synth = DPTextSynthesizer(epsilon=math.inf, model_dir=model_dir, lora_rank=0, epochs=3,
                              batch_size=16, learning_rate=1e-2, random_state=0,
                              labeller=False).fit(df, schema)
    if labels:
        weights = np.zeros((_features(embed(["x"], HASHED)).shape[1], 3))
        weights[:, 1] = 30 * _features(embed(["invoice"], HASHED))[0]
        synth.labels_ = LabelModel(HASHED, weights)
    return synth


def invoices(texts: list[str]) -> int:
    return sum("invoice" in t for t in texts)


def test_steering_writes_the_favoured_words_into_the_cell_it_steers(tmp_path):
    synth = support_model(tmp_path)
    acct = pd.DataFrame({"kind": ["acct"] * 40})
    assert synth.resolved_params()["steering"] == 0.35  # the default, with a label model
    synth.steering = 0.0
    plain = synth.generate_text(acct, random_state=4)
    assert synth.resolved_params()["steering"] == 0.0
    synth.steering = 4.0
    steered = synth.generate_text(acct, random_state=4)
    assert synth.resolved_params()["steering"] == 4.0
    assert invoices(steered) >= invoices(plain) + 10, (plain[:5], steered[:5])
    synth.steering = 0.0
    assert synth.generate_text(acct, random_state=4) == plain  # off: the model as it was
    synth.steering = 4.0
    synth.save(tmp_path / "fitted")  # the word scores are saved with the model
    again = BaseSynthesizer.load(tmp_path / "fitted")
    assert np.array_equal(again.lexicon_, synth.lexicon_)
    again.steering = 4.0
    assert again.generate_text(acct, random_state=4) == steered
    again.lexicon_ = None  # computed again from what the saved model holds, no records
    assert np.array_equal(again._lexicon(), synth.lexicon_)
    unsampled = support_model(tmp_path / "unsampled")
    assert unsampled.lexicon_ is None
    unsampled.save(tmp_path / "unsampled-model")  # scored once, so the saved model has them
    assert np.array_equal(BaseSynthesizer.load(tmp_path / "unsampled-model").lexicon_,
                          synth.lexicon_)
    off = support_model(tmp_path / "off")
    off.steering = 0.0
    off.save(tmp_path / "off-model")  # steering off: nothing to score
    assert off.lexicon_ is None and BaseSynthesizer.load(tmp_path / "off-model").lexicon_ is None


def test_steering_spends_nothing(tmp_path):
    """A private fit plans and charges the same spends with steering on and off."""
    from dpsynth.accounting import Budget, BudgetSession

    model_dir = tiny_models.write_tiny_model(tmp_path / "lm", "llama", texts=TEXTS * 5)
    df = pd.DataFrame({"kind": ["hw", "acct", "bill"] * 20, "text": TEXTS * 20})
    schema = Schema((Column("kind", "categorical", categories=("hw", "acct", "bill")),
                     Column("text", "text", max_length=12)))
    spends = []
    for strength in (0.0, 0.35):
        session = BudgetSession(Budget(4.0, 1e-4))
        synth = DPTextSynthesizer(epsilon=4.0, delta=1e-4, model_dir=model_dir, lora_rank=0,
                                  epochs=1, batch_size=16, random_state=0, labeller=True,
                                  steering=strength)
        synth.fit(df, schema, ledger=session)
        assert synth.lexicon_ is None  # the fit does not score the words
        synth.sample(6, random_state=0)
        spends.append([(s.purpose, s.event) for s in session.spends])
        assert (synth.lexicon_ is not None) is bool(strength)  # scored at first use
    assert spends[0] == spends[1] and len(spends[0]) >= 3


def test_steering_has_no_effect_without_a_label_model_and_is_checked(tmp_path):
    synth = support_model(tmp_path, labels=False)
    acct = pd.DataFrame({"kind": ["acct"] * 8})
    plain = synth.generate_text(acct, random_state=1)
    synth.steering = 4.0
    assert synth.generate_text(acct, random_state=1) == plain
    assert synth.resolved_params()["steering"] == 0.0
    for bad in (-1.0, math.inf, "strong"):
        synth.steering = bad
        with pytest.raises(ParameterError, match="steering"):
            synth.generate_text(acct, random_state=1)
    with_labels = support_model(tmp_path / "labelled")
    with_labels.steering = "strong"  # set after fitting: reported as given, refused at sampling
    assert with_labels.resolved_params()["steering"] == "strong"
    for call in (lambda: with_labels.generate_text(acct, random_state=1),
                 lambda: with_labels.steering_words(3)):
        with pytest.raises(ParameterError, match="steering"):
            call()
    with pytest.raises(ParameterError, match="steering"):
        DPTextSynthesizer(steering=-0.5)._validate_params()


def test_the_command_line_default_is_the_library_default():
    import inspect

    from dpsynth.commands.text import fit
    from dpsynth.synthesizers.text.steering import DEFAULT_STRENGTH

    cli = inspect.signature(fit).parameters["steering"].default
    lib = inspect.signature(DPTextSynthesizer).parameters["steering"].default
    assert cli == lib == DEFAULT_STRENGTH
    shares = inspect.signature(fit).parameters["label_fraction"].default
    assert shares == inspect.signature(DPTextSynthesizer).parameters["label_fraction"].default


def test_steering_with_topics_steers_by_the_users_control_values(tmp_path):
    """With DP topics the released cells carry a topic too; steering and its word list
    follow the label model's cells, the user's control values alone."""
    model_dir = tiny_models.write_tiny_model(tmp_path / "lm", "llama", texts=TEXTS * 5)
    df = pd.DataFrame({"kind": ["hw", "acct", "bill"] * 20, "text": TEXTS * 20})
    schema = Schema((Column("kind", "categorical", categories=("hw", "acct", "bill")),
                     Column("text", "text", max_length=12)))
    synth = DPTextSynthesizer(epsilon=math.inf, model_dir=model_dir, lora_rank=0, epochs=1,
                              batch_size=16, random_state=0, topics=2, labeller=True,
                              steering=0.35).fit(df, schema)
    assert synth.topics_ is not None and synth.labels_ is not None
    assert synth.resolved_params()["steering"] == 0.35
    assert set(synth.steering_words(3)) == {"hw", "acct", "bill"}
    out = synth.sample(9, random_state=0)
    assert len(out) == 9 and set(out.kind) <= {"hw", "acct", "bill"}
