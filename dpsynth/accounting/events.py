"""Mechanism events: what one run of a DP mechanism costs, as a small serialisable value.

Events are composed by :mod:`dpsynth.accounting.analysis`. Each one knows how to become a
`dp_accounting` event (for the PLD and RDP accountants) and how to round-trip through JSON
(for the ledger). All sensitivities are normalised to 1: a noise multiplier is the noise scale
divided by the query's sensitivity.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from dpsynth.errors import param_error

if TYPE_CHECKING:
    import dp_accounting


def _positive(name: str, value: float, owner: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        0 < value < math.inf
    ):
        raise param_error(name, "a float in (0, inf)", value, owner)
    return float(value)


def _count(value: int, owner: str, name: str = "count") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise param_error(name, "an integer >= 1", value, owner)
    return int(value)


@dataclass(frozen=True)
class Event:
    """Base of the mechanism events."""

    kind: ClassVar[str] = ""

    def to_dp_event(self) -> dp_accounting.DpEvent:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class GaussianEvent(Event):
    """``count`` runs of the Gaussian mechanism, noise std ``noise_multiplier`` × sensitivity."""

    noise_multiplier: float
    count: int = 1
    kind: ClassVar[str] = "gaussian"

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "noise_multiplier",
            _positive("noise_multiplier", self.noise_multiplier, "GaussianEvent"),
        )
        object.__setattr__(self, "count", _count(self.count, "GaussianEvent"))

    def to_dp_event(self) -> dp_accounting.DpEvent:
        import dp_accounting

        event = dp_accounting.GaussianDpEvent(self.noise_multiplier)
        return event if self.count == 1 else dp_accounting.SelfComposedDpEvent(event, self.count)

    def describe(self) -> str:
        return f"Gaussian mechanism, σ/Δ={self.noise_multiplier:.4g}, ×{self.count}"


@dataclass(frozen=True)
class LaplaceEvent(Event):
    """``count`` runs of the Laplace mechanism with scale ``noise_multiplier`` × L1 sensitivity."""

    noise_multiplier: float
    count: int = 1
    kind: ClassVar[str] = "laplace"

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "noise_multiplier",
            _positive("noise_multiplier", self.noise_multiplier, "LaplaceEvent"),
        )
        object.__setattr__(self, "count", _count(self.count, "LaplaceEvent"))

    def to_dp_event(self) -> dp_accounting.DpEvent:
        import dp_accounting

        event = dp_accounting.LaplaceDpEvent(self.noise_multiplier)
        return event if self.count == 1 else dp_accounting.SelfComposedDpEvent(event, self.count)

    def describe(self) -> str:
        return f"Laplace mechanism, b/Δ={self.noise_multiplier:.4g}, ×{self.count}"


@dataclass(frozen=True)
class SubsampledGaussianEvent(Event):
    """DP-SGD: ``steps`` Gaussian steps, each on a Poisson sample with rate ``sample_rate``.

    Abadi et al., "Deep Learning with Differential Privacy", CCS 2016. Poisson sampling is what
    the accountant assumes; dpsynth's trainers sample that way.
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    kind: ClassVar[str] = "subsampled_gaussian"

    def __post_init__(self) -> None:
        owner = "SubsampledGaussianEvent"
        object.__setattr__(
            self, "noise_multiplier", _positive("noise_multiplier", self.noise_multiplier, owner)
        )
        q = self.sample_rate
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not (0 < q <= 1):
            raise param_error("sample_rate", "a float in (0, 1]", q, owner)
        object.__setattr__(self, "sample_rate", float(q))
        object.__setattr__(self, "steps", _count(self.steps, owner, "steps"))

    def to_dp_event(self) -> dp_accounting.DpEvent:
        import dp_accounting

        step = dp_accounting.PoissonSampledDpEvent(
            self.sample_rate, dp_accounting.GaussianDpEvent(self.noise_multiplier)
        )
        return dp_accounting.SelfComposedDpEvent(step, self.steps)

    def describe(self) -> str:
        return (
            f"DP-SGD (Poisson-subsampled Gaussian), σ={self.noise_multiplier:.4g}, "
            f"q={self.sample_rate:.4g}, steps={self.steps}"
        )


@dataclass(frozen=True)
class PureDPEvent(Event):
    """``count`` runs of a pure ``epsilon``-DP mechanism (exponential mechanism, noisy max...).

    Composed with the worst-case privacy-loss distribution of an ``epsilon``-DP mechanism
    (randomized response), which dominates every ``epsilon``-DP mechanism (Kairouz, Oh and
    Viswanath, "The Composition Theorem for Differential Privacy", ICML 2015). For RDP it is
    converted to ``epsilon**2 / 2``-zCDP (Bun and Steinke, TCC 2016, Proposition 1.4).
    """

    epsilon: float
    count: int = 1
    mechanism: str = "exponential"
    kind: ClassVar[str] = "pure_dp"

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", _positive("epsilon", self.epsilon, "PureDPEvent"))
        object.__setattr__(self, "count", _count(self.count, "PureDPEvent"))

    def to_dp_event(self) -> dp_accounting.DpEvent:
        import dp_accounting

        # Only used by the RDP accountant; the PLD path builds the exact PLD itself.
        event = dp_accounting.ZCDpEvent(self.epsilon**2 / 2)
        return event if self.count == 1 else dp_accounting.SelfComposedDpEvent(event, self.count)

    def describe(self) -> str:
        return f"{self.mechanism} mechanism, ε={self.epsilon:.4g}, ×{self.count}"


@dataclass(frozen=True)
class ApproxDPEvent(Event):
    """One run of a mechanism proven (epsilon, delta)-DP directly, such as the thresholded noisy
    histogram that releases category names (Korolova et al., WWW 2009).

    Composed with the worst-case PLD of an (epsilon, delta)-DP mechanism (Kairouz et al. 2015);
    the RDP accountant cannot express it, so the RDP comparison figure is then unavailable.
    """

    epsilon: float
    delta: float
    mechanism: str = "thresholded histogram"
    kind: ClassVar[str] = "approx_dp"

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", _positive("epsilon", self.epsilon, "ApproxDPEvent"))
        d = self.delta
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not (0 <= d < 1):
            raise param_error("delta", "a float in [0, 1)", d, "ApproxDPEvent")
        object.__setattr__(self, "delta", float(d))

    def to_dp_event(self) -> dp_accounting.DpEvent:
        import dp_accounting

        return dp_accounting.UnsupportedDpEvent()

    def describe(self) -> str:
        return f"{self.mechanism}, ε={self.epsilon:.4g}, δ={self.delta:.3g}"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (GaussianEvent, LaplaceEvent, SubsampledGaussianEvent, PureDPEvent, ApproxDPEvent)
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Inverse of :meth:`Event.to_dict`."""
    fields = dict(data)
    kind = fields.pop("kind", None)
    if kind not in EVENT_TYPES:
        raise param_error("kind", f"one of {sorted(EVENT_TYPES)}", kind, "event_from_dict")
    return EVENT_TYPES[kind](**fields)
