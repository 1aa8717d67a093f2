"""Deliberately broken marginal mechanisms: the white-box audit must catch each of them.

The bugs of Annamalai, Ganev and De Cristofaro (USENIX Security 2024) in miniature, planted in
MST through its fit contract: the noise is half of what the accounting assumes, each record
is counted twice (sensitivity 2) while the accounting assumes sensitivity 1, or the numeric
bounds are read from the data instead of the public schema, unpaid. Import them as
``from planted_mechanisms import HalfNoiseMST`` (``tests/`` is on the path).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.schema import Schema
from dpsynth.synthesizers.marginal.mst import MSTSynthesizer


class _HalfNoise:
    """A noise source whose Gaussian draws have half the requested scale."""

    def __init__(self, inner: Any):
        self._inner = inner

    def normal(self, size: int, scale: float) -> np.ndarray:
        return self._inner.normal(size, scale=0.5 * scale)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class HalfNoiseMST(MSTSynthesizer):
    """Planted bug: every measurement gets half the noise its accounting assumes."""

    name = "mst-half-noise"

    def _fit(self, data, schema, *, plan, recorder, noise):
        super()._fit(data, schema, plan=plan, recorder=recorder, noise=_HalfNoise(noise))


class DoubleCountMST(MSTSynthesizer):
    """Planted bug: each record counted twice (sensitivity 2) but accounted as sensitivity 1."""

    name = "mst-double-count"

    def _fit(self, data, schema, *, plan, recorder, noise):
        super()._fit(pd.concat([data, data]), schema, plan=plan, recorder=recorder, noise=noise)


class DataBoundsMST(MSTSynthesizer):
    """Planted bug: numeric bounds taken from the data's min and max, never paid for."""

    name = "mst-data-bounds"

    def _fit(self, data, schema, *, plan, recorder, noise):
        columns = tuple(
            dataclasses.replace(c, lower=float(data[c.name].min()),
                                upper=float(data[c.name].max()))
            if c.kind == "numeric" else c for c in schema.columns)
        super()._fit(data, Schema(columns), plan=plan, recorder=recorder, noise=noise)
