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
A group draws at most ``records_per_group * max_length`` tokens (with the sparse-vector
test below, ``records_per_group * private_tokens`` private ones); those draws compose
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
guarantee for any size. The number of groups comes from public figures only: the row count
(public, as for DP-SGD's sampling rate) or, with control columns, the DP-released count of
each control combination.

The public prompt (the header and the tokens drawn so far, no private text) gives clipped
logits ``p`` (:func:`clip_logits`, in ``[-clip, 0]``); ``p`` is a function of public text and
earlier DP outputs, so anything computed from ``p`` alone costs nothing. It is used three ways:

* ``public_top_k``: each draw is restricted to the ``k`` most likely tokens of ``p``;
* ``public_weight`` ``w >= 0``: the utility of a private draw is ``u + w p``. The public term
  does not depend on the private records, so the change of the utility under add/remove of a
  record is the change of ``u``, one-sided in ``[-clip/s, 0]`` as above, and the sensitivity,
  ``epsilon_0`` and the accounting are unchanged. A group with no member (probability about
  ``exp(-s)``) then draws from ``softmax(w p / T)``, the public prior, instead of uniformly
  among the allowed tokens (word salad); ``w = 0`` is the paper's mechanism;
* the sparse-vector test for public tokens (``private_tokens`` set; the paper's use of the
  sparse vector technique): at each position a noisy test asks
  whether the group's private distribution is far from the public one; when it is not, the
  token is drawn from the public distribution, ``softmax(p / T)`` over the allowed tokens,
  which reads no private data and costs no token draw; when it is ("above"), the token is
  drawn by the exponential mechanism from ``u + w p`` as above. After ``private_tokens``
  ``c`` private draws the record goes on with public tokens only, and no more tests are run.

The test is AboveThreshold (Dwork and Roth, "The Algorithmic Foundations of Differential
Privacy", 2014, Algorithm 1; the correct variant of Lyu, Su and Li, "Understanding the
Sparse Vector Technique for Differential Privacy", VLDB 2017, Algorithm 1 with ``c = 1`` and
``epsilon_1 = epsilon_2 = epsilon_svt / 2``): a threshold ``tau + rho``, ``rho ~ Lap(2 Delta /
epsilon_svt)``, drawn afresh at the start and after each "above"; each query ``q_t`` gets
fresh ``nu_t ~ Lap(4 Delta / epsilon_svt)`` and the answer is "above" when
``q_t + nu_t >= tau + rho``. One run up to its first "above" (or to the record's end) is
``epsilon_svt``-DP for queries of sensitivity ``Delta`` chosen adaptively. A record runs at
most ``c`` of them (a new one starts only after an "above", and there are at most ``c``) and
at most ``c`` exponential-mechanism draws, each after its run ended; so a group's record is
charged ``c`` pure ``epsilon_svt``-DP events and ``c`` pure ``epsilon_0``-DP events, planned
before any data is read and charged whatever the number of "above" answers (fewer "above"
answers only leave budget unused). With ``records_per_group`` ``r > 1`` the ``r`` records of
a group run their tests concurrently on the same members: concurrent composition of
interactive mechanisms is bounded as sequential composition for pure DP and for every f-DP
(hence PLD) guarantee (Vadhan and Wang, TCC 2021; Vadhan and Zhang, STOC 2023), so ``r c``
events of each kind are charged.

The query (:func:`svt_distance`): with ``A`` the allowed tokens (public: banned tokens and,
with ``public_top_k``, tokens outside the public top ``k`` are excluded),
``q = max_{i in A} |(u_i - max_A u) - (p_i - max_A p)|``, the largest gap between the private
aggregate and the public logits, each re-centred on its maximum over ``A``.
Claim: ``|q(D) - q(D')| <= Delta = clip / s`` for neighbours ``D, D'`` (add/remove one record).
Proof: the record is in one group; for the others ``u`` and ``p`` are equal given the same
earlier outputs. In its group, adding the record adds ``d = clip(z)/s`` to ``u`` with every
``d_i`` in ``[-Delta, 0]`` (removing it subtracts such a ``d``; the argument is symmetric).
The maximum is monotone and moves by at most the largest coordinate move, so
``m' - m = max_A(u + d) - max_A u`` lies in ``[-Delta, 0]``. The re-centred coordinate moves
by ``d_i - (m' - m)``, the difference of two numbers in ``[-Delta, 0]``, hence by at most
``Delta`` in absolute value, and ``p`` does not move. ``x -> max_i |x_i - p_i|`` is
1-Lipschitz in the max-norm, so ``q`` moves by at most ``Delta``. (An L1 or L2 distance over
the vocabulary would have sensitivity up to ``|A| Delta``; the max-norm keeps it at
``Delta``, and the private draw's own sensitivity is the same ``Delta``.) The bound is checked
by brute force in the tests.
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

#: How the token draws and the sparse-vector runs are described in the ledger.
MECHANISM = "exponential (clipped-logit softmax)"
SVT_MECHANISM = "sparse vector (AboveThreshold, public tokens)"

#: The largest per-token epsilon calibration considers (beyond it sampling is deterministic).
MAX_TOKEN_EPSILON = 20.0
MIN_TOKEN_EPSILON = 1e-4


def token_events(eps0: float, draws: int, svt_ratio: float = 0.0) -> tuple[PureDPEvent, ...]:
    """The events of one group: ``draws`` exponential-mechanism draws at ``eps0`` and, with
    ``svt_ratio > 0``, as many sparse-vector runs at ``svt_ratio * eps0``."""
    tokens = PureDPEvent(eps0, draws, MECHANISM)
    return (tokens,) if svt_ratio <= 0 else (tokens, PureDPEvent(eps0 * svt_ratio, draws,
                                                                 SVT_MECHANISM))


def token_epsilon(epsilon: float, delta: float, draws: int,
                  prior: Sequence[Event] = (), *, svt_ratio: float = 0.0,
                  rel_tol: float = 1e-3) -> float:
    """The largest per-token epsilon whose ``draws``-fold composition after ``prior`` is within
    ``(epsilon, delta)`` by the PLD accountant (searched on a coarse grid, checked on the
    reporting grid, never above the target); with ``svt_ratio``, each draw comes with a
    sparse-vector run at ``svt_ratio`` times that epsilon (:func:`token_events`)."""
    def eps_of(eps0: float, grid: float) -> float:
        return pld_epsilon((*prior, *token_events(eps0, draws, svt_ratio)), delta,
                           interval=grid)

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
        new = b.prompt_ids(head)
        if example is None:
            return new
        shown = [*new, *b.text_ids(example, max_length), b.eos]
        return shown + (new[1:] if b.bos == b.eos else new)

    def open(self, prompts: list[list[int]]) -> HFSession:
        return HFSession(self.lm, prompts, int(self.backend.pad), self.device)

    def decode(self, ids: list[int]) -> str:
        return str(self.backend.decode_text(ids))

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
    """The public settings of the token draws (see the module docstring).

    ``private_tokens`` ``None``: every token is a private draw (no sparse-vector test);
    else at most that many private draws per record, each after an "above" answer of the
    test at ``svt_threshold`` with ``svt_epsilon`` per run (``inf``: no noise, no DP).
    """

    group_size: int
    clip: float
    temperature: float
    draws: int
    max_length: int
    public_top_k: int | None = None
    public_weight: float = 0.0
    private_tokens: int | None = None
    svt_threshold: float = 0.0
    svt_epsilon: float = float("inf")

    @property
    def sensitivity(self) -> float:
        """``Delta = clip / s``: the most one record moves any coordinate of ``u`` (and the
        sparse-vector query)."""
        return float(self.clip) / float(self.group_size)

    @property
    def uses_public(self) -> bool:
        """Whether each group needs its public prompt (no private text)."""
        return bool(self.public_top_k) or self.public_weight > 0 or self.svt

    @property
    def svt(self) -> bool:
        return self.private_tokens is not None


@dataclass(frozen=True)
class Written:
    """The records of :func:`generate` and, per record, its private and public draws."""

    texts: list[str]
    private_draws: list[int]
    public_draws: list[int]


def svt_distance(u: torch.Tensor, public: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """The sparse-vector query per row: ``max_{i in A} |(u_i - max_A u) - (p_i - max_A p)|``.

    ``u``: the private aggregate ``sum_j clip(z_j) / s``; ``public``: the public prompt's
    clipped logits; ``allowed``: the public set ``A``. Sensitivity ``clip / s`` under add/remove
    of one record (proof in the module docstring). A row with no allowed token gives 0.
    """
    def centred(x: torch.Tensor) -> torch.Tensor:
        top = x.masked_fill(~allowed, -torch.inf).max(dim=-1, keepdim=True).values
        return (x - top.clamp(min=-1e30)).masked_fill(~allowed, 0.0)

    return (centred(u) - centred(public)).abs().amax(dim=-1)


def _draw(scores: torch.Tensor, noise: NoiseSource) -> torch.Tensor:
    """Gumbel-max: one index per row of ``scores``, drawn from ``softmax(scores)``."""
    g = torch.from_numpy(noise.gumbel(scores.numel()).reshape(scores.shape)).to(scores)
    return (scores + g).argmax(dim=-1)


def generate(predictor: Predictor, jobs: Sequence[Job], mech: Mechanism, noise: NoiseSource,
             *, batch_rows: int = 64, tick: Callable[[int, int], None] | None = None
             ) -> Written:
    """The text of each job's record, drawn with the mechanism of the module docstring."""
    out = Written([""] * len(jobs), [0] * len(jobs), [0] * len(jobs))
    done = 0
    start = 0
    while start < len(jobs):
        stop, rows = start, 0
        while stop < len(jobs) and (stop == start or rows + _rows(jobs[stop], mech)
                                    <= batch_rows):
            rows += _rows(jobs[stop], mech)
            stop += 1
        part = _generate_batch(predictor, jobs[start:stop], mech, noise)
        out.texts[start:stop] = part.texts
        out.private_draws[start:stop] = part.private_draws
        out.public_draws[start:stop] = part.public_draws
        done += stop - start
        start = stop
        if tick is not None:
            tick(done, len(jobs))
    return out


def _rows(job: Job, mech: Mechanism) -> int:
    return len(job.members) + (1 if mech.uses_public else 0)


class _Test:
    """The AboveThreshold state of each record of a batch (Lyu, Su and Li 2017, Alg. 1)."""

    def __init__(self, mech: Mechanism, jobs: int, noise: NoiseSource):
        self.mech, self.noise = mech, noise
        eps = float(mech.svt_epsilon)
        delta = mech.sensitivity
        self.rho_scale = 0.0 if np.isinf(eps) else 2.0 * delta / eps
        self.nu_scale = 0.0 if np.isinf(eps) else 4.0 * delta / eps
        self.rho = self._laplace(jobs, self.rho_scale)
        self.private = torch.zeros(jobs, dtype=torch.long)

    def _laplace(self, n: int, scale: float) -> torch.Tensor:
        if n == 0 or scale == 0.0:
            return torch.zeros(n, dtype=torch.float64)
        return torch.from_numpy(np.asarray(self.noise.laplace(n, scale=scale), dtype=float))

    def ask(self, live: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Which live records draw privately now: "above" among those under the cap; each
        "above" re-draws that record's threshold noise."""
        cap = int(self.mech.private_tokens or 0)
        under = self.private[live] < cap
        asked = live[under]
        above = torch.zeros(len(live), dtype=torch.bool)
        if len(asked):
            noisy = q[under].double().cpu() + self._laplace(len(asked), self.nu_scale)
            hit = noisy >= float(self.mech.svt_threshold) + self.rho[asked]
            above[torch.nonzero(under).squeeze(1)[hit]] = True
            fired = asked[hit]
            self.private[fired] += 1
            self.rho[fired] = self._laplace(len(fired), self.rho_scale)
        return above


@torch.no_grad()
def _generate_batch(predictor: Predictor, jobs: Sequence[Job], mech: Mechanism,
                    noise: NoiseSource) -> Written:
    prompts: list[list[int]] = []
    group: list[int] = []  # the live group of each prompt row
    public: list[bool] = []  # whether the row is the group's public (no private text) prompt
    for g, job in enumerate(jobs):
        for text in job.members:
            prompts.append(predictor.prompt(job.head, text, mech.max_length))
            group.append(g)
            public.append(False)
        if mech.uses_public:
            prompts.append(predictor.prompt(job.head, None, mech.max_length))
            group.append(g)
            public.append(True)
    session = predictor.open(prompts) if prompts else None
    row_group = torch.tensor(group, dtype=torch.long)
    row_public = torch.tensor(public, dtype=torch.bool)
    live = torch.arange(len(jobs))  # job index of each live group
    drawn: list[list[int]] = [[] for _ in jobs]
    test = _Test(mech, len(jobs), noise) if mech.svt else None
    private_draws, public_draws = [0] * len(jobs), [0] * len(jobs)
    for step in range(mech.draws):
        logits = (session.logits() if session is not None
                  else torch.zeros((0, predictor.vocab_size())))
        u, pub, allowed = _aggregate(logits, row_group, row_public, len(live), predictor, mech)
        scores = (u + mech.public_weight * pub if mech.public_weight > 0 else u)
        scores = scores.masked_fill(~allowed, -torch.inf)
        if test is not None:
            above = test.ask(live, svt_distance(u, pub, allowed))
            scores = torch.where(above.to(scores.device)[:, None], scores,
                                 pub.masked_fill(~allowed, -torch.inf))
        else:
            above = torch.ones(len(live), dtype=torch.bool)
        tokens = _draw(scores / mech.temperature, noise).cpu()
        for g, t, a in zip(live.tolist(), tokens.tolist(), above.tolist(), strict=True):
            drawn[g].append(int(t))
            if a:
                private_draws[g] += 1
            else:
                public_draws[g] += 1
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
    return Written(texts, private_draws, public_draws)


def _aggregate(logits: torch.Tensor, row_group: torch.Tensor, row_public: torch.Tensor,
               groups: int, predictor: Predictor, mech: Mechanism
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per live group: ``u = sum clip(z_j) / s`` over its private prompts, the public prompt's
    clipped logits ``p`` (zeros without a public prompt) and the allowed tokens (not banned
    and, with ``public_top_k``, among the public prompt's top k)."""
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
    pub = torch.zeros((groups, vocab), dtype=torch.float32, device=device)
    if bool(row_public.any()):
        pub[row_group[row_public]] = clip_logits(logits[row_public], mech.clip)
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
    return u, pub, allowed


__all__ = ["MECHANISM", "SVT_MECHANISM", "BytePredictor", "HFPredictor", "Job", "Mechanism",
           "Predictor", "Written", "assign_groups", "clip_logits", "generate", "svt_distance",
           "token_epsilon", "token_events"]
