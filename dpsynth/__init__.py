"""dpsynth: differentially private synthetic data with a privacy ledger and an attack audit."""

from dpsynth._version import __version__
from dpsynth.accounting import Budget
from dpsynth.schema import Column, Schema, draft_schema

__all__ = ["Budget", "Column", "Schema", "__version__", "draft_schema"]
