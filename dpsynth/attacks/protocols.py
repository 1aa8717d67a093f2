"""How an attack reaches a model: small scoring protocols, no synthesizer imports.

Attacks that need a model's likelihoods (loss membership inference, canary exposure) accept
any object with these methods, so :mod:`dpsynth.attacks` never imports a synthesizer, and a
model of another tool can be audited by wrapping it in a few lines.
:class:`~dpsynth.synthesizers.text.DPTextSynthesizer` implements all three.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from dpsynth.schema import Schema


@runtime_checkable
class SequenceScorer(Protocol):
    """A fitted model that scores records: lower loss, likelier record."""

    def record_losses(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        """Mean negative log-likelihood of each record of ``frame`` (one value per row)."""
        ...


@runtime_checkable
class CalibratedScorer(SequenceScorer, Protocol):
    """A fine-tuned model that can also score records under the public model it started from."""

    def reference_losses(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        """Like :meth:`record_losses`, under the public checkpoint before fine-tuning."""
        ...


@runtime_checkable
class RetrainableScorer(Protocol):
    """A model the auditor may retrain on data of its choice (canary insertion)."""

    def unfitted_copy(self) -> RetrainableScorer:
        """A fresh, unfitted model with the same parameters."""
        ...

    def fit(self, data: pd.DataFrame, schema: Schema) -> Any:
        """Train on ``data`` (spending nothing on any ledger)."""
        ...

    def record_losses(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        """As :meth:`SequenceScorer.record_losses`, once fitted."""
        ...


__all__ = ["CalibratedScorer", "RetrainableScorer", "SequenceScorer"]
