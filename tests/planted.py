"""The planted leak shared by every test: a generator that releases its training rows as-is.

TAPAS' ``Raw`` generator and anonymeter's ``syn = ori`` check: any attack worth running must
catch it. It also implements the scoring protocols of :mod:`dpsynth.attacks.protocols` (a
memorising language model: zero loss on the texts it saw), so the text attacks that need a
model are held to the same planted leak. Import it as ``from planted import Copycat``
(``tests/`` is on the path through the root ``conftest.py``).
"""

from __future__ import annotations

import zlib

import numpy as np

from dpsynth.accounting import PureDPEvent
from dpsynth.synthesizers import BaseSynthesizer, PlannedSpend


class Copycat(BaseSynthesizer):
    """Claims epsilon-DP but memorises its training rows (text columns included)."""

    name = "copycat"
    supported_kinds = (*BaseSynthesizer.supported_kinds, "text")

    def _plan_training(self, schema, n_rows, budget, prior_events):
        return [PlannedSpend("memorise rows", PureDPEvent(budget.epsilon))]

    def _fit(self, data, schema, *, plan, recorder, noise):
        with recorder.spend("memorise rows", plan.training[-1].event):
            self.rows_ = data.copy()
            self.seen_ = data.index

    def _sample(self, n_rows, rng):
        return self.rows_.sample(n_rows, replace=True, random_state=rng).reset_index(drop=True)

    # -- dpsynth.attacks.protocols: a model that has memorised its training text ------------
    def record_losses(self, frame):
        """0 for a record whose text columns match a training row, else in [1, 2)."""
        columns = [c.name for c in self.schema_.data_columns if c.kind == "text"]
        seen = set(map(tuple, self.rows_[columns].astype(str).to_numpy()))
        keys = [tuple(row) for row in frame[columns].astype(str).to_numpy()]
        return np.array([0.0 if key in seen else 1.0 + zlib.crc32(repr(key).encode()) / 2**32
                         for key in keys])

    def unfitted_copy(self):
        return type(self)(**self.get_params())
