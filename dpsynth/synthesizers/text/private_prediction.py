"""Private prediction (``dptext-pp``): DP synthetic text from a pretrained model, no training.

Amin et al., "Private prediction for large-scale synthetic text generation" (EMNLP 2024
Findings, arXiv 2407.12108): the private records are only ever prompts. They are split into
disjoint groups; each group writes ``records_per_group`` synthetic records, every token drawn
by the exponential mechanism from the group's clipped, averaged next-token logits (the
mechanism, its sensitivity and its accounting are in :mod:`.prediction`). Control codes (the
categorical columns) are released first by a Gaussian noisy histogram, as for ``dptext``
(:mod:`.controls`); groups are formed within each control combination, so every record of a
group shares the header the new record is written under.

Optionally (``private_tokens``), the sparse-vector test for public tokens of the paper lets
tokens on which the group's prediction agrees with the public prompt's (no private text) come
from the public prompt at no token cost; the test and the private draws are charged as planned
pure-DP events (purposes ``TOKENS_PURPOSE`` and ``SVT_PURPOSE``) whatever the test answers.
``public_weight`` mixes the public prompt's logits into each draw at no cost.

The records are generated *at fit time*: the generated table is the release and what is saved
(no model weights, no pickle); :meth:`sample` returns rows of it, without replacement, and
refuses more rows than were generated (``groups * records_per_group``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dpsynth._util.device import resolve_device
from dpsynth._util.progress import progress_bar
from dpsynth.accounting import (
    Budget,
    Event,
    GaussianEvent,
    NoiseSource,
    PureDPEvent,
    calibrate_gaussian,
)
from dpsynth.accounting.session import SpendRecorder
from dpsynth.errors import (
    NotFittedError,
    PrivacyError,
    param_error,
    raise_if_problems,
)
from dpsynth.schema import Schema
from dpsynth.synthesizers._dpsgd_base import number
from dpsynth.synthesizers.base import BaseSynthesizer, register
from dpsynth.synthesizers.plan import FitPlan, PlannedSpend
from dpsynth.synthesizers.text import codec
from dpsynth.synthesizers.text._columns import OneTextColumn
from dpsynth.synthesizers.text.controls import cell_index, control_domain

logger = logging.getLogger(__name__)

TOKENS_PURPOSE = "tokens:dptext-pp"
SVT_PURPOSE = "public-token test:dptext-pp"
CONTROL_PURPOSE = "controls:dptext-pp"
DEFAULT_MAX_LENGTH = 64


@dataclass(frozen=True)
class PredictionPlan:
    """The control histogram (if released), then the token draws of one group."""

    controls: GaussianEvent | None
    token_epsilon: float
    draws: int
    group_size: int
    temperature: float
    svt_epsilon: float | None = None  # the sparse-vector runs (one per private draw), if any

    @property
    def tokens(self) -> PureDPEvent:
        from dpsynth.synthesizers.text.prediction import MECHANISM

        return PureDPEvent(self.token_epsilon, self.draws, MECHANISM)

    @property
    def svt(self) -> PureDPEvent | None:
        from dpsynth.synthesizers.text.prediction import SVT_MECHANISM

        if self.svt_epsilon is None:
            return None
        return PureDPEvent(self.svt_epsilon, self.draws, SVT_MECHANISM)

    @property
    def spends(self) -> tuple[PlannedSpend, ...]:
        first = () if self.controls is None else (PlannedSpend(CONTROL_PURPOSE, self.controls),)
        test = () if self.svt is None else (PlannedSpend(SVT_PURPOSE, self.svt),)
        return (*first, PlannedSpend(TOKENS_PURPOSE, self.tokens), *test)


@register
class PrivatePredictionSynthesizer(OneTextColumn, BaseSynthesizer):
    """DP synthetic text by private prediction (see the module docstring).

    Parameters
    ----------
    epsilon, delta, random_state, secure_mode, discovery_fraction:
        See :class:`~dpsynth.synthesizers.base.BaseSynthesizer`. ``epsilon=inf`` samples
        without clipping noise accounting (a non-private reference: both ``group_size`` and
        ``temperature`` are then used as given).
    group_size, temperature:
        The planned group size ``s`` and the sampling temperature ``T`` are tied by the
        per-token epsilon: ``T = clip / (s * epsilon_0)``. Give one, the other follows:
        ``group_size=None`` picks the smallest ``s`` whose temperature is at most
        ``temperature``; ``temperature=None`` uses ``group_size`` as given. Larger groups
        allow a lower temperature (more coherent text) but write fewer records.
    clip:
        Logits are re-centred on their maximum and clipped below at ``-clip``. It must be
        large enough to keep unlikely tokens unlikely (about ``log(vocabulary size)`` and
        more, or use ``public_top_k``), small enough to keep ``s`` modest.
    records_per_group:
        Records each group writes; more records per group cost more tokens per record (and
        so a smaller per-token epsilon).
    max_length:
        Tokens (bytes for the byte model) drawn at most per record, and of a member's text
        shown in its prompt; default the text column's ``max_length``, else 64. Public.
    public_top_k:
        Restrict each draw to the ``k`` most likely tokens of the public prompt (header and
        tokens drawn so far, no private text): free, as that set is public. ``None``: the
        whole vocabulary, as in the paper.
    public_weight:
        ``w >= 0``: a private draw's utility is the group's aggregate plus ``w`` times the
        public prompt's clipped logits. Free (the public term does not depend on the private
        records, so the sensitivity is unchanged); a group with no member then writes the
        public prior (``w = 1``: at the sampling temperature) instead of uniform tokens.
        ``0``: the paper's mechanism.
    private_tokens:
        ``None`` (default): every token is a private draw. An integer ``c``: the sparse-vector
        test for public tokens (see :mod:`.prediction`): a token is drawn privately only when
        a noisy test finds the group's aggregate farther than ``svt_threshold`` from the
        public prompt's logits, else from the public prompt at no token cost; at most ``c``
        private draws per record (then public tokens only). Each record is charged ``c``
        token draws and ``c`` tests, whatever the answers; at most ``max_length``.
    svt_threshold:
        The test's threshold: the largest gap (nats) between the group's re-centred clipped
        aggregate and the public prompt's, over the allowed tokens (``[0, clip]`` for a full
        group). Public; chosen before the data is read.
    svt_fraction:
        Share of each private token's epsilon (test plus draw) that goes to the test, in
        (0, 1): ``epsilon_svt = svt_fraction / (1 - svt_fraction) * epsilon_0``.
    pretrained, model_dir:
        The model: a shipped byte checkpoint (``"byte-small"``) or ``None`` for a scratch byte
        model (tests only), or a local Hugging Face causal-LM directory (never downloaded).
    control_fraction:
        Share of epsilon and delta for releasing the control-code histogram.
    batch_rows:
        Prompts per forward pass (groups are batched whole).
    d_model, n_layers, n_heads:
        The scratch byte model (``pretrained=None``).
    device, progress:
        ``"auto"`` uses CUDA when present; progress bar with ETA on stderr.
    """

    default_max_length = DEFAULT_MAX_LENGTH
    verb = "writes"

    name: ClassVar[str] = "dptext-pp"
    defaults_tuned_on: ClassVar[str] = "no tuning run (settings fixed before the one benchmark)"
    supported_kinds: ClassVar[tuple[str, ...]] = ("text", "categorical", "ordinal")

    def __init__(self, *, epsilon: float = 8.0, delta: float | None = None,
                 random_state: int | None = None, secure_mode: bool = False,
                 discovery_fraction: float = 0.1, group_size: int | None = None,
                 temperature: float | None = 1.0, clip: float = 10.0,
                 records_per_group: int = 1, max_length: int | None = None,
                 public_top_k: int | None = None, public_weight: float = 0.0,
                 private_tokens: int | None = None, svt_threshold: float = 2.0,
                 svt_fraction: float = 0.5, pretrained: str | None = "byte-small",
                 model_dir: str | None = None, control_fraction: float = 0.05,
                 batch_rows: int = 64, d_model: int = 128, n_layers: int = 4,
                 n_heads: int = 4, device: str = "auto", progress: bool = False):
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state,
                         secure_mode=secure_mode, discovery_fraction=discovery_fraction)
        self.group_size = group_size
        self.temperature = temperature
        self.clip = clip
        self.records_per_group = records_per_group
        self.max_length = max_length
        self.public_top_k = public_top_k
        self.public_weight = public_weight
        self.private_tokens = private_tokens
        self.svt_threshold = svt_threshold
        self.svt_fraction = svt_fraction
        self.pretrained = pretrained
        self.model_dir = model_dir
        self.control_fraction = control_fraction
        self.batch_rows = batch_rows
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.device = device
        self.progress = progress

    # -- parameters and schema ------------------------------------------------------------
    def _validate_params(self) -> None:
        super()._validate_params()
        owner = type(self).__name__
        problems: list[str] = []

        def need(name: str, ok: bool, what: str) -> None:
            if not ok:
                problems.append(str(param_error(name, what, getattr(self, name), owner)))

        def whole(value: Any, low: int = 1) -> bool:
            return number(value, True) and value >= low

        need("group_size", self.group_size is None or whole(self.group_size),
             "None or an integer >= 1")
        need("temperature", self.temperature is None or (number(self.temperature)
                                                         and self.temperature > 0),
             "None or a float > 0")
        if self.is_private and problems == [] and (self.group_size is None) == (
                self.temperature is None):
            problems.append(str(param_error(
                "temperature", "None when group_size is given, and a float > 0 when it is "
                "None (one follows from the other and epsilon)", self.temperature, owner)))
        need("clip", number(self.clip) and self.clip > 0, "a finite float > 0")
        need("records_per_group", whole(self.records_per_group), "an integer >= 1")
        need("max_length", self.max_length is None or whole(self.max_length),
             "None or an integer >= 1")
        need("public_top_k", self.public_top_k is None or whole(self.public_top_k),
             "None or an integer >= 1")
        need("public_weight", number(self.public_weight) and self.public_weight >= 0,
             "a finite float >= 0")
        need("private_tokens", self.private_tokens is None or whole(self.private_tokens),
             "None (no sparse-vector test) or an integer >= 1 (private draws per record)")
        need("svt_threshold", number(self.svt_threshold) and self.svt_threshold >= 0,
             "a finite float >= 0 (nats)")
        need("svt_fraction", number(self.svt_fraction) and 0 < self.svt_fraction < 1,
             "a float in (0, 1)")
        need("control_fraction", number(self.control_fraction)
             and 0 < self.control_fraction < 1, "a float in (0, 1)")
        need("batch_rows", whole(self.batch_rows), "an integer >= 1")
        for name in ("d_model", "n_layers", "n_heads"):
            need(name, whole(getattr(self, name)), "an integer >= 1")
        need("pretrained", self.pretrained is None or isinstance(self.pretrained, str),
             "None, a checkpoint name or a path")
        need("model_dir", self.model_dir is None or isinstance(self.model_dir, str),
             "None or a directory path (str)")
        raise_if_problems(problems, owner)

    def _check_schema(self, schema: Schema) -> None:
        super()._check_schema(schema)
        self._check_one_text_column(schema)

    # -- planning -------------------------------------------------------------------------
    def _plan_training(self, schema: Schema, n_rows: int, budget: Budget,
                       prior_events: tuple[Event, ...]) -> PredictionPlan:
        from dpsynth.synthesizers.text.prediction import token_epsilon

        controls: GaussianEvent | None = None
        if self._columns(schema)[1]:
            share = float(self.control_fraction)
            controls = GaussianEvent(calibrate_gaussian(budget.epsilon * share,
                                                        budget.delta * share))
        before = (*prior_events, *(() if controls is None else (controls,)))
        length = self._text_length(schema)
        per_record = length
        if self.private_tokens is not None:
            if int(self.private_tokens) > length:
                raise param_error("private_tokens", f"at most max_length ({length}): the "
                                  "private draws of one record", self.private_tokens,
                                  type(self).__name__)
            per_record = int(self.private_tokens)
        draws = int(self.records_per_group) * per_record
        ratio = self._svt_ratio()
        eps0 = token_epsilon(budget.epsilon, budget.delta, draws, before, svt_ratio=ratio)
        clip = float(self.clip)
        if self.group_size is None:
            assert self.temperature is not None  # _validate_params: exactly one is None
            size = max(1, math.ceil(clip / (float(self.temperature) * eps0) - 1e-9))
        else:
            size = int(self.group_size)
        if size > n_rows:
            raise PrivacyError(
                f"{type(self).__name__}: at epsilon={budget.epsilon:g} a group needs {size} "
                f"records (clip {clip:g}, {draws} token draws per group), more than the "
                f"{n_rows} rows. Raise epsilon or the temperature, or lower clip, max_length "
                "or records_per_group.")
        return PredictionPlan(controls, eps0, draws, size, clip / (size * eps0),
                              None if ratio == 0 else ratio * eps0)

    def _svt_ratio(self) -> float:
        """``epsilon_svt / epsilon_0`` (0: no sparse-vector test)."""
        if self.private_tokens is None:
            return 0.0
        share = float(self.svt_fraction)
        return share / (1.0 - share)

    # -- fitting --------------------------------------------------------------------------
    def _fit(self, data: pd.DataFrame, schema: Schema, *, plan: FitPlan | None,
             recorder: SpendRecorder | None, noise: NoiseSource) -> None:
        import contextlib

        from dpsynth.synthesizers.text.prediction import Job, Mechanism, assign_groups, generate

        detail = plan.detail_as(PredictionPlan) if plan is not None else None
        text, controls = self._columns(schema)
        self.text_column_, self.control_columns_ = text, tuple(controls)
        self.max_length_ = self._text_length(schema)
        if detail is None:  # epsilon = inf: the reference, with the settings as given
            size, temperature = int(self.group_size or 1), float(self.temperature or 1.0)
            eps0 = eps_svt = math.inf
        else:
            size, temperature, eps0 = detail.group_size, detail.temperature, detail.token_epsilon
            eps_svt = math.inf if detail.svt_epsilon is None else detail.svt_epsilon
        self.group_size_, self.temperature_, self.token_epsilon_ = size, temperature, eps0
        self.svt_epsilon_ = eps_svt if self.private_tokens is not None else None
        domain = control_domain(schema, controls)
        cells = cell_index(data, controls, domain)
        counts = self._cell_counts(cells, len(domain), detail, recorder, noise)
        per_cell = np.floor(counts / size + 0.5).astype(np.int64)
        if not controls:
            per_cell = np.maximum(per_cell, 1)  # the row count is public: at least one group
        group, group_cell = assign_groups(cells, per_cell, noise)
        texts = data[text].fillna("").astype(str).tolist()
        members: list[list[str]] = [[] for _ in group_cell]
        for i, g in enumerate(group.tolist()):
            if g >= 0:
                members[g].append(texts[i])
        heads = [codec.header(dict(zip(controls, domain[c], strict=True))) if controls else ""
                 for c in range(len(domain))]
        reps = int(self.records_per_group)
        jobs = [Job(heads[int(c)], tuple(members[g]))
                for g, c in enumerate(group_cell.tolist()) for _ in range(reps)]
        private_tokens = None if self.private_tokens is None else min(
            int(self.private_tokens), self.max_length_)
        mech = Mechanism(size, float(self.clip), temperature, self.max_length_, self.max_length_,
                         self.public_top_k, float(self.public_weight), private_tokens,
                         float(self.svt_threshold), eps_svt)
        device = resolve_device(self.device, type(self).__name__)
        predictor = self._predictor(device)
        self._check_room(predictor, heads)
        self.groups_ = len(group_cell)
        with progress_bar(bool(self.progress), "private prediction", len(jobs)) as tick:
            with contextlib.ExitStack() as charged:
                if detail is not None and recorder is not None:
                    charged.enter_context(recorder.spend(TOKENS_PURPOSE, detail.tokens))
                    if detail.svt is not None:
                        charged.enter_context(recorder.spend(SVT_PURPOSE, detail.svt))
                written = generate(predictor, jobs, mech, noise,
                                   batch_rows=int(self.batch_rows), tick=tick)
        self.private_draws_ = int(sum(written.private_draws))
        self.public_draws_ = int(sum(written.public_draws))
        cell_of_job = [int(c) for c in group_cell.tolist() for _ in range(reps)]
        frame = pd.DataFrame({c: [domain[k][j] for k in cell_of_job]
                              for j, c in enumerate(controls)},
                             index=pd.RangeIndex(len(jobs)))
        frame[text] = written.texts
        self.records_ = frame

    def _cell_counts(self, cells: np.ndarray, n_cells: int, plan: PredictionPlan | None,
                     recorder: SpendRecorder | None, noise: NoiseSource) -> np.ndarray:
        """Records per control combination: exact without DP or controls, else released with
        the Gaussian mechanism (one record changes one count by one), negatives set to 0."""
        counts = np.bincount(cells, minlength=n_cells).astype(float)
        if plan is None or plan.controls is None or recorder is None:
            return counts
        with recorder.spend(CONTROL_PURPOSE, plan.controls):
            noisy = counts + noise.normal(n_cells, scale=plan.controls.noise_multiplier)
        return np.clip(noisy, 0.0, None)

    def _predictor(self, device: Any) -> Any:
        from dpsynth.synthesizers.text.prediction import BytePredictor, HFPredictor

        if self.model_dir is not None:
            from dpsynth.synthesizers.text.hf import HFBackend

            backend = HFBackend.load(str(self.model_dir), lora_rank=0, seed=0)
            backend.to(device)
            return HFPredictor(backend, device)
        from dpsynth.synthesizers.text.backend import ByteBackend
        from dpsynth.synthesizers.text.model import TransformerConfig

        scratch = TransformerConfig(d_model=int(self.d_model), n_layers=int(self.n_layers),
                                    n_heads=int(self.n_heads), d_ff=4 * int(self.d_model))
        byte = ByteBackend.create(self.pretrained, scratch, 0)  # scratch: tests only
        byte.to(device)
        return BytePredictor(byte.model, device)

    def _check_room(self, predictor: Any, heads: list[str]) -> None:
        """The longest prompt plus the draws must fit the model (public lengths only)."""
        widest = max(heads, key=lambda h: len(h.encode()))
        longest = len(predictor.prompt(widest, "", self.max_length_)) + self.max_length_
        if longest + self.max_length_ > predictor.max_tokens():
            raise param_error("max_length", f"at most what fits the model's "
                              f"{predictor.max_tokens()} positions twice (a prompt shows a "
                              f"record, then the new one is drawn)", self.max_length_,
                              type(self).__name__)

    # -- sampling and persistence ---------------------------------------------------------
    def _sample(self, n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
        pool = getattr(self, "records_", None)
        if pool is None:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit first.")
        if n_rows > len(pool):
            raise param_error("n_rows", f"at most the {len(pool)} records generated at fit "
                              f"time ({self.groups_} groups x {self.records_per_group} "
                              "records per group; refit with more records_per_group for "
                              "more)", n_rows, type(self).__name__)
        pick = np.sort(rng.choice(len(pool), n_rows, replace=False))
        return pool.iloc[pick].reset_index(drop=True)

    def _resolved(self) -> dict[str, Any]:
        out = super()._resolved()
        if hasattr(self, "group_size_"):  # fitted
            out.update(group_size=self.group_size_, temperature=self.temperature_,
                       max_length=self.max_length_)
        return out

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {
            "text_column": self.text_column_, "control_columns": list(self.control_columns_),
            "max_length": self.max_length_, "group_size": self.group_size_,
            "temperature": self.temperature_,
            "token_epsilon": None if math.isinf(self.token_epsilon_) else self.token_epsilon_,
            "groups": self.groups_,
            "svt_epsilon": (None if self.svt_epsilon_ is None or math.isinf(self.svt_epsilon_)
                            else self.svt_epsilon_),
            "private_draws": self.private_draws_, "public_draws": self.public_draws_,
            "records": {c: self.records_[c].tolist() for c in self.records_.columns},
        }
        return state, {}

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.text_column_ = str(state["text_column"])
        self.control_columns_ = tuple(state["control_columns"])
        self.max_length_ = int(state["max_length"])
        self.group_size_ = int(state["group_size"])
        self.temperature_ = float(state["temperature"])
        eps0 = state.get("token_epsilon")
        self.token_epsilon_ = math.inf if eps0 is None else float(eps0)
        self.groups_ = int(state["groups"])
        eps_svt = state.get("svt_epsilon")
        self.svt_epsilon_ = (None if self.private_tokens is None
                             else math.inf if eps_svt is None else float(eps_svt))
        self.private_draws_ = int(state.get("private_draws", 0))
        self.public_draws_ = int(state.get("public_draws", 0))
        columns = [*self.control_columns_, self.text_column_]
        self.records_ = pd.DataFrame({c: list(state["records"][c]) for c in columns})


__all__ = ["CONTROL_PURPOSE", "SVT_PURPOSE", "TOKENS_PURPOSE", "PredictionPlan",
           "PrivatePredictionSynthesizer"]
