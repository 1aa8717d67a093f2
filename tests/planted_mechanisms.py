"""Deliberately broken mechanisms: the white-box audits must catch each of them.

The bugs of Annamalai, Ganev and De Cristofaro (USENIX Security 2024) in miniature, planted in
MST through its fit contract: the noise is half of what the accounting assumes, each record
is counted twice (sensitivity 2) while the accounting assumes sensitivity 1, or the numeric
bounds are read from the data instead of the public schema, unpaid. In the DP-SGD
generators (dpvae, dptext): half the planned noise multiplier, or fixed-size shuffled batches
accounted as Poisson sampling. Import them as ``from planted_mechanisms import HalfNoiseMST``
(``tests/`` is on the path).
"""

from __future__ import annotations

import dataclasses
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd

from dpsynth.schema import Schema
from dpsynth.synthesizers import _dpsgd
from dpsynth.synthesizers.dpvae import DPVAESynthesizer
from dpsynth.synthesizers.marginal.mst import MSTSynthesizer
from dpsynth.synthesizers.text import DPTextSynthesizer


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


# -- DP-SGD --------------------------------------------------------------------------------------
def _half_noise_training(base: type) -> type:
    """``base`` (a DP-SGD synthesizer) drawing half the noise its plan accounts for."""

    class HalfNoise(base):  # type: ignore[misc, valid-type]
        name = f"{base.name}-half-noise"

        def _train_private(self, module, rows, objective, plan, *args, **kwargs):
            halved = dataclasses.replace(plan, noise_multiplier=0.5 * plan.noise_multiplier)
            return super()._train_private(module, rows, objective, halved, *args, **kwargs)

    HalfNoise.__name__ = HalfNoise.__qualname__ = f"HalfNoise{base.__name__}"
    return HalfNoise


def _shuffled_training(base: type) -> type:
    """``base`` training on fixed-size shuffled batches while accounting Poisson sampling.

    Each pass over the data is a fresh permutation cut into batches of ``batch_size`` (a
    plain ``DataLoader(shuffle=True)``), the bug Chua et al. ("How Private are DP-SGD
    Implementations?", ICML 2024) show the Poisson accountant does not cover.
    """

    class Shuffled(base):  # type: ignore[misc, valid-type]
        name = f"{base.name}-shuffled"

        def _train_private(self, module, rows, objective, plan, *args, **kwargs):
            size = int(self.batch_size)

            def batches(n_rows, sample_rate, steps, noise, **_):
                return _dpsgd.ShuffledBatches(n_rows, size, steps, noise)

            with mock.patch.object(_dpsgd, "FastPoissonBatches", batches):
                return super()._train_private(module, rows, objective, plan, *args, **kwargs)

    Shuffled.__name__ = Shuffled.__qualname__ = f"Shuffled{base.__name__}"
    return Shuffled


HalfNoiseDPVAE = _half_noise_training(DPVAESynthesizer)
ShuffledDPVAE = _shuffled_training(DPVAESynthesizer)
HalfNoiseDPText = _half_noise_training(DPTextSynthesizer)
ShuffledDPText = _shuffled_training(DPTextSynthesizer)

#: name -> class, for the DP-SGD white-box tests and benchmark.
DPSGD_REGISTRY: dict[str, type] = {
    c.name: c for c in (DPVAESynthesizer, HalfNoiseDPVAE, ShuffledDPVAE, DPTextSynthesizer,
                        HalfNoiseDPText, ShuffledDPText)}
