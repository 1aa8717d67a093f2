"""The word scores of levers 7 and 8 (``benchmarks/text_lexicon_sources.py``): the label
model's reading of the texts a word is written in, and DP word counts of the training texts.
Experiments outside the library; tested because the benchmark's privacy claim (the release
stays within its budget) rests on the counts' sensitivity."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from dpsynth.accounting import NoiseSource
from dpsynth.synthesizers.text.steering import word_start_tokens

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from text_lexicon_sources import (  # noqa: E402
    CONTEXT_CLIP,
    context_lexicon,
    counts_lexicon,
    noisy_word_counts,
    word_sets,
)

WORDS = {"cat": ("meow", "purr", "whiskers", "litter"), "dog": ("woof", "bark", "fetch", "leash")}


class WordPieces(list):
    """A stand-in tokenizer over a list of pieces: token ``i`` decodes to the ``i``-th; texts
    are encoded word by word (each word ``w`` is the piece " w", else the piece "w")."""

    def decode(self, ids: list[int]) -> str:
        return "".join(self[i] for i in ids)

    def __call__(self, texts: list[str], add_special_tokens: bool = False) -> dict:
        ids = {p: i for i, p in enumerate(self)}
        return {"input_ids": [[ids.get(f" {w}", ids.get(w)) for w in t.split()]
                              for t in texts]}


def test_context_scores_follow_the_label_model_over_the_texts_a_word_is_written_in():
    pieces = [" meow", " purr", " woof", " bark", " the", " lamp", " rare", "ow"]
    rng = np.random.default_rng(1)
    pets = rng.integers(0, 2, 300)
    texts = [" ".join([*rng.choice(WORDS["cat" if p == 0 else "dog"][:2], 2), "the"])
             for p in pets]
    texts[0] += " rare"  # written once, in a text read as a cat's
    sure = np.log(np.where(np.eye(2)[pets] == 1, 0.9, 0.1))  # the label model's view
    scores = context_lexicon(sure, texts, WordPieces(pieces), len(pieces) + 2)
    assert scores.shape == (2, len(pieces) + 2) and scores.dtype == np.float32
    cat, dog = scores
    at = {w: pieces.index(f" {w}") for w in ("meow", "purr", "woof", "bark", "the", "rare")}
    for w in ("meow", "purr"):
        assert cat[at[w]] > 1 > -1 > dog[at[w]]
    for w in ("woof", "bark"):
        assert dog[at[w]] > 1 > -1 > cat[at[w]]
    assert abs(cat[at["the"]]) < 0.2  # written in every text: neutral
    assert 0 < cat[at["rare"]] < cat[at["meow"]] / 2  # shrunk: one text is weak evidence
    assert not scores[:, [pieces.index(" lamp"), pieces.index("ow"), 8, 9]].any()
    assert np.abs(scores).max() <= CONTEXT_CLIP
    flat = context_lexicon(np.zeros((300, 2)), texts, WordPieces(pieces), len(pieces))
    assert not flat.any()  # a label model that tells nothing apart: no steering


def test_noisy_word_counts_move_by_at_most_one_record_norm_and_leave_unscored_tokens():
    pieces = [" meow", " purr", " woof", " bark", " the", "ow"]
    texts = ["meow purr the", "woof the", "bark", "ow"]
    scored, _ = word_start_tokens(WordPieces(pieces), len(pieces) + 1)
    sets = word_sets(texts, WordPieces(pieces), len(pieces) + 1, scored)
    assert [s.tolist() for s in sets] == [[0, 1, 4], [2, 4], [3], []]  # "ow": no word
    cells = np.array([0, 1, 1, 0])
    silent = NoiseSource.create(0, False)
    exact = noisy_word_counts(sets, cells, 2, scored, len(pieces) + 1, sigma=0.0, noise=silent)
    assert exact[0, [0, 1, 4]] == pytest.approx([3 ** -0.5] * 3)
    assert exact[1, [2, 4, 3]] == pytest.approx([2 ** -0.5, 2 ** -0.5, 1.0])
    for drop in range(len(texts)):  # a neighbour without one record: L2 distance <= 1
        keep = [i for i in range(len(texts)) if i != drop]
        other = noisy_word_counts([sets[i] for i in keep], cells[keep], 2, scored,
                                  len(pieces) + 1, sigma=0.0, noise=silent)
        assert np.linalg.norm(exact - other) <= 1 + 1e-9
    noisy = noisy_word_counts(sets, cells, 2, scored, len(pieces) + 1, sigma=2.0,
                              noise=NoiseSource.create(1, False))
    assert not noisy[:, [5, 6]].any() and np.abs(noisy[:, scored] - exact[:, scored]).max() > 0


def test_count_scores_favour_each_label_words_and_ignore_noise_alone():
    rng = np.random.default_rng(3)
    noisy = rng.normal(0, 1.0, (2, 1000))  # 1,000 words never written: noise only
    noisy[0, :4] += [80, 60, 5, 40]  # cat words; the third is below the threshold
    noisy[1, 4:6] += [70, 50]  # dog words
    noisy[:, 6] += [40, 40]  # written as often for either label
    scores = counts_lexicon(noisy, sigma=1.0)
    cat, dog = scores
    for w in (0, 1, 3):
        assert cat[w] > 0.5 > -0.5 > dog[w]
    for w in (4, 5):
        assert dog[w] > 0.5 > -0.5 > cat[w]
    assert cat[2] == 0 and abs(cat[6]) < 0.2 * min(cat[0], cat[1], cat[3])
    assert cat == pytest.approx(-dog)  # two cells: one log odds, halved
    assert np.count_nonzero(cat[7:]) <= 2  # noise alone is rarely above 4 deviations
    assert np.abs(scores).max() <= CONTEXT_CLIP
    assert not counts_lexicon(rng.normal(0, 1.0, (2, 50)), sigma=1.0).any()
