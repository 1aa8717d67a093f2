"""dpsynth: differentially private synthetic data with a privacy ledger and an attack audit.

The names most scripts need, one import away::

    import dpsynth

    rows, schema = dpsynth.load_dataset("wage")
    synth = dpsynth.create("aim", epsilon=1.0, random_state=0).fit(rows, schema)

Everything is loaded on first use (:pep:`562`), so ``import dpsynth`` costs almost nothing
and never imports torch; ``dpsynth.create`` loads the generators, ``dpsynth.assess`` the
release gate. The packages behind these names (:mod:`dpsynth.accounting`,
:mod:`dpsynth.attacks`, :mod:`dpsynth.release`, :mod:`dpsynth.synthesizers`...) hold the rest.
The ``release`` function lives in :mod:`dpsynth.release` (the package of the same name).
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from dpsynth._version import __version__
from dpsynth.errors import (
    BudgetExceededError,
    DataReadError,
    DataValidationError,
    DpsynthError,
    GeneratorError,
    LedgerAccessError,
    LedgerCorruptedError,
    LedgerNotFoundError,
    LegacyLedgerError,
    ModelFormatError,
    NotFittedError,
    ParameterError,
    PolicyError,
    PrivacyError,
    SchemaError,
    UnknownDatasetError,
    WitnessError,
)

if _typing.TYPE_CHECKING:
    from dpsynth.accounting import Budget, Ledger
    from dpsynth.attacks import AuditReport, audit_generator, run_audit
    from dpsynth.datasets import load_dataset
    from dpsynth.release import DatasetCard, ReleasePolicy, ReleaseResult, assess, split_holdout
    from dpsynth.schema import Column, Schema, draft_schema
    from dpsynth.synthesizers import SYNTHESIZERS, BaseSynthesizer, create

#: Public name -> the module it is loaded from on first use.
_LAZY = {
    "Budget": "dpsynth.accounting",
    "Ledger": "dpsynth.accounting",
    "AuditReport": "dpsynth.attacks",
    "audit_generator": "dpsynth.attacks",
    "run_audit": "dpsynth.attacks",
    "load_dataset": "dpsynth.datasets",
    "DatasetCard": "dpsynth.release",
    "ReleasePolicy": "dpsynth.release",
    "ReleaseResult": "dpsynth.release",
    "assess": "dpsynth.release",
    "split_holdout": "dpsynth.release",
    "Column": "dpsynth.schema",
    "Schema": "dpsynth.schema",
    "draft_schema": "dpsynth.schema",
    "SYNTHESIZERS": "dpsynth.synthesizers",
    "BaseSynthesizer": "dpsynth.synthesizers",
    "create": "dpsynth.synthesizers",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dpsynth' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "SYNTHESIZERS",
    "AuditReport",
    "BaseSynthesizer",
    "Budget",
    "BudgetExceededError",
    "Column",
    "DataReadError",
    "DataValidationError",
    "DatasetCard",
    "DpsynthError",
    "GeneratorError",
    "Ledger",
    "LedgerAccessError",
    "LedgerCorruptedError",
    "LedgerNotFoundError",
    "LegacyLedgerError",
    "ModelFormatError",
    "NotFittedError",
    "ParameterError",
    "PolicyError",
    "PrivacyError",
    "ReleasePolicy",
    "ReleaseResult",
    "Schema",
    "SchemaError",
    "UnknownDatasetError",
    "WitnessError",
    "__version__",
    "assess",
    "audit_generator",
    "create",
    "draft_schema",
    "load_dataset",
    "run_audit",
    "split_holdout",
]
