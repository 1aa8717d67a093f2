"""Ancestral and conditional sampling of token rows from an :class:`ARTransformer`.

Unconditional rows are drawn column by column from ``p(x_j | x_<j)``. Conditional rows fix the
tokens of some columns. Clamping them and drawing the rest is exact when the fixed columns
come first in the model's order, but not otherwise: the columns before a fixed one would be
drawn without regard to it. :func:`sample_conditional` therefore uses sampling-importance-
resampling (Rubin, "Using the SIR algorithm to simulate posterior distributions", 1988):
``k`` clamped candidates per requested row, each weighted by the probability the model gives
the fixed tokens, ``prod_{j fixed} p(x_j | x_<j)``, and one candidate kept in proportion to its
weight. The kept row follows ``p(free | fixed)`` as ``k`` grows; with the fixed columns
first in the order every weight is equal and the draw is exact for any ``k``.

:func:`clip_weights` gives the weights of the clip correction (``DPARSynthesizer``'s
``clip_correction``). With (nearly) every row's gradient clipped, DP-SGD's fixed point solves
``sum_i w_i g_i = 0`` with ``w_i = min(1, C / ||g_i||)``: the maximum-likelihood fit of the
data reweighted by ``w``, which under-weights the rows the model fits worst (rare values and
combinations; Chen, Wu and Hong, "Understanding gradient clipping in private SGD: a
geometric perspective", NeurIPS 2020). If the model fits that reweighted distribution, the
data's is proportional to the model's times ``1 / w(x) = max(1, ||g(x)|| / C)``, the row's
gradient norm at the released weights over the clip, so drawing from the model and
resampling by that weight undoes the reweighting. It reads only the released model: it is
post-processing and costs no privacy.

Systematic draws (``systematic=True``; ``DPARSynthesizer``'s ``draw="systematic"``) keep each
row's law and remove most of the multinomial noise that independent draws add to every
sampled marginal. For each column, the rows are put in the lexicographic order of the
tokens drawn so far, and the tokens are handed out one value at a time: value ``v`` goes to
a systematic sample (Madow, "On the theory of systematic sampling, II", Annals of
Mathematical Statistics 1949) of the rows that have no token yet, row ``i`` included with
probability ``p_i(v) / (p_i(v) + p_i(v + 1) + ...)``. Row ``i`` thus gets ``v`` with
probability ``p_i(v)``, exactly as with an independent draw, while the number of rows that
get ``v`` in any run of neighbours (rows sharing their first columns) stays within one of
its expectation at each step. The rows are no longer independent of each other, as with
the rounded ancestral sampling of marginal models.
"""

from __future__ import annotations

import numpy as np
import torch

from dpsynth.synthesizers._bookkeeping import BookkeepingClipper
from dpsynth.synthesizers.ar.model import ARTransformer, RowLoss

FREE = -1  #: marks a column to draw in a ``fixed`` token matrix
CHUNK = 8192


@torch.no_grad()
def column_given_rest(model: ARTransformer, tokens: np.ndarray, j: int, n_classes: int
                      ) -> np.ndarray:
    """``log p(x_j = k | every other column)`` for each row of ``tokens`` and each token ``k``
    of column ``j``: the row is scored through the model's factorisation with ``x_j = k``
    (only columns ``j`` and later depend on it), then normalised over ``k`` (Bayes' rule).
    ``(n, n_classes)``; post-processing of the model."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(tokens), CHUNK):
        part = torch.from_numpy(tokens[start:start + CHUNK]).to(device)
        scores = []
        for k in range(n_classes):
            trial = part.clone()
            trial[:, j] = k
            logits = model(trial)
            score = torch.zeros(len(trial), device=device)
            for c in range(j, trial.shape[1]):
                logp = torch.log_softmax(logits[c].float(), dim=-1)
                score += logp.gather(1, trial[:, c:c + 1]).squeeze(1)
            scores.append(score)
        out.append(torch.log_softmax(torch.stack(scores, dim=1), dim=1).cpu().numpy())
    if not out:
        return np.zeros((0, n_classes))
    return np.concatenate(out).astype(np.float64)


@torch.no_grad()
def draw_tokens(model: ARTransformer, fixed: np.ndarray, gen: torch.Generator,
                systematic: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Tokens for every row of ``fixed`` (``FREE`` entries drawn, others kept), drawn
    independently or, with ``systematic``, by :func:`systematic_choice` (within chunks of
    ``CHUNK`` rows).

    Returns the tokens ``(n, T)`` and, per row, the log-probability the model gives its
    fixed tokens (0 for a row without fixed tokens).
    """
    device = next(model.parameters()).device
    tokens_out, logw_out = [], []
    for start in range(0, len(fixed), CHUNK):
        part = torch.from_numpy(fixed[start:start + CHUNK]).to(device)
        tokens, logw = _draw_chunk(model, part, gen, systematic)
        tokens_out.append(tokens.cpu().numpy())
        logw_out.append(logw.cpu().numpy())
    if not tokens_out:
        return np.zeros((0, fixed.shape[1]), np.int64), np.zeros(0)
    return np.concatenate(tokens_out), np.concatenate(logw_out)


def systematic_choice(prob: torch.Tensor, order: torch.Tensor, draw: torch.Tensor,
                      gen: torch.Generator) -> torch.Tensor:
    """One value per row of ``prob`` ``(n, v)`` (rows summing to 1): row ``i`` gets value
    ``k`` with probability ``prob[i, k]``; the rows are coupled as in the module docstring,
    taken in ``order``. Rows where ``draw`` is False take no part (their entry is -1)."""
    n, v = prob.shape
    p = prob[order].double()
    tail = p.flip(1).cumsum(1).flip(1)  # p(k) + p(k + 1) + ... for each row and k
    undecided = draw[order].clone()
    out = torch.full((n,), -1, dtype=torch.long, device=prob.device)
    shifts = torch.rand(v, generator=gen, device=prob.device, dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64, device=prob.device)
    for k in range(v):
        q = torch.where(tail[:, k] > 0, p[:, k] / tail[:, k].clamp(min=1e-300),
                        torch.ones_like(p[:, k])).clamp(0.0, 1.0)
        q = torch.where(undecided, q, torch.zeros_like(q))
        upper = q.cumsum(0)
        lower = torch.cat([zero, upper[:-1]])
        hit = undecided & (torch.floor(upper - shifts[k]) > torch.floor(lower - shifts[k]))
        out[hit] = k
        undecided &= ~hit
        if not bool(undecided.any()):
            break
    result = torch.empty_like(out)
    result[order] = out
    return result


def _draw_chunk(model: ARTransformer, fixed: torch.Tensor, gen: torch.Generator,
                systematic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    n, t = fixed.shape
    tokens = fixed.clamp(min=0).clone()
    logw = torch.zeros(n, dtype=torch.float64, device=fixed.device)
    prefix = torch.zeros(n, dtype=torch.long, device=fixed.device)  # rank of x_<j's tokens
    for j in range(t):
        logp = torch.log_softmax(model.column_logits(tokens, j).float(), dim=-1)
        free = fixed[:, j] == FREE
        if systematic:
            order = torch.argsort(prefix, stable=True)
            drawn = systematic_choice(logp.exp(), order, free, gen).clamp(min=0)
        else:
            drawn = torch.multinomial(logp.exp(), 1, generator=gen).squeeze(1)
        tokens[:, j] = torch.where(free, drawn, fixed[:, j].clamp(min=0))
        if systematic:
            prefix = torch.unique(prefix * logp.shape[1] + tokens[:, j], return_inverse=True)[1]
        given = logp.gather(1, tokens[:, j:j + 1]).squeeze(1).double()
        logw += torch.where(free, torch.zeros_like(given), given)
    return tokens, logw


def sample_conditional(model: ARTransformer, fixed: np.ndarray, gen: torch.Generator,
                       rng: np.random.Generator, candidates: int,
                       clip: float | None = None) -> np.ndarray:
    """One row per row of ``fixed``, drawn by SIR over ``candidates`` clamped draws each;
    with ``clip``, each candidate's weight is also multiplied by its :func:`clip_weights`."""
    n, t = fixed.shape
    many = np.repeat(fixed, candidates, axis=0)
    tokens, logw = draw_tokens(model, many, gen)
    if clip is not None:
        logw = logw + np.log(clip_weights(model, tokens, clip))
    logw = logw.reshape(n, candidates)
    cdf = np.cumsum(np.exp(logw - logw.max(axis=1, keepdims=True)), axis=1)
    u = np.asarray(rng.random(n))[:, None] * cdf[:, -1:]
    pick = np.minimum((cdf < u).sum(axis=1), candidates - 1)
    return tokens.reshape(n, candidates, t)[np.arange(n), pick]


def row_gradient_norms(model: ARTransformer, tokens: np.ndarray, chunk: int = 4096
                       ) -> np.ndarray:
    """The norm of each row's gradient of its negative log-likelihood (:class:`RowLoss`) at
    the model's weights, ``(n,)``: book-keeping's per-row norms, one backward pass per
    ``chunk`` rows (the weights are left unchanged and without gradients)."""
    device = next(model.parameters()).device
    loss = RowLoss()
    loss.reduction = "none"
    clipper = BookkeepingClipper(model, 1.0)
    out = []
    clipper.attach()
    try:
        with torch.enable_grad():
            for start in range(0, len(tokens), chunk):
                part = torch.from_numpy(tokens[start:start + chunk]).to(device)
                norms = clipper.backward(loss(model(part), part))
                out.append(norms.detach().double().cpu().numpy())
    finally:
        clipper.detach()
        for p in model.parameters():
            p.grad = None
    return np.concatenate(out) if out else np.zeros(0)


def clip_weights(model: ARTransformer, tokens: np.ndarray, clip: float) -> np.ndarray:
    """``max(1, ||g(x)|| / clip)`` for each row ``x`` of ``tokens`` (see the module
    docstring): the inverse of the weight the clip gave such a row in training."""
    return np.maximum(1.0, row_gradient_norms(model, tokens) / float(clip))


def weighted_subset(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The indices (sorted) of ``n`` of the rows drawn without replacement with probability
    in proportion to ``weights`` at each draw (Efraimidis and Spirakis, "Weighted random
    sampling with a reservoir", 2006: the ``n`` largest keys ``u^(1 / w)``)."""
    if n >= len(weights):
        return np.arange(len(weights))
    keys = np.log(rng.random(len(weights))) / weights
    return np.sort(np.argpartition(-keys, n - 1)[:n])


__all__ = ["FREE", "clip_weights", "draw_tokens", "row_gradient_norms", "sample_conditional",
           "systematic_choice", "weighted_subset"]
