"""White-box audits of the DP-SGD generators (dpvae, dptext): epsilon bounds from the updates.

The marginal audit (:mod:`dpsynth.attacks.white_box`) tests the noisy marginals; here the
auditor sees what DP-SGD releases at every step, the noisy sum of clipped gradients, and
plants a *gradient canary* through the real engine (the tight white-box setting of Nasr,
Hayes, Steinke et al., "Tight Auditing of Differentially Private Machine Learning", USENIX
Security 2023, and of Nasr, Song, Thakurta, Papernot and Carlini, "Adversary Instantiation",
IEEE S&P 2021):

* ``D`` is a tiny table; ``D'`` adds one canary record. The synthesizer's model is wrapped with
  one extra *probe* parameter, an ``nn.Linear(2, 1)`` that book-keeping clipping supports,
  fed the marker ``(1, 0)`` on the canary row and ``(0, -1)`` on every other row. Each row's
  loss gets the term ``K * probe(marker)`` with ``K`` so large that, after per-example
  clipping, the canary's contribution to the first coordinate is ``C * K / sqrt(K^2 + g^2)``
  (``g`` its model gradient; ``C`` the clipping norm), ``C`` to six digits, and every other
  row's is 0; every other row moves the second coordinate by ``-C`` (it counts the batch).
* A hook on the optimizer step (torch's global pre-step hook, registered only while the audit
  runs, so normal training pays nothing and changes in nothing; the engine is unchanged)
  reads the probe coordinates of the noisy summed gradient after the noise is added. Divided
  by ``C``, step ``t`` gives ``z_t ~ N(0, sigma^2)`` on ``D`` and ``N(b_t, sigma^2)`` on
  ``D'`` in the first coordinate, with ``b_t`` the canary's Poisson draw: the real sampler,
  clipping, noise draw and the plan's ``sigma``.
* The plan is the one :meth:`~dpsynth.synthesizers.BaseSynthesizer.plan_budget` makes for
  ``D'`` (``n + 1`` rows) at the claimed epsilon; the fits on ``D`` run the *same* mechanism
  (sampling rate, steps and noise multiplier) on its ``n`` rows.
* The statistics of a run are Neyman-Pearson log-likelihood ratios of the Poisson-subsampled
  Gaussian, ``L = sum_t log(1 - q + q exp((z_t - 1/2) / sigma^2))``: on the canary's
  coordinate (*canary*), and on the mean of both coordinates (*displacement*, which sees a
  drawn canary displace another row of a fixed-size batch; see :func:`statistics`).

The bounds are those of the marginal audit (:func:`~dpsynth.attacks.white_box._summarise`):
a GDP fit of the two samples of ``L`` with a one-sided interval (Dong, Roth and Su 2022),
and Clopper-Pearson on a threshold of ``L``. Validity of the GDP fit: ``L`` is not Gaussian
(a subsampled Gaussian's loss is skewed), so the fit is an approximation. It was measured on
the ideal mechanism (simulated, same ``q``, steps and ``sigma``) over sampling rates 0.1 to
1, 1 to 200 steps and epsilon 4 and 10 (``docs/benchmarks.md``): the fitted epsilon does not
exceed the PLD accountant's epsilon beyond simulation error (it is exact at ``q = 1``, where
the statistic is Gaussian, and falls short by up to 70 % at small ``q`` and few steps). The
default configuration (``q`` about 1/2, 20 steps) fits 0.90 of epsilon 4 and 0.80 of 10.
``epsilon_planned`` is the fit's value on the ideal mechanism, found by simulation: what this
audit can show of a correct mechanism.

What the audit assumes and cannot see: the canary's gradient is clipped to exactly ``C``
(the six-digit dominance above; a broken clipping shows as a larger shift, which raises the
bound); the probe coordinate is one of the model's coordinates, so the audit tests the
mechanism every parameter goes through, not each parameter separately (noise left off some
layers only is not seen); every row's gradient is dominated by its probe term, so the model
barely trains in an audit run (the mechanism is under test, not the model); neighbours are
add/remove, as the PLD accountant assumes.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.accounting import NoiseSource
from dpsynth.attacks.white_box import WhiteBoxAudit, _summarise, _Tally
from dpsynth.errors import ParameterError, param_error
from dpsynth.schema import Column, Schema

METHOD = ("GDP fit of the gradient-canary likelihood ratio on the noisy DP-SGD updates "
          "(Nasr et al. 2023; Dong, Roth and Su 2022)")
#: The canary's loss weight on the probe: its clipped probe gradient is ``C / sqrt(1 +
#: (g / K)^2)``, ``C`` to six digits for model gradients ``g`` up to 1000.
PROBE_WEIGHT = 1e6
DPSGD_SYNTHESIZERS = ("dpar", "dpvae", "dptext")

#: Small, fast configurations of each generator (the model only needs to train, not to be
#: good): ``n_rows`` rows in ``D``, ``steps`` steps at a batch size of half of ``D'``.
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "dpvae": {"hidden_sizes": (8,), "latent_dim": 2, "learning_rate": 1e-2},
    "dpar": {"d_model": 8, "n_heads": 2, "n_bins": 8, "learning_rate": 1e-2},
    "dptext": {"pretrained": None, "d_model": 8, "n_layers": 1, "n_heads": 2,
               "max_length": 6, "learning_rate": 5e-3, "release_controls": False},
}


# -- the neighbouring tables ------------------------------------------------------------------
def dpsgd_canary_tables(synthesizer: str, n_rows: int = 9, seed: int = 0
                        ) -> tuple[pd.DataFrame, pd.DataFrame, Schema]:
    """``D``, the canary record and the public schema for a DP-SGD generator.

    dpvae: two categorical columns over a/b/c, the canary ``"canary"`` in each (as
    :func:`~dpsynth.attacks.white_box.canary_tables`). dptext: one text column of short
    words over ``a``-``e``, the canary ``"zzzz"``.
    """
    rng = np.random.default_rng(seed)
    if synthesizer == "dptext" or synthesizer.startswith("dptext"):
        words = ["".join(rng.choice(list("abcde"), int(rng.integers(1, 5))))
                 for _ in range(n_rows)]
        return (pd.DataFrame({"text": words}), pd.DataFrame({"text": ["zzzz"]}),
                Schema((Column("text", "text", max_length=6),)))
    from dpsynth.attacks.white_box import canary_tables

    return canary_tables(n_rows, 2, seed)


# -- the probe --------------------------------------------------------------------------------
def _probe_classes() -> tuple[type, type]:
    import torch
    from torch import nn

    class ProbedModule(nn.Module):
        """``module`` plus the probe ``nn.Linear(2, 1)``: returns ``(output, probe_term)``."""

        def __init__(self, module: nn.Module, weight: float):
            super().__init__()
            self.inner = module
            device = next(module.parameters()).device
            self.probe = nn.Linear(2, 1, bias=False, device="meta").to_empty(device=device)
            with torch.no_grad():
                self.probe.weight.zero_()
            self.weight = weight
            self.marker: torch.Tensor | None = None

        def forward(self, *args: Any, **kwargs: Any) -> tuple[Any, torch.Tensor]:
            out = self.inner(*args, **kwargs)
            marker = self.marker
            if marker is None:
                raise RuntimeError("the probe's marker was not set for this batch")
            return out, self.weight * self.probe(marker).squeeze(1)

    class ProbedCriterion(nn.Module):
        """The model's per-example loss plus the probe term."""

        def __init__(self, criterion: nn.Module):
            super().__init__()
            self.criterion: Any = criterion
            self.reduction = getattr(criterion, "reduction", "mean")

        def forward(self, output: tuple[Any, torch.Tensor], target: Any) -> torch.Tensor:
            out, term = output
            kept = self.criterion.reduction
            self.criterion.reduction = "none"
            try:
                per: torch.Tensor = self.criterion(out, target) + term.to(torch.float32)
            finally:
                self.criterion.reduction = kept
            if self.reduction == "none":
                return per
            reduced: torch.Tensor = per.sum() if self.reduction == "sum" else per.mean()
            return reduced

    return ProbedModule, ProbedCriterion


def probed(cls: type) -> type:
    """A subclass of the DP-SGD synthesizer ``cls`` whose training carries the probe.

    The instance attribute ``audit_canary`` (a DataFrame row or ``None``) says whether the
    last row of the training table is the canary; ``audit_probe`` holds the probe module of
    the current fit. Nothing else of ``cls`` changes: the same plan, sampler, clipping and
    noise run.
    """
    import torch

    from dpsynth.synthesizers._dpsgd_base import Objective

    ProbedModule, ProbedCriterion = _probe_classes()

    class Probed(cls):  # type: ignore[misc, valid-type]
        audit_canary: bool = False
        audit_probe: Any = None

        def _train(self, module: Any, rows: Any, objective: Any, **kwargs: Any) -> Any:
            probe = ProbedModule(module, PROBE_WEIGHT)
            self.audit_probe = probe
            canary = rows[-1] if self.audit_canary else None
            inner_loss = objective.loss

            def loss(wrapped: Any, criterion: Any, batch: Any) -> Any:
                if canary is None:
                    same = batch.new_zeros(len(batch), dtype=torch.float32)
                else:
                    same = (batch == canary).reshape(len(batch), -1).all(dim=1)
                    same = same.to(torch.float32)
                # (1, 0) on the canary, (0, -1) on every other row
                probe.marker = torch.stack([same, same - 1.0], dim=1)
                return inner_loss(wrapped, criterion, batch)

            wrapped = Objective(ProbedCriterion(objective.criterion), loss, objective.precision)
            return super()._train(probe, rows, wrapped, **kwargs)

    Probed.__name__ = Probed.__qualname__ = f"Probed{cls.__name__}"
    return Probed


@contextmanager
def capture_probe(synth: Any, scale: float) -> Iterator[list[list[float]]]:
    """Record the probe's noisy gradient at every optimizer step of ``synth``'s training.

    Uses torch's global optimizer pre-step hook, removed on exit: the gradient the inner
    optimizer (Adam) receives has the noise added and is divided by the expected batch size,
    so ``grad * scale`` is the noisy clipped sum's probe coordinate in units of ``C``.
    """
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    values: list[list[float]] = []

    def hook(optimizer: Any, args: Any, kwargs: Any) -> None:
        probe = synth.audit_probe
        if probe is None or hasattr(optimizer, "original_optimizer"):
            return  # not this fit's optimizer, or an Opacus wrapper before its noise
        weight = probe.probe.weight
        if not any(p is weight for g in optimizer.param_groups for p in g["params"]):
            return
        grad = weight.grad
        values.append([0.0, 0.0] if grad is None else
                      [float(v) * scale for v in grad.reshape(2).tolist()])

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield values
    finally:
        handle.remove()


# -- the statistic ----------------------------------------------------------------------------
def llr_statistic(z: np.ndarray, q: float, sigma: float) -> np.ndarray:
    """``sum_t log(1 - q + q exp((z_t - 1/2) / sigma^2))`` over the last axis of ``z``.

    The Neyman-Pearson statistic of ``N(0, sigma^2)`` against the Poisson mixture
    ``(1 - q) N(0, sigma^2) + q N(1, sigma^2)`` at every step.
    """
    u = (np.asarray(z, dtype=float) - 0.5) / sigma ** 2
    if q >= 1:
        return np.asarray(u.sum(axis=-1))
    # log(1 - q + q e^u) = log(1 - q) + log1p(e^(u + log q - log(1 - q))), stably
    a = u + math.log(q) - math.log1p(-q)
    return np.asarray((math.log1p(-q) + np.logaddexp(0.0, a)).sum(axis=-1))


def statistics(updates: np.ndarray, q: float, sigma: float, n_others: int) -> np.ndarray:
    """The two statistics of each run from its probe coordinates (``(..., steps, 2)``).

    ``[..., 0]``: **canary**, :func:`llr_statistic` of the canary's coordinate ``z1``, the
    Neyman-Pearson test of Poisson DP-SGD. ``[..., 1]``: **displacement**, the same test on
    ``w = (z1 + z2 + q n) / 2``, ``z2`` the coordinate every other row moves by ``-1``
    (``n_others`` of them). Under Poisson sampling ``z2`` does not depend on the canary
    (``w`` shifts by 1/2 when the canary is drawn); with fixed-size batches a drawn canary
    displaces another row, so ``z2`` moves by +1 too and ``w`` shifts by 1 with half the
    noise variance: a fixed batch size accounted as Poisson shows as a doubled
    sensitivity. Its noise scale is ``sqrt(sigma^2 / 2 + n q (1 - q) / 4)`` (the batch-size
    variance of Poisson sampling included).
    """
    z1, z2 = updates[..., 0], updates[..., 1]
    w = (z1 + z2 + q * n_others) / 2
    scale = math.sqrt(sigma ** 2 / 2 + n_others * q * (1 - q) / 4)
    return np.stack([llr_statistic(z1, q, sigma), llr_statistic(w, q, scale)], axis=-1)


def ideal_updates(q: float, steps: int, sigma: float, n_others: int, *, n: int = 20000,
                  noise_scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """Probe coordinates of the ideal Poisson DP-SGD mechanism, by simulation (like
    :func:`noisy_updates`); ``noise_scale`` scales the noise drawn (0.5: halved)."""
    rng = np.random.default_rng(seed)
    out = np.empty((2, n, steps, 2))
    for side in (0, 1):
        drawn = (rng.random((n, steps)) < q) * side
        out[side, ..., 0] = drawn
        out[side, ..., 1] = -rng.binomial(n_others, q, (n, steps))
        out[side] += rng.standard_normal((n, steps, 2)) * sigma * noise_scale
    return out


def separation(scores: np.ndarray) -> float:
    """``(mean_1 - mean_0) / pooled_sd`` of two samples (rows 0 and 1 of ``scores``)."""
    without, with_ = scores
    pooled = math.sqrt((without.var(ddof=1) + with_.var(ddof=1)) / 2)
    return float((with_.mean() - without.mean()) / pooled)


# -- the audit --------------------------------------------------------------------------------
STATISTICS = ("canary", "displacement")


def dpsgd_white_box_audit(synthesizer: str, *, epsilon: float, delta: float = 1e-5,
                          n_fits: int = 300, n_rows: int = 9, steps: int = 20,
                          confidence: float = 0.95, random_state: int = 0,
                          params: Mapping[str, Any] | None = None,
                          registry: Mapping[str, Any] | None = None) -> WhiteBoxAudit:
    """Audit a DP-SGD synthesizer with a gradient canary, ``n_fits`` fits on each table.

    Both statistics of :func:`statistics` are bounded, each at confidence
    ``1 - (1 - confidence) / 2`` (Bonferroni); the audit returned is the one with the larger
    bound, the other's figures under ``params["other"]``.

    Parameters
    ----------
    synthesizer:
        ``"dpvae"``, ``"dptext"`` or a key of ``registry`` (a subclass of one of them).
    epsilon, delta:
        The claim under test.
    n_fits:
        Fits on ``D`` and as many on ``D'``.
    n_rows, steps:
        Rows of ``D``; DP-SGD steps, at a batch size of ``ceil((n_rows + 1) / 2)`` (sampling
        rate about 1/2, where the GDP fit is tightest).
    params:
        Constructor parameters over :data:`FAST_PARAMS` (``batch_size`` and ``epochs``
        override the schedule above).
    registry:
        Where to find ``synthesizer`` (default :data:`dpsynth.synthesizers.SYNTHESIZERS`);
        tests pass deliberately broken mechanisms here.
    """
    problems = []
    for name, value, low in (("n_fits", n_fits, 20), ("n_rows", n_rows, 3), ("steps", steps, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            problems.append(str(param_error(name, f"an integer >= {low}", value,
                                            "dpsgd_white_box_audit")))
    if not (isinstance(epsilon, (int, float)) and 0 < epsilon < math.inf):
        problems.append(str(param_error("epsilon", "a finite float > 0", epsilon,
                                        "dpsgd_white_box_audit")))
    if not 0.5 <= confidence < 1:
        problems.append(str(param_error("confidence", "a float in [0.5, 1)", confidence,
                                        "dpsgd_white_box_audit")))
    if problems:
        raise ParameterError(" ".join(problems))
    from dpsynth.synthesizers import SYNTHESIZERS
    from dpsynth.synthesizers._dpsgd_base import DPSGDSynthesizer

    classes: Mapping[str, Any] = SYNTHESIZERS if registry is None else registry
    cls = classes.get(synthesizer)
    if not (isinstance(cls, type) and issubclass(cls, DPSGDSynthesizer)):
        names = sorted(n for n, c in classes.items()
                       if isinstance(c, type) and issubclass(c, DPSGDSynthesizer))
        raise param_error("synthesizer", f"a DP-SGD synthesizer, one of {names}", synthesizer,
                          "dpsgd_white_box_audit")
    family = _family(cls)
    batch = math.ceil((n_rows + 1) / 2)
    extra = (FAST_PARAMS[family] | {"batch_size": batch, "device": "cpu",
                                    "epochs": steps * batch / (n_rows + 1)}
             | dict(params or {}))
    data, canary, schema = dpsgd_canary_tables(family, n_rows, random_state)
    neighbour = pd.concat([data, canary], ignore_index=True)
    plan = cls(epsilon=epsilon, delta=delta, **extra).plan_budget(schema, len(neighbour))
    dpsgd = _dpsgd_plan(plan)
    plans = (dataclasses.replace(plan, n_rows=len(data)), plan)
    q, sigma, n_steps = dpsgd.sample_rate, dpsgd.noise_multiplier, dpsgd.steps
    began = time.process_time()
    updates = noisy_updates(probed(cls), (data, neighbour), schema, plans, n_fits,
                            random_state, epsilon=epsilon, delta=delta, **extra)
    scores = statistics(updates, q, sigma, n_rows)
    seconds = time.process_time() - began
    ideal = statistics(ideal_updates(q, n_steps, sigma, n_rows), q, sigma, n_rows)
    halved = statistics(ideal_updates(q, n_steps, sigma, n_rows, noise_scale=0.5, seed=1),
                        q, sigma, n_rows)
    each = (1 + confidence) / 2
    audits = [_summarise(synthesizer, epsilon, delta, scores[..., k],
                         separation(ideal[..., k]), each, seconds, {},
                         mu_half=separation(halved[..., k])) for k in range(2)]
    best = max(range(2), key=lambda k: audits[k].epsilon_lower_best)
    other = audits[1 - best]
    shown = dict(params or {}) | {
        "statistic": STATISTICS[best], "sample_rate": q, "steps": n_steps,
        "noise_multiplier": sigma, "n_rows": n_rows, "confidence_each": each,
        "other": {"statistic": STATISTICS[1 - best], "mu_hat": other.mu_hat,
                  "mu_ci": list(other.mu_ci), "mu_planned": other.mu_planned,
                  "epsilon_lower": other.epsilon_lower_best,
                  "epsilon_lower_gdp": other.epsilon_lower,
                  "epsilon_lower_cp": other.epsilon_lower_cp,
                  "epsilon_planned": other.epsilon_planned}}
    return dataclasses.replace(
        audits[best], confidence=confidence, method=f"{METHOD}; statistic: {STATISTICS[best]}",
        power_half_noise=max(a.power_half_noise for a in audits), params=shown)


def noisy_updates(probed_cls: type, tables: tuple[pd.DataFrame, pd.DataFrame], schema: Schema,
                  plans: tuple[Any, Any], n_fits: int, random_state: int, **params: Any
                  ) -> np.ndarray:
    """``(2, n_fits, steps, 2)``: the probe coordinates of every noisy update, in units of ``C``.

    Row 0 holds the fits on ``tables[0]`` (``D``), row 1 those on ``tables[1]`` (``D'``, the
    canary last), each under its plan and a fresh seed. Torch runs on one thread meanwhile
    (tiny models: more threads only spin).
    """
    import torch

    steps = _dpsgd_plan(plans[1]).steps
    seeds = np.random.SeedSequence(random_state).generate_state(2 * n_fits)
    out = np.empty((2, n_fits, steps, 2))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i in range(2 * n_fits):
            side = i % 2
            synth = probed_cls(random_state=int(seeds[i]), **params)
            synth.audit_canary = bool(side)
            scale = float(synth.batch_size) / float(synth.max_grad_norm)
            with capture_probe(synth, scale) as z:
                synth.fit_planned(tables[side], schema, plan=plans[side],
                                  recorder=_Tally(plans[side].budget),
                                  noise=NoiseSource.create(int(seeds[i]), False))
            if len(z) != steps:
                raise RuntimeError(f"internal error: captured {len(z)} noisy updates of the "
                                   f"probe, but {steps} steps were planned")
            out[side, i // 2] = z
    finally:
        torch.set_num_threads(threads)
    return out


def is_dpsgd_synthesizer(name: str, registry: Mapping[str, Any] | None = None) -> bool:
    """Whether ``name`` is a DP-SGD synthesizer (imports torch only if it is one)."""
    from dpsynth.synthesizers import SYNTHESIZERS

    classes: Mapping[str, Any] = SYNTHESIZERS if registry is None else registry
    if name not in classes:
        return False
    cls = classes[name]
    base = sys.modules.get("dpsynth.synthesizers._dpsgd_base")  # imported by any such class
    return base is not None and isinstance(cls, type) and issubclass(cls, base.DPSGDSynthesizer)


def _family(cls: type) -> str:
    """Which of :data:`FAST_PARAMS` (and of the canary tables) fits ``cls``."""
    from dpsynth.synthesizers.ar import DPARSynthesizer
    from dpsynth.synthesizers.text import DPTextSynthesizer

    if issubclass(cls, DPTextSynthesizer):
        return "dptext"
    return "dpar" if issubclass(cls, DPARSynthesizer) else "dpvae"


def _dpsgd_plan(plan: Any) -> Any:
    from dpsynth.synthesizers.plan import DPSGDPlan

    detail = plan.detail
    training = getattr(detail, "training", detail)
    if not isinstance(training, DPSGDPlan):
        raise ParameterError(f"the white-box DP-SGD audit needs a plan that is DP-SGD alone; "
                             f"got {type(detail).__name__}")
    if len(plan.spends) != 1:
        raise ParameterError("the white-box DP-SGD audit needs a plan without other spends "
                             "(declare every domain; no control release; no dpar target "
                             "head)")
    return training


__all__ = ["DPSGD_SYNTHESIZERS", "STATISTICS", "dpsgd_canary_tables", "dpsgd_white_box_audit",
           "ideal_updates", "is_dpsgd_synthesizer", "llr_statistic", "noisy_updates", "probed",
           "separation", "statistics"]
