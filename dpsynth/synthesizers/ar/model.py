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

The second network, :class:`ProductOfExperts`, multiplies each column's conditional from the
transformer with the exact conditional of a :class:`MixtureOfProducts` (a latent class
model) over the same tokens; ``ARConfig.network`` picks one. Nothing here knows about
synthesizers, budgets or ledgers.
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
    #: ``"transformer"`` (:class:`ARTransformer`) or ``"experts"`` (:class:`ProductOfExperts`).
    network: str = "transformer"
    #: The mixture's latent classes, and its share of the clip and its learning rate in
    #: DP-SGD (``"experts"`` only).
    n_classes: int = 64
    mixture_clip_share: float = 0.8
    mixture_learning_rate: float = 0.3


#: The networks of :class:`ARConfig`.
NETWORKS = ("transformer", "experts")


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


class MixtureOfProducts(nn.Module):
    """A mixture of ``K`` products over column tokens, ``p(x) = sum_k pi_k prod_j p_k(x_j)``.

    The latent class model of the DPMPM synthesisers (Si and Reiter, "Nonparametric Bayesian
    multiple imputation for incomplete categorical variables in large-scale assessment
    surveys", JEBS 2013), here fitted by (DP-)SGD on the log-likelihood instead of by Gibbs
    sampling. Class ``k``'s logits (its tokens', then its prior's) are row ``k`` of one
    embedding plus a row every class shares, read once per example, so book-keeping clips
    them. ``forward`` gives the autoregressive factorisation
    ``p(x_j | x_<j) = sum_k p(k | x_<j) p_k(x_j)`` as log-probabilities, one ``(B, v_j)``
    tensor per column, exactly the joint above.
    """

    def __init__(self, vocab_sizes: tuple[int, ...], n_classes: int):
        super().__init__()
        self.n_classes = n_classes
        starts = (0, *itertools.accumulate(vocab_sizes))[:len(vocab_sizes)]
        self.spans = list(zip(starts, vocab_sizes, strict=True))
        width = sum(vocab_sizes) + 1
        self.classes = nn.Embedding(n_classes, width, device="meta")
        self.shared = nn.Embedding(1, width, device="meta")

    def _log_tables(self, b: int, device: torch.device
                    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Log-priors ``(b, K)`` and each column's log-probabilities ``(b, K, v_j)``."""
        k = self.n_classes
        ids = torch.arange(k, device=device).expand(b, k).contiguous()
        out = (self.classes(ids) + self.shared(torch.zeros_like(ids[:, :1]))).float()
        prior = torch.log_softmax(out[:, :, -1], dim=1)
        return prior, [torch.log_softmax(out[:, :, s:s + v], dim=-1) for s, v in self.spans]

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        prefix, tables = self._log_tables(tokens.shape[0], tokens.device)
        logits = []
        for j in range(tokens.shape[1]):
            logits.append(torch.logsumexp(prefix[:, :, None] + tables[j], dim=1))
            if j + 1 < tokens.shape[1]:
                index = tokens[:, j].view(-1, 1, 1).expand(-1, self.n_classes, 1)
                prefix = prefix + tables[j].gather(2, index).squeeze(2)
        return logits

    def column_logits(self, tokens: torch.Tensor, j: int) -> torch.Tensor:
        """Column ``j``'s conditional log-probabilities given columns ``< j``: ``forward``'s,
        with the classes' tables read once for all rows (sampling needs no row gradients)."""
        prior, tables = self._log_tables(1, tokens.device)
        prefix = prior.expand(tokens.shape[0], -1)
        for i in range(j):
            prefix = prefix + tables[i][0].T[tokens[:, i]]
        return torch.logsumexp(prefix[:, :, None] + tables[j], dim=1)

    @torch.no_grad()
    def draw(self, seed: int, std: float = 0.5) -> None:
        """Class rows N(0, ``std``^2) from a generator seeded with ``seed``, the shared row 0."""
        gen = torch.Generator().manual_seed(int(seed))
        width = self.classes.weight.shape[1]
        self.classes.weight.copy_(torch.randn(width, self.n_classes, generator=gen).T * std)
        self.shared.weight.zero_()


class ProductOfExperts(ARTransformer):
    """:class:`ARTransformer` times a :class:`MixtureOfProducts`, column by column.

    ``p(x_j | x_<j)`` is proportional to the mixture's exact conditional times the
    transformer's exponentiated logits (a product of experts, Hinton, "Training products of
    experts by minimizing contrastive divergence", Neural Computation 2002), each column's
    two factors normalised together, so the likelihood stays exact and sampling is
    unchanged. The transformer starts with logits near 0, so the model starts as the
    mixture and the transformer learns what the classes miss.

    For DP-SGD it declares two clip groups (:meth:`clip_groups`: the mixture's row gradient
    clipped to ``C sqrt(share)``, the transformer's to ``C sqrt(1 - share)``, the whole
    within ``C``) and two learning rates (:meth:`optimizer_groups`).
    """

    def __init__(self, config: ARConfig):
        super().__init__(config)
        self.mixture = MixtureOfProducts(config.vocab_sizes, config.n_classes)

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        return [z + q for z, q in zip(super().forward(tokens), self.mixture(tokens),
                                      strict=True)]

    def column_logits(self, tokens: torch.Tensor, j: int) -> torch.Tensor:
        return super().column_logits(tokens, j) + self.mixture.column_logits(tokens, j)

    def _split(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """The trainable parameters: the transformer's, then the mixture's."""
        mixture = [p for p in self.mixture.parameters() if p.requires_grad]
        ids = {id(p) for p in mixture}
        return [p for p in self.parameters() if p.requires_grad and id(p) not in ids], mixture

    def clip_groups(self) -> list[tuple[list[nn.Parameter], float]]:
        """The clip groups book-keeping reads (see :class:`BookkeepingClipper`)."""
        share = float(self.config.mixture_clip_share)
        transformer, mixture = self._split()
        return [(transformer, 1.0 - share), (mixture, share)]

    def optimizer_groups(self, learning_rate: float) -> list[dict[str, object]]:
        """Optimizer parameter groups: the transformer at ``learning_rate``, the mixture at
        ``config.mixture_learning_rate`` (its logits are direct log-probabilities and move
        little at the transformer's rate)."""
        transformer, mixture = self._split()
        return [{"params": transformer, "lr": float(learning_rate)},
                {"params": mixture, "lr": float(self.config.mixture_learning_rate)}]


def build_model(config: ARConfig, seed: int | None) -> ARTransformer:
    """The model on CPU, weights drawn from a generator seeded with ``seed`` (no global RNG).

    Layers are created on the meta device, so torch's own initialisation (which draws from
    the global generator) never runs; ``seed=None`` leaves the weights uninitialised, for
    loading. Linear and embedding weights are N(0, 0.02^2) as in GPT-2, the residual output
    projections scaled by ``1 / sqrt(2 n_layers)``; biases 0; layer norms the identity. A
    product of experts draws its transformer so, then its mixture
    (:meth:`MixtureOfProducts.draw`, from a generator seeded with ``seed`` too).
    """
    if config.network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, not {config.network!r}")
    model = (ARTransformer(config) if config.network == "transformer"
             else ProductOfExperts(config)).to_empty(device="cpu")
    if seed is None:
        return model
    gpt2_init(model, seed, config.n_layers, ("proj", "fc2"))
    if isinstance(model, ProductOfExperts):
        model.mixture.draw(seed)
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


__all__ = ["NETWORKS", "ARConfig", "ARTransformer", "MixtureOfProducts", "ProductOfExperts",
           "RowLoss", "build_model"]
