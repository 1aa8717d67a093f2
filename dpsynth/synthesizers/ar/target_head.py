"""The target head of ``dpar`` (``DPARSynthesizer(target=...)``).

Inside ``dpar``'s one DP-SGD run, a single column's conditional gets a small part of each
row's clipped gradient (0.2-3 % of its square for the binary targets of the tuning tables),
so the column a user will predict is learnt last and worst. When the user names that column,
a multinomial logistic regression for it given the other columns is trained apart, by DP-SGD
(Abadi et al., "Deep learning with differential privacy", CCS 2016): per-row gradients
clipped to norm 1, Poisson sampling, Gaussian noise calibrated before training so that the
regression alone is ``(target_share * epsilon, delta)``-DP. ``dpar`` calibrates its own noise
with the regression's steps as prior events, so that the two compose by PLD to the fit's
``(epsilon, delta)``. Under PLD the regression costs ``dpar`` little (on the tuning table
HMDA at epsilon 1, a share of 0.3 raised dpar's noise multiplier from 8.51 to 9.00, where
splitting epsilon would have needed 11.72). The regression trains after ``dpar``'s run, so
``dpar`` draws the noise and batches it would draw without a target.

Rows are drawn from ``dpar`` and each row's target is redrawn from the regression given the
row's other columns, the regression's intercepts shifted so that the classes keep the
frequencies of ``dpar``'s own draw: the regression ranks the rows, ``dpar`` sets how many
fall in each class (noisy clipped DP-SGD from zero weights leaves the intercepts far from
the base rates). Both are post-processing of the two releases.

The features are the one-hot of every other column's tokens at ``FEATURE_BINS`` bins, plus a
bias; the classes are ``dpar``'s tokens of the target (a bounded target is predicted by its
bin). Class 0 is the reference (its logit is 0), so with two classes this is plain logistic
regression. The settings (bins, batch, epochs, learning rates, share) were chosen on the
tuning tables HMDA, Affairs and HousePrices (``benchmarks/bench_dp_classifier_bound.py``,
``benchmarks/tune_dpar.py``, key ``"head"``).

By default (``target_offset=True``) the regression's logits also add ``dpar``'s own exact
``log p(target | other columns)`` (:func:`~dpsynth.synthesizers.ar.sampling.column_given_rest`),
not trained: the regression starts from ``dpar``'s conditional and DP-SGD learns a
correction to it, as a boosting stage fits a correction to the model before it (Friedman,
"Greedy function approximation: a gradient boosting machine", Annals of Statistics 2001).
Where ``dpar`` already predicts the target there is little to correct; without the offset
the regression replaced a good conditional with a worse one on CPS1988. The offset is a
function of the row and of released weights, so the clipping and the accounting are
unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dpsynth.accounting import NoiseSource, calibrate_dpsgd_noise
from dpsynth.errors import PrivacyError
from dpsynth.schema import Schema
from dpsynth.synthesizers import _dpsgd
from dpsynth.synthesizers.ar.tokens import TableTokenizer
from dpsynth.synthesizers.plan import DPSGDPlan

HEAD_PURPOSE = "train:dpar-target"
#: Bins of the features' one-hot (coarser than dpar's: fewer noisy weights).
FEATURE_BINS = 8
#: Expected (Poisson) batch, passes and clipping norm of the regression's DP-SGD.
HEAD_BATCH = 256
HEAD_EPOCHS = 10.0
HEAD_CLIP = 1.0
#: The regression's step size: ``LOW_RATE`` below ``RATE_SWITCH_EPSILON`` of its own
#: epsilon, else ``HIGH_RATE`` (the tuning tables' best log-loss at 0.3 and 0.6, then 1.2).
LOW_RATE, HIGH_RATE, RATE_SWITCH_EPSILON = 0.5, 2.0, 0.85
#: Without DP (a reference only), at least this many full-table steps, as dpar's own.
PLAIN_MIN_STEPS = 250


def plan_head(n_rows: int, epsilon: float, delta: float) -> DPSGDPlan:
    """The regression's DP-SGD run on ``n_rows`` rows, alone ``(epsilon, delta)``-DP."""
    q = min(1.0, HEAD_BATCH / n_rows)
    steps = _dpsgd.steps_for(HEAD_EPOCHS, q)
    sigma = calibrate_dpsgd_noise(epsilon, delta, sample_rate=q, steps=steps)
    return DPSGDPlan(HEAD_PURPOSE, q, steps, sigma)


def head_rate(epsilon: float) -> float:
    """The step size for a regression worth ``epsilon`` alone (``inf`` without DP)."""
    return LOW_RATE if epsilon < RATE_SWITCH_EPSILON else HIGH_RATE


@dataclass
class TargetHead:
    """A fitted target head: the features' tokenizer, the weights ``(features + 1, classes - 1)``
    (the last row is the bias) and the target's column name. With ``offset``, the logits
    also add dpar's own ``log p(target | other columns)`` (the head corrects dpar's
    conditional instead of replacing it)."""

    column: str
    features: TableTokenizer
    weights: np.ndarray
    offset: bool = False

    #: Decodes the target's tokens alone (its codec at dpar's bins; see :meth:`build`).
    target_tokens: TableTokenizer | None = None

    @classmethod
    def build(cls, schema: Schema, column: str, n_bins: int, weights: np.ndarray,
              offset: bool) -> TargetHead:
        """The head of ``column`` with its feature tokenizer and the target's decoder (at
        dpar's ``n_bins``), both from the schema alone."""
        target = TableTokenizer(n_bins).fit(Schema((schema[column],), name="target"))
        return cls(column, cls.feature_tokenizer(schema, column), weights, offset, target)

    @classmethod
    def feature_tokenizer(cls, schema: Schema, column: str,
                          n_bins: int = FEATURE_BINS) -> TableTokenizer:
        """The tokenizer of every data column but ``column`` (``FEATURE_BINS`` bins)."""
        others = tuple(c for c in schema.data_columns if c.name != column)
        return TableTokenizer(n_bins).fit(Schema(others, name="features"))

    def probabilities(self, rows: pd.DataFrame, frequencies: np.ndarray,
                      offsets: np.ndarray | None = None) -> np.ndarray:
        """Each row's class probabilities, intercepts shifted to ``frequencies``;
        ``offsets`` are dpar's log-probabilities of the classes (needed with ``offset``)."""
        logits = logits_of(active(self.features, rows), self.weights)
        if self.offset:
            if offsets is None:
                raise ValueError("this target head corrects dpar's conditional: pass offsets")
            logits = logits + offsets
        return shifted(logits, frequencies)

    @property
    def n_classes(self) -> int:
        """The target's number of tokens (its classes)."""
        assert self.target_tokens is not None, "built by TargetHead.build"
        return int(self.target_tokens.vocab_sizes[0])

    def redraw(self, rows: pd.DataFrame, drawn: np.ndarray, rng: np.random.Generator,
               offsets: np.ndarray | None = None) -> np.ndarray:
        """New target tokens for ``rows``: a draw from the regression, its intercepts shifted
        so that the classes keep the frequencies of ``drawn`` (dpar's tokens)."""
        n_classes = self.n_classes
        frequencies = np.bincount(drawn, minlength=n_classes) / max(len(drawn), 1)
        p = self.probabilities(rows, frequencies, offsets)
        u = rng.random(len(rows))[:, None]
        return np.minimum((np.cumsum(p, axis=1) < u).sum(axis=1), n_classes - 1)

    def decode(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The target's values for its ``tokens`` (a bin decoded by a uniform draw)."""
        assert self.target_tokens is not None, "built by TargetHead.build"
        return self.target_tokens.inverse_transform(tokens[:, None], rng)[
            self.column].to_numpy()


def active(tokenizer: TableTokenizer, rows: pd.DataFrame) -> np.ndarray:
    """The one-hot features of ``rows`` as the indices of their ones: each column's token
    offset into one feature space, then the bias (the last index). Every row has as many
    ones, so ``||x|| = sqrt(columns + 1)`` for all."""
    tokens = tokenizer.transform(rows)
    offsets = np.cumsum((0, *tokenizer.vocab_sizes[:-1]))
    bias = np.full((len(rows), 1), sum(tokenizer.vocab_sizes), dtype=np.int64)
    return np.concatenate([tokens + offsets, bias], axis=1)


def n_features(tokenizer: TableTokenizer) -> int:
    """Rows of the weights: every token of every feature column, then the bias."""
    return sum(tokenizer.vocab_sizes) + 1


def logits_of(indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Every class' logit for rows given by :func:`active` (the reference class 0 at 0)."""
    z = weights[indices].sum(axis=1)
    return np.concatenate([np.zeros((len(indices), 1)), z], axis=1)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def shifted(logits: np.ndarray, frequencies: np.ndarray, rounds: int = 200) -> np.ndarray:
    """``softmax(logits + c)`` with per-class shifts ``c`` such that the mean probability of
    each class is its ``frequencies`` (floored at 1e-4, renormalised); a class of frequency
    0 keeps probability 0. Found by alternating proportional updates (iterative
    proportional fitting); with two classes, the one shift that matches the rate."""
    target = np.maximum(np.asarray(frequencies, dtype=float), 0.0)
    live = target > 0
    target = np.where(live, np.maximum(target, 1e-4), 0.0)
    target = target / target.sum()
    z = np.where(live[None, :], logits, -np.inf)
    shift = np.zeros(logits.shape[1])
    for _ in range(rounds):
        p = softmax(z + shift)
        mean = p.mean(axis=0)
        step = np.where(live, np.log(target + 1e-300) - np.log(mean + 1e-300), 0.0)
        shift += step
        if np.abs(step).max() < 1e-9:
            break
    return softmax(z + shift)


def fit_head(indices: np.ndarray, n_weights: int, y: np.ndarray, n_classes: int,
             plan: DPSGDPlan | None, noise: NoiseSource, learning_rate: float,
             offsets: np.ndarray | None = None) -> np.ndarray:
    """The regression's weights by DP-SGD under ``plan``, noise and Poisson batches from
    ``noise`` (:class:`~dpsynth.synthesizers._dpsgd.FastPoissonBatches`, ``O(q n)`` draws a
    step). ``indices`` are the rows' features from :func:`active`, ``n_weights`` the size of
    the feature space. Each row's gradient ``x (p - e_y)`` over the non-reference classes is
    clipped to ``HEAD_CLIP``; the step is ``rate (sum + N(0, sigma^2 C^2)) / (q n)``. Without
    a plan (``epsilon=inf``, a reference) as many steps, at least ``PLAIN_MIN_STEPS``, run on
    the whole table, clipped, without noise. ``offsets`` ``(n, classes)``, when given, are
    added to every row's logits and not trained (a function of the row and of released
    weights, so the clipping and the accounting are unchanged)."""
    n, width = indices.shape
    weights = np.zeros((n_weights, max(n_classes - 1, 0)))
    if n_classes < 2:
        return weights
    if plan is None:
        q = 1.0
        steps = max(_dpsgd.steps_for(HEAD_EPOCHS, min(1.0, HEAD_BATCH / n)), PLAIN_MIN_STEPS)
        batches: Iterable[np.ndarray] = (np.arange(n) for _ in range(steps))
    else:
        q = plan.sample_rate
        batches = _dpsgd.FastPoissonBatches(n, q, plan.steps, noise)
    norm_x = np.sqrt(width)  # one feature per column and the bias
    for batch in batches:
        rows = indices[batch]
        target = np.zeros((len(batch), n_classes))
        target[np.arange(len(batch)), y[batch]] = 1.0
        logits = logits_of(rows, weights)
        if offsets is not None:
            logits = logits + offsets[batch]
        residual = (softmax(logits) - target)[:, 1:]
        norms = norm_x * np.linalg.norm(residual, axis=1)
        scaled = residual * np.minimum(1.0, HEAD_CLIP / np.maximum(norms, 1e-12))[:, None]
        total = np.zeros_like(weights)
        np.add.at(total, rows.ravel(), np.repeat(scaled, width, axis=0))
        if plan is not None:
            total += noise.normal(total.size, plan.noise_multiplier * HEAD_CLIP).reshape(
                total.shape)
        weights -= learning_rate * total / (q * n)
    if not np.isfinite(weights).all():
        raise PrivacyError("internal error: the target head's weights are not finite")
    return weights


__all__ = ["HEAD_PURPOSE", "TargetHead", "active", "fit_head", "head_rate", "n_features",
           "plan_head", "shifted"]
