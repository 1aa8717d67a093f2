"""Private prediction: DP next-token sampling from a pretrained model prompted with private records.

The mechanism of Amin et al., "Private prediction for large-scale synthetic text generation"
(EMNLP 2024 Findings, arXiv 2407.12108), with no training at all:

* the private records are split into disjoint groups (:func:`assign_groups`); each group
  writes its synthetic records token by token;
* for one token, each member ``j`` of the group is a prompt (a public separator and header,
  the member's text as the example, then the header of the new record and the tokens drawn
  so far); the model's next-token logits ``z_j`` are re-centred on their maximum and clipped
  below at ``-clip`` (:func:`clip_logits`), so every coordinate lies in ``[-clip, 0]``;
* the clipped logits are summed over the members and divided by the *planned* group size
  ``s`` (public), ``u = sum_j clip(z_j) / s``, and the token is drawn from ``softmax(u / T)``
  by the Gumbel-max trick with noise from the fit's :class:`~dpsynth.accounting.NoiseSource`.

Sensitivity (add/remove one record, the accountant's neighbours): a record is in one group
only, so it can change one group's draws; there it adds or removes one term of the sum, which
moves every coordinate of ``u`` by an amount in ``[-clip/s, 0]``. The log-probability of any
token then moves by at most ``clip / (s T)`` and the spread of that move over tokens is at most
``clip / (s T)``: sampling from ``softmax(u / T)`` is the exponential mechanism with a utility
whose change is one-sided (McSherry and Talwar, FOCS 2007), ``epsilon_0``-DP with
``epsilon_0 = clip / (s T)`` (and ``epsilon_0``-bounded range, Durfee and Rogers, NeurIPS 2019).
A group draws at most ``records_per_group * max_length`` tokens; those draws compose
adaptively, and other groups' draws do not depend on the record (parallel composition).
dpsynth charges them as that many pure ``epsilon_0``-DP events, composed exactly by the PLD
accountant (the randomized-response PLD dominates any pure-DP mechanism, Kairouz, Oh and
Viswanath, ICML 2015). The paper composes the same draws as bounded-range mechanisms via
zero-concentrated DP (``epsilon_0**2 / 8``-zCDP each, Cesar and Rogers, 2021), which allows
about twice ``epsilon_0`` at the same total; that tighter analysis has no dominating pair in
dpsynth's PLD path and is not used.

Group sizes: a record joins a group drawn uniformly at random (independently of the other
records), so adding or removing it leaves every other assignment unchanged; group sizes
then vary around ``s`` (binomially), while the division by the public ``s`` keeps the
guarantee for any size. A group is empty with probability about ``exp(-s)`` and then draws
uniformly among the allowed tokens (negligible for ``s`` of ten or more). The number of
groups comes from public figures only: the row count (public, as for DP-SGD's sampling rate)
or, with control columns, the DP-released count of each control combination.

Not implemented: the paper's sparse-vector test that emits tokens on which the public (no
private context) prediction agrees with the private one at no token cost. An optional
restriction of each draw to the ``public_top_k`` most likely tokens of the public prompt
(the header and the tokens drawn so far, no private text) costs nothing: that candidate set
is a function of public text and earlier DP outputs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from dpsynth.accounting import Event, NoiseSource, PureDPEvent, pld_epsilon
from dpsynth.accounting.analysis import PLD_INTERVAL
from dpsynth.errors import PrivacyError
from dpsynth.synthesizers.text import codec
from dpsynth.synthesizers.text.hf import cache_keyword, cache_of

#: The largest per-token epsilon calibration considers (beyond it sampling is deterministic).
MAX_TOKEN_EPSILON = 20.0
MIN_TOKEN_EPSILON = 1e-4


def token_epsilon(epsilon: float, delta: float, draws: int,
                  prior: Sequence[Event] = (), *, rel_tol: float = 1e-3) -> float:
    """The largest per-token epsilon whose ``draws``-fold composition after ``prior`` is within
    ``(epsilon, delta)`` by the PLD accountant (searched on a coarse grid, checked on the
    reporting grid, never above the target)."""
    def eps_of(eps0: float, grid: float) -> float:
        return pld_epsilon((*prior, PureDPEvent(eps0, draws, MECHANISM)), delta, interval=grid)

    if eps_of(MIN_TOKEN_EPSILON, PLD_INTERVAL) > epsilon:
        raise PrivacyError(f"epsilon={epsilon:g} is too small for {draws} token draws per "
                           "group after the other spends; raise epsilon or lower max_length "
                           "or records_per_group.")
    lo, hi = MIN_TOKEN_EPSILON, MAX_TOKEN_EPSILON
    if eps_of(hi, PLD_INTERVAL) <= epsilon:
        return hi
    coarse = PLD_INTERVAL * 10
    while hi / lo > 1 + rel_tol:
        mid = float(np.sqrt(lo * hi))
        if eps_of(mid, coarse) <= epsilon:
            lo = mid
        else:
            hi = mid
    while eps_of(lo, PLD_INTERVAL) > epsilon:
        lo /= 1 + rel_tol
    return lo


#: How the token draws are described in the ledger.
MECHANISM = "exponential (clipped-logit softmax)"


def clip_logits(logits: torch.Tensor, clip: float) -> torch.Tensor:
    """Logits re-centred on each row's maximum and clipped below at ``-clip``: in [-clip, 0].

    ``-inf`` entries (banned tokens) become ``-clip`` like any other unlikely token; banned
    tokens are excluded from the draws separately.
    """
    top = logits.max(dim=-1, keepdim=True).values
    return (logits - top).clamp(min=-float(clip))


def assign_groups(cells: np.ndarray, groups_per_cell: np.ndarray,
                  noise: NoiseSource) -> tuple[np.ndarray, np.ndarray]:
    """Each record's group (``-1``: its cell has no group) and each group's cell.

    A record of cell ``c`` joins one of that cell's ``groups_per_cell[c]`` groups uniformly at
    random, independently of the others, so each record is in exactly one group (or none).
    """
    offsets = np.concatenate([[0], np.cumsum(groups_per_cell)]).astype(np.int64)
    group_cell = np.repeat(np.arange(len(groups_per_cell)), groups_per_cell)
    u = noise.uniform(len(cells))
    counts = groups_per_cell[cells]
    pick = np.minimum((u * counts).astype(np.int64), np.maximum(counts - 1, 0))
    group = np.where(counts > 0, offsets[cells] + pick, -1)
    return group.astype(np.int64), group_cell.astype(np.int64)


class Session(Protocol):
    """Next-token logits of a batch of prompts, advanced one shared token per row."""

    def logits(self) -> torch.Tensor: ...

    def keep(self, rows: torch.Tensor) -> None: ...

    def advance(self, tokens: torch.Tensor) -> None: ...


class Predictor(Protocol):
    """A pretrained model as private prediction uses it."""

    eos: int
    banned: tuple[int, ...]

    def prompt(self, head: str, example: str | None, max_length: int) -> list[int]: ...

    def open(self, prompts: list[list[int]]) -> Session: ...

    def decode(self, ids: list[int]) -> str: ...

    def max_tokens(self) -> int: ...

    def vocab_size(self) -> int: ...


class ByteSession:
    """The byte model has no padding mask: right-padded prompts, recomputed each token
    (causal attention leaves each row's last real position untouched by the padding)."""

    def __init__(self, model: Any, prompts: list[list[int]], device: torch.device):
        self.model, self.device = model, device
        self.rows = [list(p) for p in prompts]

    @torch.no_grad()
    def logits(self) -> torch.Tensor:
        length = max(len(r) for r in self.rows)
        ids = torch.full((len(self.rows), length), codec.PAD, dtype=torch.long)
        for i, r in enumerate(self.rows):
            ids[i, :len(r)] = torch.tensor(r)
        out = self.model(ids.to(self.device))
        last = torch.tensor([len(r) - 1 for r in self.rows], device=self.device)
        return out[torch.arange(len(self.rows), device=self.device), last].float()

    def keep(self, rows: torch.Tensor) -> None:
        self.rows = [self.rows[int(i)] for i in rows.tolist()]

    def advance(self, tokens: torch.Tensor) -> None:
        for r, t in zip(self.rows, tokens.tolist(), strict=True):
            r.append(int(t))


class BytePredictor:
    """The shipped byte model (records coded as in :mod:`.codec`)."""

    eos = codec.EOS
    banned = (codec.BOS, codec.PAD)

    def __init__(self, model: Any, device: torch.device):
        self.model, self.device = model.eval(), device

    def prompt(self, head: str, example: str | None, max_length: int) -> list[int]:
        shown = [] if example is None else [codec.BOS, *head.encode("utf-8"),
                                            *codec.truncate_bytes(example, max_length),
                                            codec.EOS]
        return [*shown, *codec.encode_prompt(head)]

    def open(self, prompts: list[list[int]]) -> ByteSession:
        return ByteSession(self.model, prompts, self.device)

    def decode(self, ids: list[int]) -> str:
        return codec.decode(ids)

    def max_tokens(self) -> int:
        return int(self.model.cfg.max_positions)

    def vocab_size(self) -> int:
        return int(self.model.head.out_features)


class HFSession:
    """Left-padded prompts of a Hugging Face causal LM, one forward, then its key/value cache."""

    def __init__(self, lm: Any, prompts: list[list[int]], pad: int, device: torch.device):
        self.lm = lm
        length = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), length), pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), length), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, length - len(p):] = torch.tensor(p)
            mask[i, length - len(p):] = 1
        self.mask = mask.to(device)
        self.position = (self.mask.cumsum(-1) - 1).clamp(min=0)
        names = inspect.signature(lm.forward).parameters
        self.cache_kw = cache_keyword(lm)  # transformers 5's cache= or past_key_values=
        extra = {"logits_to_keep": 1} if "logits_to_keep" in names else {}  # last logits only
        with torch.no_grad():
            out = lm(input_ids=ids.to(device), attention_mask=self.mask,
                     position_ids=self.position, use_cache=True, **extra)
        self.past, self._logits = cache_of(out), out.logits[:, -1].float()
        self.position = self.position[:, -1:]

    def logits(self) -> torch.Tensor:
        return self._logits

    def keep(self, rows: torch.Tensor) -> None:
        rows = rows.to(self.mask.device)
        self.past.batch_select_indices(rows)
        self.mask, self.position = self.mask[rows], self.position[rows]
        self._logits = self._logits[rows]

    @torch.no_grad()
    def advance(self, tokens: torch.Tensor) -> None:
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        self.position = self.position + 1
        out = self.lm(input_ids=tokens[:, None].to(self.mask.device), attention_mask=self.mask,
                      position_ids=self.position, use_cache=True, **{self.cache_kw: self.past})
        self.past, self._logits = cache_of(out), out.logits[:, -1].float()


class HFPredictor:
    """A local Hugging Face causal LM; records as plain text (see :mod:`.records`)."""

    def __init__(self, backend: Any, device: torch.device):
        self.backend = backend
        self.lm = backend.wrapper.lm.eval()
        self.device = device
        self.eos = int(backend.eos)
        self.banned = tuple(int(b) for b in backend.banned)

    def prompt(self, head: str, example: str | None, max_length: int) -> list[int]:
        b = self.backend
        new = [b.bos, *b._ids(b._head(head))]
        if example is None:
            return new
        shown = [b.bos, *b._ids(b._head(head)), *b._ids(example)[:max_length], b.eos]
        return shown + (new[1:] if b.bos == b.eos else new)

    def open(self, prompts: list[list[int]]) -> HFSession:
        return HFSession(self.lm, prompts, int(self.backend.pad), self.device)

    def decode(self, ids: list[int]) -> str:
        return str(self.backend.tokenizer.decode(ids, skip_special_tokens=True))

    def max_tokens(self) -> int:
        return int(self.backend.max_tokens())

    def vocab_size(self) -> int:
        return int(self.lm.get_output_embeddings().weight.shape[0])


@dataclass(frozen=True)
class Job:
    """One synthetic record to write: its header and the texts of its group's members."""

    head: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class Mechanism:
    """The public settings of the token draws."""

    group_size: int
    clip: float
    temperature: float
    draws: int
    max_length: int
    public_top_k: int | None = None


def _draw(scores: torch.Tensor, noise: NoiseSource) -> torch.Tensor:
    """Gumbel-max: one index per row of ``scores``, drawn from ``softmax(scores)``."""
    g = torch.from_numpy(noise.gumbel(scores.numel()).reshape(scores.shape)).to(scores)
    return (scores + g).argmax(dim=-1)


def generate(predictor: Predictor, jobs: Sequence[Job], mech: Mechanism, noise: NoiseSource,
             *, batch_rows: int = 64, tick: Callable[[int, int], None] | None = None
             ) -> list[str]:
    """The text of each job's record, drawn with the mechanism of the module docstring."""
    out: list[str] = [""] * len(jobs)
    done = 0
    start = 0
    while start < len(jobs):
        stop, rows = start, 0
        while stop < len(jobs) and (stop == start or rows + _rows(jobs[stop], mech)
                                    <= batch_rows):
            rows += _rows(jobs[stop], mech)
            stop += 1
        for k, text in enumerate(_generate_batch(predictor, jobs[start:stop], mech, noise)):
            out[start + k] = text
        done += stop - start
        start = stop
        if tick is not None:
            tick(done, len(jobs))
    return out


def _rows(job: Job, mech: Mechanism) -> int:
    return len(job.members) + (1 if mech.public_top_k else 0)


@torch.no_grad()
def _generate_batch(predictor: Predictor, jobs: Sequence[Job], mech: Mechanism,
                    noise: NoiseSource) -> list[str]:
    prompts: list[list[int]] = []
    group: list[int] = []  # the live group of each prompt row
    public: list[bool] = []  # whether the row is the group's public (no private text) prompt
    for g, job in enumerate(jobs):
        for text in job.members:
            prompts.append(predictor.prompt(job.head, text, mech.max_length))
            group.append(g)
            public.append(False)
        if mech.public_top_k:
            prompts.append(predictor.prompt(job.head, None, mech.max_length))
            group.append(g)
            public.append(True)
    session = predictor.open(prompts) if prompts else None
    row_group = torch.tensor(group, dtype=torch.long)
    row_public = torch.tensor(public, dtype=torch.bool)
    live = torch.arange(len(jobs))  # job index of each live group
    drawn: list[list[int]] = [[] for _ in jobs]
    for step in range(mech.draws):
        logits = (session.logits() if session is not None
                  else torch.zeros((0, predictor.vocab_size())))
        scores = _scores(logits, row_group, row_public, len(live), predictor, mech)
        tokens = _draw(scores / mech.temperature, noise).cpu()
        for g, t in zip(live.tolist(), tokens.tolist(), strict=True):
            drawn[g].append(int(t))
        going = tokens != predictor.eos
        if step == mech.draws - 1 or not bool(going.any()):
            break
        if session is not None:
            if not bool(going.all()):  # drop finished groups' rows (a copy of the cache)
                keep = going[row_group]
                session.keep(torch.nonzero(keep).squeeze(1))
                remap = torch.cumsum(going.long(), 0) - 1  # old live position -> new
                row_group, row_public = remap[row_group[keep]], row_public[keep]
                tokens = tokens[going]
            session.advance(tokens[row_group])
        live = live[going]
    texts = []
    for ids in drawn:
        end = ids.index(predictor.eos) if predictor.eos in ids else len(ids)
        texts.append(predictor.decode(ids[:end]))
    return texts


def _scores(logits: torch.Tensor, row_group: torch.Tensor, row_public: torch.Tensor,
            groups: int, predictor: Predictor, mech: Mechanism) -> torch.Tensor:
    """``u = sum clip(z_j) / s`` per live group, banned tokens (and, with ``public_top_k``,
    tokens outside the public prompt's top k) at ``-inf``."""
    if predictor.banned:
        logits = logits.clone()
        logits[:, list(predictor.banned)] = -torch.inf
    vocab = logits.shape[1]
    device = logits.device
    row_group, row_public = row_group.to(device), row_public.to(device)
    private = ~row_public
    u = torch.zeros((groups, vocab), dtype=torch.float32, device=device)
    if bool(private.any()):
        u.index_add_(0, row_group[private], clip_logits(logits[private], mech.clip))
    u = u / float(mech.group_size)
    allowed = torch.ones_like(u, dtype=torch.bool)
    if predictor.banned:
        allowed[:, list(predictor.banned)] = False
    if mech.public_top_k:
        k = min(int(mech.public_top_k), vocab - len(predictor.banned))
        top = logits[row_public].topk(k, dim=-1).indices
        in_top = torch.zeros((groups, vocab), dtype=torch.bool, device=device)
        in_top[row_group[row_public]] = torch.zeros(
            (len(top), vocab), dtype=torch.bool, device=device).scatter(1, top, True)
        allowed &= in_top
    return u.masked_fill(~allowed, -torch.inf)


__all__ = ["MECHANISM", "BytePredictor", "HFPredictor", "Job", "Mechanism", "Predictor",
           "assign_groups", "clip_logits", "generate", "token_epsilon"]
