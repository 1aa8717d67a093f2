"""Lexicon steering: the DP label model read as a word list, used as a decoding bias.

A language model fine-tuned under DP learns the corpus' style but only faintly how a control
value (a review's verdict) shapes the text: the records it writes for one value are hardly
told apart from those for another. The DP label model (:mod:`.labeller`) tells the values
apart on real text far better. Weighted decoding with a word-level attribute scorer
(Ghazvininejad et al., "Hafez: an interactive poetry generation system", ACL 2017 demos; the
bag-of-words attribute model of Dathathri et al., "Plug and Play Language Models", ICLR 2020)
carries that knowledge into the text:

* every token of the model's vocabulary that starts a word (a leading space, then at least
  ``MIN_LETTERS`` ASCII letters) is embedded as that word alone with the label model's
  public embedder, and the label model scores it: ``z[t, c]``, the centred log-probability of
  control cell ``c``;
* each cell's scores are standardised over the scored tokens (the median subtracted, divided
  by the standard deviation), so that a neutral word gets about 0; other tokens get 0;
* when decoding a record for cell ``c``, ``strength * s[c, t]`` is added to every step's
  next-token scores (:meth:`~dpsynth.synthesizers.text.hf.HFBackend.generate`'s ``bias``).

Only the released label model, the public embedder and the public vocabulary are read:
post-processing, no budget. The label model's relabelling of the drawn texts runs after it
as before. The default strength was chosen on the declared fine-food tuning corpus
(``benchmarks/tune_text_guidance.py``, levers 5 and 6; ``docs/benchmarks.md``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from dpsynth.synthesizers.text.labeller import LabelModel, embed

#: Letters a word-start token needs to be scored (shorter pieces are mostly word fragments).
MIN_LETTERS = 3
#: Default strength (``DPTextSynthesizer(steering=...)``), chosen on the fine-food tuning
#: reviews: 0.25 / 0.35 / 0.5 gave the classifier 0.739 / 0.767 / 0.767 and MAUVE 0.561 /
#: 0.577 / 0.482 (three draws each; unsteered 0.725 and 0.598).
DEFAULT_STRENGTH = 0.35


def word_start_tokens(tokenizer: Any, vocab: int) -> tuple[np.ndarray, list[str]]:
    """Ids below ``vocab`` of the tokens that start a word of letters, and those words."""
    ids, words = [], []
    for i in range(min(vocab, len(tokenizer))):
        piece = tokenizer.decode([i])
        word = piece[1:]
        if piece.startswith(" ") and len(word) >= MIN_LETTERS and word.isascii() \
                and word.isalpha():
            ids.append(i)
            words.append(word)
    return np.asarray(ids, dtype=np.int64), words


@functools.lru_cache(maxsize=1)
def _embedded(words: tuple[str, ...], embedder: str) -> np.ndarray:
    """The public embeddings of a vocabulary's words (the costly part: 33 CPU-seconds for
    SmolLM2's 30,570 with MiniLM), kept for the next fit with the same model and embedder."""
    out = np.asarray(embed(list(words), embedder), dtype=np.float32)
    out.setflags(write=False)
    return out


def lexicon(labels: LabelModel, tokenizer: Any, vocab: int) -> np.ndarray:
    """The standardised word scores ``(cells, vocab)`` (float32; 0 off the scored tokens)."""
    ids, words = word_start_tokens(tokenizer, vocab)
    out = np.zeros((labels.cells, vocab), dtype=np.float32)
    if len(ids) < 2:
        return out
    z = labels.log_probs(_embedded(tuple(words), labels.embedder))
    z = z - z.mean(axis=1, keepdims=True)
    s = (z - np.median(z, axis=0)) / np.maximum(z.std(axis=0), 1e-12)
    out[:, ids] = s.T
    return out


def top_words(scores: np.ndarray, tokenizer: Any, k: int = 10) -> list[list[str]]:
    """The ``k`` words each cell's steering favours most (for the model card)."""
    return [[tokenizer.decode([int(i)]).strip() for i in np.argsort(-row)[:k]]
            for row in scores]


#: Pseudo-count that shrinks a rarely written word's score towards 0 (``context_lexicon``).
CONTEXT_PRIOR = 10.0
#: Standardised context scores are clipped to this magnitude.
CONTEXT_CLIP = 4.0


def context_lexicon(log_probs: np.ndarray, texts: Sequence[str], tokenizer: Any, vocab: int,
                    prior: float = CONTEXT_PRIOR) -> np.ndarray:
    """Word scores ``(cells, vocab)`` read from the label model's view of whole texts.

    ``texts`` are records the fitted model wrote (public once released) and ``log_probs``
    the label model's log-probabilities of each; a word-start token's score for cell ``c``
    is the mean centred log-probability of ``c`` over the texts that contain it, less its
    mean over all texts, shrunk by ``prior`` pseudo-texts at that mean; each cell's scores
    are divided by their standard deviation over the words written, clipped to
    ``CONTEXT_CLIP``, and 0 for words never written. Post-processing of released outputs.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    z = lp - lp.mean(axis=1, keepdims=True)
    count = np.zeros(vocab)
    total = np.zeros((z.shape[1], vocab))
    for row, seen in zip(z, word_sets(texts, tokenizer, vocab), strict=True):
        count[seen] += 1
        total[:, seen] += row[:, None]
    centre = z.mean(axis=0)[:, None] if len(z) else np.zeros((z.shape[1], 1))
    score = (total - count * centre) / (count + prior)
    out = np.zeros((z.shape[1], vocab), dtype=np.float32)
    written = count > 0
    if written.sum() < 2:
        return out
    spread = np.maximum(score[:, written].std(axis=1, keepdims=True), 1e-12)
    out[:, written] = np.clip(score[:, written] / spread, -CONTEXT_CLIP, CONTEXT_CLIP)
    return out


#: A word is scored from its noisy counts when their sum over the cells is above this many
#: standard deviations of its noise (``counts_lexicon``): about one word in 30,000 without
#: any count passes by chance.
COUNT_THRESHOLD = 4.0


def word_sets(texts: Sequence[str], tokenizer: Any, vocab: int) -> list[np.ndarray]:
    """The distinct word-start tokens (see :func:`word_start_tokens`) of each text."""
    ids, _ = word_start_tokens(tokenizer, vocab)
    scored = np.zeros(vocab, dtype=bool)
    scored[ids] = True
    encoded = tokenizer([" " + str(t) for t in texts], add_special_tokens=False)["input_ids"]
    out = []
    for tokens in encoded:
        seen = np.unique(np.asarray(tokens, dtype=np.int64))
        seen = seen[seen < vocab]
        out.append(seen[scored[seen]])
    return out


def noisy_word_counts(sets: Sequence[np.ndarray], cells: np.ndarray, n_cells: int,
                      scored: np.ndarray, vocab: int, *, sigma: float,
                      noise: Any) -> np.ndarray:
    """Each record's words, counted in its cell's row with weight ``1 / sqrt(m)`` (``m``
    its distinct scored words: one record moves the table by L2 norm at most 1), plus
    Gaussian noise of std ``sigma`` on every (cell, scored word) entry: the Gaussian mechanism
    (Dwork and Roth, "The algorithmic foundations of differential privacy", 2014, thm. A.1;
    calibrated by the PLD accountant). Unscored tokens stay 0."""
    table = np.zeros((n_cells, vocab))
    for words, cell in zip(sets, np.asarray(cells, dtype=np.int64), strict=True):
        if len(words):
            table[cell, words] += 1.0 / np.sqrt(len(words))
    scored = np.asarray(scored, dtype=np.int64)
    out = np.zeros_like(table)
    out[:, scored] = table[:, scored] + noise.normal(n_cells * len(scored), scale=sigma
                                                     ).reshape(n_cells, len(scored))
    return out


def counts_lexicon(noisy: np.ndarray, sigma: float,
                   threshold: float = COUNT_THRESHOLD) -> np.ndarray:
    """Word scores ``(cells, vocab)`` from :func:`noisy_word_counts` (post-processing).

    A word whose noisy total is above ``threshold`` noise deviations is scored by the centred
    log of its share in each cell (smoothed by ``sigma`` pseudo-counts spread as the cells'
    shares of all such words), less the centred log of those shares: for two cells, half the
    word's log odds over the cells' log odds. Each cell's scores are divided by their standard
    deviation over the scored words and clipped to ``CONTEXT_CLIP``; other words get 0.
    """
    noisy = np.asarray(noisy, dtype=np.float64)
    cells = noisy.shape[0]
    out = np.zeros(noisy.shape, dtype=np.float32)
    keep = noisy.sum(axis=0) > threshold * sigma * np.sqrt(cells)
    if keep.sum() < 2:
        return out
    pos = np.maximum(noisy[:, keep], 0.0)
    prior = (pos.sum(axis=1) + sigma) / (pos.sum() + cells * sigma)
    log_share = np.log((pos + sigma * prior[:, None]) / (pos.sum(axis=0) + sigma))
    score = (log_share - log_share.mean(axis=0)) - (np.log(prior) - np.log(prior).mean())[:, None]
    spread = np.maximum(score.std(axis=1, keepdims=True), 1e-12)
    out[:, keep] = np.clip(score / spread, -CONTEXT_CLIP, CONTEXT_CLIP)
    return out
