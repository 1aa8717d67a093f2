"""A small byte-level causal transformer that Opacus can clip per record.

A decoder-only transformer (Vaswani et al., "Attention Is All You Need", NeurIPS 2017) in the
pre-LayerNorm arrangement of GPT-2 (Radford et al., 2019), built from ``nn.Embedding``,
``nn.Linear`` and ``nn.LayerNorm`` only, with the causal attention written out by hand: Opacus
computes per-sample gradients of those three layer types itself, whereas
``nn.MultiheadAttention`` (and its DP replacement with a causal mask when batch-first) does
not work with it. Each record is one sample of the batch, so clipping bounds what one record
(all its tokens together) contributes to a step: the privacy unit is the record, not the
token.

The attention keeps a key/value cache for sampling, so drawing a record of ``T`` bytes costs
``T`` single-token steps rather than ``T`` full passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dpsynth.errors import ModelFormatError
from dpsynth.synthesizers._init import gpt2_init
from dpsynth.synthesizers.text.codec import BOS, EOS, PAD, VOCAB_SIZE

KVCache = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture of :class:`ByteTransformer` (stored beside its weights)."""

    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 512
    max_positions: int = 320
    vocab_size: int = VOCAB_SIZE

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ModelFormatError(f"d_model ({self.d_model}) must be a multiple of n_heads "
                                   f"({self.n_heads}).")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TransformerConfig:
        return cls(**{k: int(v) for k, v in data.items()})


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with a causal mask; every weight is an ``nn.Linear``."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, device="meta")
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, device="meta")

    def forward(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, d = x.shape
        h = self.n_heads
        q, k, v = (z.reshape(b, t, h, d // h).transpose(1, 2)
                   for z in self.qkv(x).split(d, dim=2))
        past = 0
        if cache is not None:
            past = cache[0].shape[2]
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // h)
        keys = torch.arange(past + t, device=x.device)
        queries = torch.arange(past, past + t, device=x.device)
        scores = scores.masked_fill(keys[None, :] > queries[:, None], float("-inf"))
        y = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(y), (k, v)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: attention then a GELU MLP, each with a residual."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, device="meta")
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, device="meta")
        self.fc = nn.Linear(cfg.d_model, cfg.d_ff, device="meta")
        self.out = nn.Linear(cfg.d_ff, cfg.d_model, device="meta")

    def forward(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        a, kv = self.attn(self.ln1(x), cache)
        x = x + a
        return x + self.out(F.gelu(self.fc(self.ln2(x)))), kv


class ByteTransformer(nn.Module):
    """Decoder-only byte-level language model; ``forward(tokens)`` returns next-byte logits."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model, device="meta")
        self.pos = nn.Embedding(cfg.max_positions, cfg.d_model, device="meta")
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, device="meta")
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, device="meta")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        logits, _ = self.forward_cached(tokens, None)
        return logits

    def forward_cached(self, tokens: torch.Tensor, cache: KVCache | None
                       ) -> tuple[torch.Tensor, KVCache]:
        b, t = tokens.shape
        past = 0 if not cache else cache[0][0].shape[2]
        if past + t > self.cfg.max_positions:
            raise ValueError(f"sequence of {past + t} tokens exceeds the model's "
                             f"{self.cfg.max_positions} positions")
        # Contiguous position ids: Opacus' ghost clipping rejects expanded index tensors.
        positions = torch.arange(past, past + t, device=tokens.device).expand(b, t).contiguous()
        x = self.tok(tokens) + self.pos(positions)
        new_cache: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if not cache else cache[i])
            new_cache.append(kv)
        return self.head(self.ln_f(x)), new_cache


TRAINABLE_SETS = ("all", "norms-biases", "norms-biases-io")


def select_trainable(model: ByteTransformer, which: str) -> int:
    """Freeze every parameter outside ``which``; return how many values stay trainable.

    * ``"all"``: every weight.
    * ``"norms-biases"``: LayerNorm gains and biases and every bias (BitFit, Ben Zaken et al.,
      ACL 2022; with DP, Bu et al., "Differentially Private Bias-Term Fine-tuning", 2022).
    * ``"norms-biases-io"``: those plus the byte embedding and the output layer, the two
      ends where a new kind of text differs most from the public pretraining text.

    DP-SGD adds noise of the same scale to every trainable coordinate, so the noise's total
    norm grows with the square root of their number while the clipped signal does not:
    updating fewer parameters of a public model is the usual remedy (Yu et al.,
    "Differentially Private Fine-tuning of Language Models", ICLR 2022).
    """
    if which not in TRAINABLE_SETS:
        raise ValueError(f"unknown trainable set {which!r}; expected one of {TRAINABLE_SETS}")
    io = (model.tok, model.head) if which == "norms-biases-io" else ()
    count = 0
    for owner in model.modules():
        for leaf, param in owner.named_parameters(recurse=False):
            keep = (which == "all" or leaf == "bias" or isinstance(owner, nn.LayerNorm)
                    or owner in io)
            param.requires_grad_(keep)
            count += param.numel() if keep else 0
    return count


def build_model(cfg: TransformerConfig, seed: int | None) -> ByteTransformer:
    """The model on CPU, initialised from a generator seeded with ``seed`` (no global RNG).

    GPT-2's initialisation: N(0, 0.02) weights, residual projections scaled by
    ``1/sqrt(2 n_layers)``, zero biases. ``seed=None`` leaves the weights uninitialised, for
    loading.
    """
    model = ByteTransformer(cfg).to_empty(device="cpu")
    if seed is None:
        return model
    gpt2_init(model, seed, cfg.n_layers, ("attn.proj", ".out"))
    return model


class RecordNLL(nn.Module):
    """Mean negative log-likelihood per target byte of each record.

    ``forward(logits, target)`` takes logits ``(B, T, V)`` and ``target`` ``(B, 2, T)``: the
    next-token ids and the 0/1 loss weights. A record's loss is averaged over its own target
    bytes only, so it never depends on another record of the batch (padding included).
    ``reduction`` is ``"none"`` (per record), ``"mean"`` or ``"sum"``, as Opacus expects.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reduction = "mean"

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ids, weights = target[:, 0], target[:, 1].to(logits.dtype)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids.reshape(-1),
                              reduction="none").view_as(weights)
        return reduce_records((nll * weights).sum(dim=1), weights, self.reduction)


def reduce_records(summed: torch.Tensor, weights: torch.Tensor, reduction: str) -> torch.Tensor:
    """Each record's weighted NLL ``summed`` ``(B,)`` over its own weights ``(B, T)`` (a mean
    per target token), then reduced as ``reduction`` says: ``"none"``, ``"sum"`` or
    ``"mean"``."""
    per_record = summed / weights.sum(dim=1).clamp_min(1.0)
    if reduction == "none":
        return per_record
    return per_record.sum() if reduction == "sum" else per_record.mean()


def split_batch(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(B, T)`` and targets ``(B, 2, T)`` of a stacked batch.

    The batch is trimmed after its last target token, whatever the padding id.
    """
    tokens, weights = batch[:, 0], batch[:, 1]
    targets = torch.nonzero(weights.any(dim=0))
    length = int(targets.max().item()) + 1 if len(targets) else 2
    tokens, weights = tokens[:, :length], weights[:, :length]
    target = torch.stack([tokens[:, 1:], weights[:, 1:]], dim=1).contiguous()
    return tokens[:, :-1].contiguous(), target


@torch.no_grad()
def sample_continuations(model: ByteTransformer, prompt: list[int], n: int, *, max_new: int,
                         temperature: float, top_p: float,
                         generator: torch.Generator) -> list[list[int]]:
    """``n`` continuations of one ``prompt``, each ended by EOS or after ``max_new`` tokens.

    Nucleus sampling (Holtzman et al., "The Curious Case of Neural Text Degeneration", ICLR
    2020) at ``temperature``; BOS and PAD are never drawn.
    """
    device = next(model.parameters()).device
    max_new = min(max_new, model.cfg.max_positions - len(prompt))
    tokens = torch.tensor(prompt, device=device).expand(n, len(prompt)).contiguous()
    logits, cache = model.forward_cached(tokens, None)
    out = torch.full((n, max(max_new, 0)), PAD, dtype=torch.long, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for step in range(max_new):
        nxt = draw_token(logits[:, -1], temperature, top_p, generator, banned=(BOS, PAD))
        nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
        out[:, step] = nxt
        done |= nxt == EOS
        if bool(done.all()) or step == max_new - 1:
            break
        logits, cache = model.forward_cached(nxt[:, None], cache)
    return [row.tolist() for row in out.cpu()]


def draw_token(logits: torch.Tensor, temperature: float, top_p: float,
               generator: torch.Generator, banned: tuple[int, ...] = ()) -> torch.Tensor:
    """One token per row of ``logits`` ``(n, vocab)``: nucleus sampling at ``temperature``.

    ``temperature=0`` is greedy; ``banned`` ids are never drawn. Draws come from the CPU
    ``generator`` (reproducible on any device).
    """
    if temperature > 0 and top_p < 1.0:  # by blocks of rows that stay in the CPU cache
        block = _DRAW_ROWS if logits.device.type == "cpu" else max(len(logits), 1)
        return torch.cat([_nucleus_draw(rows, temperature, banned, top_p, generator)
                          for rows in logits.split(block)])
    logits = _scaled(logits, 1.0, banned)
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = (logits / temperature).softmax(dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)


def _scaled(logits: torch.Tensor, temperature: float, banned: tuple[int, ...]) -> torch.Tensor:
    """A float32 copy of ``logits`` divided by ``temperature``, ``banned`` ids at -inf."""
    out = logits.to(torch.float32, copy=True)
    if banned:
        out[:, list(banned)] = float("-inf")
    return out if temperature == 1 else out.div_(temperature)


#: Rows of logits drawn together: a block of the vocabulary-wide passes stays in the CPU
#: cache (the passes over 256 rows of 49,152 logits at once were bound by memory).
_DRAW_ROWS = 8


#: How many likeliest tokens :func:`_sorted_nucleus_draw` sorts first, in turn; a row whose
#: candidates hold less than the nucleus mass goes on to the next size, the last is a full
#: sort (a 49,152-way sort of every row at every token dominated the HF sampling).
_NUCLEUS_CANDIDATES = (256, 2048)


def _nucleus_draw(logits: torch.Tensor, temperature: float, banned: tuple[int, ...],
                  top_p: float, generator: torch.Generator) -> torch.Tensor:
    """One token per row of ``logits`` at ``temperature`` (> 0), drawn from the row's
    top-``top_p`` nucleus, ``banned`` ids never.

    The nucleus of Holtzman et al. ("The Curious Case of Neural Text Degeneration", ICLR
    2020): the likeliest tokens in order while the mass before them is at most ``top_p``,
    renormalised (tokens tied at its edge are all in). A token drawn from the whole
    distribution is in the nucleus exactly when the tokens likelier than it hold at most
    ``top_p``; so a draw from the whole distribution, kept when it is inside and drawn again
    otherwise, is a draw from the renormalised nucleus (rejection sampling), without
    sorting the vocabulary. The tokens likelier than a token of probability ``p`` hold at
    most ``1 - p``, so a draw with ``p >= 1 - top_p`` is kept without summing them. Uniforms
    come from the CPU ``generator``.
    """
    n, vocab = logits.shape
    scaled = logits if temperature == 1 else logits.to(torch.float32).div(temperature)
    probs = scaled.softmax(dim=-1, dtype=torch.float32)
    total = torch.ones(n, dtype=probs.dtype, device=probs.device)
    if banned:  # removed after the softmax: the rest keep their ratios, summing to total
        ids = list(banned)
        total = total - probs[:, ids].sum(dim=-1)
        probs[:, ids] = 0.0
    out = torch.empty(n, dtype=torch.long, device=logits.device)
    rows = torch.arange(n, device=logits.device)
    for _ in range(_REJECTION_ROUNDS):  # a draw from the whole distribution, kept when in
        part, row_total = (probs, total) if len(rows) == n else (probs[rows], total[rows])
        cap = row_total * top_p  # the nucleus: the mass likelier than the token at most cap
        uniform = torch.rand(len(rows), generator=generator, dtype=torch.float64)
        at = inverse_cdf(part, uniform.to(device=part.device))
        p_at = part.gather(1, at).squeeze(1)
        inside = p_at >= row_total - cap  # in for sure, without summing the likelier ones
        unsure = torch.nonzero(~inside & (p_at > 0)).squeeze(1)
        if len(unsure):
            inside[unsure] = _mass_above(part, unsure, p_at) <= cap[unsure]
        inside &= p_at > 0
        out[rows[inside]] = at[inside].squeeze(1)
        rows = rows[~inside]
        if not len(rows):
            return out
    out[rows] = _sorted_nucleus_draw(_scaled(logits[rows], temperature, banned), top_p,
                                     generator)
    return out


def _mass_above(probs: torch.Tensor, rows: torch.Tensor, p_at: torch.Tensor) -> torch.Tensor:
    """For each index ``r`` in ``rows``: the sum of ``probs[r]`` over entries above
    ``p_at[r]``. On a CPU one fused threshold pass per row (a masked ``where`` over the
    block was several times slower); elsewhere one masked pass over all the rows."""
    if probs.device.type != "cpu":
        sub = probs[rows]
        return torch.where(sub > p_at[rows, None], sub, torch.zeros_like(sub)).sum(dim=-1)
    return torch.stack([torch.nn.functional.threshold(probs[r], float(p_at[r]), 0.0).sum()
                        for r in rows.tolist()])


#: Width of the blocks of :func:`inverse_cdf`.
_CDF_BLOCK = 256


def inverse_cdf(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """``(rows, 1)`` indices: in each row of ``probs`` ``(rows, vocab)`` (non-negative, not
    necessarily normalised), the first index whose running sum exceeds ``uniform`` times the
    row's total: a draw from the row's distribution for a uniform in [0, 1).

    In two levels, so no pass runs serially over the whole vocabulary (a cumulative sum over
    49,152 probabilities is one long dependency chain): the sums of blocks of ``_CDF_BLOCK``
    entries (vectorised), the running sum over the blocks, then the running sum inside the
    one block where the target falls. An index of zero probability is never returned
    unless the row's total is zero.
    """
    rows, vocab = probs.shape
    width = _CDF_BLOCK
    full = vocab // width * width
    sums = [probs[:, :full].reshape(rows, -1, width).sum(dim=-1)] if full else []
    if full < vocab:
        sums.append(probs[:, full:].sum(dim=-1, keepdim=True))
    block_cdf = torch.cat(sums, dim=1).cumsum(dim=-1)
    target = uniform.to(block_cdf.dtype)[:, None] * block_cdf[:, -1:]
    n_blocks = block_cdf.shape[1]
    block = torch.searchsorted(block_cdf, target, right=True).clamp_(max=n_blocks - 1)
    before = torch.where(block > 0, block_cdf.gather(1, (block - 1).clamp_(min=0)),
                         torch.zeros_like(target))
    span = block * width + torch.arange(width, device=probs.device)  # (rows, width)
    inner = probs.gather(1, span.clamp(max=vocab - 1))
    inner = torch.where(span < vocab, inner, torch.zeros_like(inner)).cumsum(dim=-1)
    pos = torch.searchsorted(inner, target - before, right=True)
    # rounding may put the target past the block's last entry: take its last non-zero one
    last = (inner < inner[:, -1:]).sum(dim=-1, keepdim=True)
    pos = torch.minimum(pos, last)
    return (block * width + pos).clamp_(max=vocab - 1)


#: Rejection rounds of :func:`_nucleus_draw` before the rows left are drawn by sorting (a
#: round keeps a row with probability its nucleus mass, about ``top_p``).
_REJECTION_ROUNDS = 4


def _sorted_nucleus_draw(logits: torch.Tensor, top_p: float,
                         generator: torch.Generator) -> torch.Tensor:
    """:func:`_nucleus_draw` by sorting the likeliest candidates (see the module's
    ``_NUCLEUS_CANDIDATES``), for rows whose nucleus is small."""
    n, vocab = logits.shape
    uniform = torch.rand(n, generator=generator, dtype=torch.float64).to(logits.device)
    log_total = torch.logsumexp(logits, dim=-1, keepdim=True)
    out = torch.empty(n, dtype=torch.long, device=logits.device)
    rows = torch.arange(n, device=logits.device)
    for k in (*(c for c in _NUCLEUS_CANDIDATES if c < vocab), vocab):
        part = logits[rows]
        top, order = part.topk(k, dim=-1) if k < vocab else part.sort(dim=-1,
                                                                        descending=True)
        kept = (top.double() - log_total[rows].double()).exp()
        settled = kept.sum(dim=-1) > top_p if k < vocab else torch.ones_like(
            kept[:, 0], dtype=torch.bool)
        kept = kept[settled]
        kept = kept.masked_fill(kept.cumsum(dim=-1) - kept > top_p, 0.0)
        cdf = kept.cumsum(dim=-1)
        at = torch.searchsorted(cdf, (uniform[rows[settled]] * cdf[:, -1])[:, None],
                                right=True).clamp_(max=k - 1)
        out[rows[settled]] = order[settled].gather(1, at).squeeze(1)
        rows = rows[~settled]
        if not len(rows):
            break
    return out


@torch.no_grad()
def record_nll(model: nn.Module, stacked: torch.Tensor, batch_size: int = 256, *,
               criterion: Any = None) -> torch.Tensor:
    """Mean NLL per target token of each record of ``stacked`` ``(n, 2, length)`` (nats).

    ``criterion``: the loss of ``model``'s output (default :class:`RecordNLL`, on logits).
    """
    criterion = RecordNLL() if criterion is None else criterion
    criterion.reduction = "none"
    out = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(stacked), batch_size):
            inputs, target = split_batch(stacked[start:start + batch_size])
            out.append(criterion(model(inputs), target).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


__all__ = [
    "ByteTransformer",
    "RecordNLL",
    "TRAINABLE_SETS",
    "TransformerConfig",
    "build_model",
    "draw_token",
    "record_nll",
    "reduce_records",
    "sample_continuations",
    "select_trainable",
    "split_batch",
]
