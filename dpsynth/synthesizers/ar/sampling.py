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
"""

from __future__ import annotations

import numpy as np
import torch

from dpsynth.synthesizers.ar.model import ARTransformer

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
def draw_tokens(model: ARTransformer, fixed: np.ndarray, gen: torch.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Tokens for every row of ``fixed`` (``FREE`` entries drawn, others kept).

    Returns the tokens ``(n, T)`` and, per row, the log-probability the model gives its
    fixed tokens (0 for a row without fixed tokens).
    """
    device = next(model.parameters()).device
    tokens_out, logw_out = [], []
    for start in range(0, len(fixed), CHUNK):
        part = torch.from_numpy(fixed[start:start + CHUNK]).to(device)
        tokens, logw = _draw_chunk(model, part, gen)
        tokens_out.append(tokens.cpu().numpy())
        logw_out.append(logw.cpu().numpy())
    if not tokens_out:
        return np.zeros((0, fixed.shape[1]), np.int64), np.zeros(0)
    return np.concatenate(tokens_out), np.concatenate(logw_out)


def _draw_chunk(model: ARTransformer, fixed: torch.Tensor, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor]:
    n, t = fixed.shape
    tokens = fixed.clamp(min=0).clone()
    logw = torch.zeros(n, dtype=torch.float64, device=fixed.device)
    for j in range(t):
        logp = torch.log_softmax(model.column_logits(tokens, j).float(), dim=-1)
        free = fixed[:, j] == FREE
        drawn = torch.multinomial(logp.exp(), 1, generator=gen).squeeze(1)
        tokens[:, j] = torch.where(free, drawn, fixed[:, j].clamp(min=0))
        given = logp.gather(1, tokens[:, j:j + 1]).squeeze(1).double()
        logw += torch.where(free, torch.zeros_like(given), given)
    return tokens, logw


def sample_conditional(model: ARTransformer, fixed: np.ndarray, gen: torch.Generator,
                       rng: np.random.Generator, candidates: int) -> np.ndarray:
    """One row per row of ``fixed``, drawn by SIR over ``candidates`` clamped draws each."""
    n, t = fixed.shape
    many = np.repeat(fixed, candidates, axis=0)
    tokens, logw = draw_tokens(model, many, gen)
    logw = logw.reshape(n, candidates)
    cdf = np.cumsum(np.exp(logw - logw.max(axis=1, keepdims=True)), axis=1)
    u = np.asarray(rng.random(n))[:, None] * cdf[:, -1:]
    pick = np.minimum((cdf < u).sum(axis=1), candidates - 1)
    return tokens.reshape(n, candidates, t)[np.arange(n), pick]


__all__ = ["FREE", "draw_tokens", "sample_conditional"]
