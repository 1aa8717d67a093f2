"""A small causal transformer over column tokens, built from layers book-keeping can clip.

A row is the sequence of its column tokens in schema order. Position ``j`` sees the tokens
of columns ``0 .. j-1`` (position 0 sees a start token) and predicts column ``j`` through a
head of its own over that column's vocabulary, so the model is the factorisation
``p(x) = prod_j p(x_j | x_<j)`` of DP-TBART (Castellon et al., "DP-TBART: A Transformer-based
Autoregressive Model for Differentially Private Tabular Data Generation", 2023), with
pre-norm blocks as in GPT-2 (Radford et al., 2019).

Every trainable layer is an ``nn.Linear``, ``nn.Embedding`` or ``nn.LayerNorm`` used once per
forward with the batch first, so :mod:`dpsynth.synthesizers._bookkeeping` clips it without
Opacus; attention is written from ``nn.Linear`` projections and
:func:`torch.nn.functional.scaled_dot_product_attention` (no parameters of its own).
Nothing here knows about synthesizers, budgets or ledgers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dpsynth.synthesizers._init import gpt2_init


@dataclass(frozen=True)
class ARConfig:
    """Shape of an :class:`ARTransformer`."""

    vocab_sizes: tuple[int, ...]
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: int = 2


class _Block(nn.Module):
    """Pre-norm causal self-attention and MLP, with residual connections."""

    def __init__(self, d: int, n_heads: int, mlp_ratio: int):
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d, device="meta")
        self.qkv = nn.Linear(d, 3 * d, device="meta")
        self.proj = nn.Linear(d, d, device="meta")
        self.norm2 = nn.LayerNorm(d, device="meta")
        self.fc1 = nn.Linear(d, mlp_ratio * d, device="meta")
        self.fc2 = nn.Linear(mlp_ratio * d, d, device="meta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)
        q, k, v = (z.reshape(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)
                   for z in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ARTransformer(nn.Module):
    """Autoregressive model of rows of column tokens (see the module docstring).

    ``forward(tokens)`` takes ``(B, T)`` int64 tokens (token ``t`` of column ``j`` in
    ``[0, vocab_sizes[j])``) and returns ``T`` tensors of logits, ``(B, vocab_sizes[j])``.
    Column ``T - 1``'s token is never read. :meth:`hidden` gives the states of the first
    positions only (sampling fills the columns one at a time).
    """

    def __init__(self, config: ARConfig):
        super().__init__()
        sizes = config.vocab_sizes
        d = config.d_model
        self.config = config
        self.offsets = (0, *itertools.accumulate(sizes))[:len(sizes)]
        self.start_token = sum(sizes)
        self.tokens = nn.Embedding(sum(sizes) + 1, d, device="meta")
        self.position = nn.Embedding(len(sizes), d, device="meta")
        self.blocks = nn.ModuleList(_Block(d, config.n_heads, config.mlp_ratio)
                                    for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(d, device="meta")
        self.heads = nn.ModuleList(nn.Linear(d, v, device="meta") for v in sizes)

    def hidden(self, tokens: torch.Tensor, n: int) -> torch.Tensor:
        """States ``(B, n, d)`` of positions ``0 .. n-1`` (reading tokens of columns < n-1)."""
        b = tokens.shape[0]
        device = tokens.device
        start = torch.full((b, 1), self.start_token, dtype=torch.long, device=device)
        shift = torch.tensor(self.offsets[:n - 1], dtype=torch.long, device=device)
        ids = torch.cat([start, tokens[:, :n - 1] + shift], dim=1)
        # contiguous: Opacus' ghost clipping views an embedding's indices, which a stride-0
        # expand does not allow
        return self.encode(ids, torch.arange(n, device=device).expand(b, n).contiguous())

    def encode(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """States ``(B, n, d)`` of input token ids and position ids, both ``(B, n)``."""
        h = self.tokens(ids) + self.position(pos)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def column_logits(self, tokens: torch.Tensor, j: int) -> torch.Tensor:
        """Logits ``(B, vocab_sizes[j])`` of column ``j`` given the tokens of columns ``< j``
        (what sampling draws column ``j`` from)."""
        return self.heads[j](self.hidden(tokens, j + 1)[:, j])

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        h = self.hidden(tokens, tokens.shape[1])
        return [head(h[:, j]) for j, head in enumerate(self.heads)]


def build_model(config: ARConfig, seed: int | None) -> ARTransformer:
    """The model on CPU, weights drawn from a generator seeded with ``seed`` (no global RNG).

    Layers are created on the meta device, so torch's own initialisation (which draws from
    the global generator) never runs; ``seed=None`` leaves the weights uninitialised, for
    loading. Linear and embedding weights are N(0, 0.02^2) as in GPT-2, the residual output
    projections scaled by ``1 / sqrt(2 n_layers)``; biases 0; layer norms the identity.
    """
    model = ARTransformer(config).to_empty(device="cpu")
    if seed is None:
        return model
    gpt2_init(model, seed, config.n_layers, ("proj", "fc2"))
    return model


class RowLoss(nn.Module):
    """Negative log-likelihood of each row: the sum of its columns' cross-entropies.

    ``reduction`` is ``"none"`` (one loss per row, what DP-SGD clips), ``"mean"`` or ``"sum"``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reduction = "mean"

    def forward(self, logits: list[torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
        per_row = sum(F.cross_entropy(z.float(), tokens[:, j], reduction="none")
                      for j, z in enumerate(logits))
        assert isinstance(per_row, torch.Tensor)
        if self.reduction == "none":
            return per_row
        return per_row.sum() if self.reduction == "sum" else per_row.mean()


__all__ = ["ARConfig", "ARTransformer", "RowLoss", "build_model"]
