"""The (epsilon, delta) privacy budget value."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dpsynth.errors import param_error


@dataclass(frozen=True)
class Budget:
    """An (epsilon, delta) differential-privacy budget.

    ``epsilon`` bounds how much any one person's presence can change the probability of any
    output (by a factor of at most ``exp(epsilon)``); ``delta`` is the small probability with
    which that bound may fail. Smaller is more private. ``delta`` should be well below
    ``1 / n`` for a table of ``n`` rows, otherwise releasing one row verbatim would be allowed.
    """

    epsilon: float
    delta: float = 0.0

    def __post_init__(self) -> None:
        eps, delta = self.epsilon, self.delta
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (
            0 < eps < math.inf
        ):
            raise param_error("epsilon", "a float in (0, inf)", eps, "Budget")
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not (
            0 <= delta < 1
        ):
            raise param_error("delta", "a float in [0, 1)", delta, "Budget")
        object.__setattr__(self, "epsilon", float(eps))
        object.__setattr__(self, "delta", float(delta))

    def check_delta_for(self, n_rows: int) -> None:
        """Raise if ``delta >= 1 / n_rows`` (a budget that allows releasing a row verbatim)."""
        if n_rows > 0 and self.delta >= 1.0 / n_rows:
            raise param_error(
                "delta", f"below 1/n = {1.0 / n_rows:.3g} for a table of {n_rows} rows",
                self.delta, "Budget",
            )

    def to_dict(self) -> dict[str, float]:
        return {"epsilon": self.epsilon, "delta": self.delta}

    def __str__(self) -> str:
        return f"(ε={self.epsilon:.4g}, δ={self.delta:.3g})"


def default_delta(n_rows: int) -> float:
    """A conventional delta for ``n_rows`` rows: ``1 / n**1.5``, rounded down to one digit.

    This keeps delta far below ``1 / n`` (at ``1 / n`` a mechanism that publishes each row
    verbatim with probability delta would satisfy the definition): for 3,000 rows it is
    6e-6, about 1/55 of ``1 / n``. ``n_rows`` itself is taken as public.
    """
    if n_rows <= 1:
        raise param_error("n_rows", "an integer > 1", n_rows, "default_delta")
    raw = 1.0 / n_rows**1.5
    exponent = math.floor(math.log10(raw))
    mantissa = math.floor(raw / 10**exponent)
    return float(mantissa * 10**exponent)
