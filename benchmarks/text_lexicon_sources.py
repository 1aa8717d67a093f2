"""Where steering's word scores come from: levers 7 and 8 of ``tune_text_guidance.py``,
experiments not in the library (neither was kept; ``docs/benchmarks.md``, seventeenth
session).

* **context** (lever 7): the words the fitted model writes, scored by the DP label model's
  reading of the whole texts they occur in (post-processing of released outputs);
* **counts** (lever 8): DP counts of each label's words in the training texts, a Gaussian
  mechanism paid for outside the fit's budget (the scripts fit the model at the rest);
* **mixed** / **counts-mixed**: the mean of either with the library's own scores
  (:mod:`dpsynth.synthesizers.text.steering`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.synthesizers.text.steering import word_start_tokens

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
    scored = word_start_tokens(tokenizer, vocab)[0]
    for row, seen in zip(z, word_sets(texts, tokenizer, vocab, scored), strict=True):
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


def word_sets(texts: Sequence[str], tokenizer: Any, vocab: int,
              ids: np.ndarray) -> list[np.ndarray]:
    """The distinct tokens among ``ids`` (the word-start tokens, :func:`word_start_tokens`)
    of each text."""
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


#: Word scores for steering (``--lexicon-source``): the model's own (``model``: the
#: library's, or those saved with it), read from a pool of the model's records (``context``)
#: or the mean of the two (``mixed``); lever 8's ``counts`` and ``counts-mixed`` need a fit.
LEXICON_SOURCES = ("model", "context", "mixed", "counts", "counts-mixed")


def add_source_options(parser: argparse.ArgumentParser, *, fits: bool) -> None:
    """``--lexicon-source`` and, for a script that fits (``fits``), ``--counts-eps``."""
    parser.add_argument("--lexicon-source", choices=LEXICON_SOURCES, default="model",
                        help="steering's word scores: the model's own (model), read from "
                        "2,000 unsteered records (context) or their mean (mixed), lever 7; "
                        "from DP word counts (counts, counts-mixed; with --counts-eps), lever 8")
    if fits:
        parser.add_argument("--counts-eps", type=float, default=None,
                            help="lever 8: DP word counts at this epsilon (and its share of "
                            "delta), the model fitted at the rest; --save also writes "
                            "SAVE-counts and SAVE-counts-mixed")


def check_source_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--lexicon-source counts`` needs the counts measured by this run (``--counts-eps``)."""
    if args.lexicon_source.startswith("counts") and not getattr(args, "counts_eps", None):
        parser.error("--lexicon-source counts needs --counts-eps (a saved counts model "
                     "steers with its own: --lexicon-source model)")


def split_budget(epsilon: float, delta: float, counts_eps: float | None
                 ) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """The model's ``(epsilon, delta)`` and the counts' when ``counts_eps`` of ``epsilon``
    (and the same share of ``delta``) go to the counts (basic composition); the counts'
    are ``None`` without ``counts_eps``."""
    if not counts_eps:
        return (epsilon, delta), None
    share = counts_eps / epsilon
    return (epsilon * (1 - share), delta * (1 - share)), (epsilon * share, delta * share)


def set_lexicon_source(synth: Any, source: str, pool: int = 2000, seed: int = 7) -> None:
    """Replace ``synth``'s steering word scores by those of ``source`` (lever 7 of
    ``tune_text_guidance.py``): ``pool`` records drawn unsteered (seed ``seed``, public),
    scored by the DP label model, read by :func:`context_lexicon`. Post-processing: only
    released outputs are read."""
    from dpsynth.synthesizers.text.labeller import embed

    if source in ("model", "counts", "counts-mixed"):  # counts: see save_with_counts
        return
    if source not in ("context", "mixed"):
        raise SystemExit(f"lexicon source {source!r} needs a fit with --counts-eps")
    words = synth._lexicon()
    steering, synth.steering = synth.steering, 0.0
    try:
        drawn = synth.sample(pool, random_state=seed, relabel=False)
    finally:
        synth.steering = steering
    texts = drawn[synth.text_column_].tolist()
    lp = synth.labels_.log_probs(embed(texts, synth.labels_.embedder))
    backend = synth.backend_
    context = context_lexicon(lp, texts, backend.tokenizer, backend.vocab_size)
    synth.lexicon_ = context if source == "context" else (words + context) / 2


def counts_lexicons(synth: Any, train: pd.DataFrame, epsilon: float, delta: float,
                    seed: int = 0, column: str = "source") -> dict[str, np.ndarray]:
    """Lever 8 of ``tune_text_guidance.py``: steering word scores from DP word counts of the
    training texts per label (:func:`noisy_word_counts` at ``(epsilon, delta)``, a Gaussian
    mechanism outside the fit's own budget; the scripts fit the model at the rest), alone
    (``counts``) and averaged with the model's own (``counts-mixed``)."""
    from dpsynth.accounting import NoiseSource, calibrate_gaussian
    from dpsynth.synthesizers.text.controls import cell_index

    backend = synth.backend_
    tokenizer, vocab = backend.tokenizer, backend.vocab_size
    domain = synth._user_domain()
    cells = cell_index(train, [column], domain)
    sigma = calibrate_gaussian(epsilon, delta)
    scored = word_start_tokens(tokenizer, vocab)[0]  # decodes the whole vocabulary: once
    noisy = noisy_word_counts(word_sets(train.text.tolist(), tokenizer, vocab, scored), cells,
                              len(domain), scored, vocab, sigma=sigma,
                              noise=NoiseSource.create(seed, False))
    counts = counts_lexicon(noisy, sigma)
    return {"counts": counts, "counts-mixed": (synth._lexicon() + counts) / 2}


def save_with_counts(synth: Any, save: Path | None, source: str, train: pd.DataFrame,
                     counts: tuple[float, float] | None) -> None:
    """Measure lever 8's :func:`counts_lexicons` on ``train`` at ``counts`` (its epsilon and
    delta; ``None``: no counts), save ``synth`` at ``save`` with its own word scores and at
    ``save-NAME`` with each of the counts' ones; then steer with ``source``'s scores when it
    names one of them."""
    lexicons = counts_lexicons(synth, train, *counts) if counts is not None else {}
    if save is not None:
        synth.save(save)
    if not lexicons:  # no counts: the model as fitted (it may not steer at all)
        return
    own = synth._lexicon()
    if save is not None:
        for name, scores in lexicons.items():
            synth.lexicon_ = scores
            synth.save(save.with_name(f"{save.name}-{name}"))
    synth.lexicon_ = lexicons.get(source, own)
