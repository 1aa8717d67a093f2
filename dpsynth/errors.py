"""Exceptions raised by dpsynth.

Every exception subclasses :class:`DpsynthError` and one built-in type, so code that already
catches ``ValueError`` (or ``FileNotFoundError``, ``RuntimeError``) keeps working::

    DpsynthError(Exception)
    ├── SchemaError(ValueError)                 the schema itself is malformed
    ├── DataValidationError(ValueError)         a table does not match its schema
    ├── DataReadError(ValueError)               a file cannot be read as a table
    ├── ParameterError(ValueError)              a parameter has a bad value (epsilon <= 0...)
    │   ├── PolicyError                         a release policy is malformed
    │   ├── UnknownDatasetError                 the dataset is not registered in the ledger
    │   ├── LedgerAccessError                   the ledger cannot be opened or written
    │   └── LegacyLedgerError                   an un-keyed (format 1) ledger: read, never spent
    ├── PrivacyError(ValueError)                the operation would leak (data read unpaid...)
    │   └── BudgetExceededError                 a spend would cross the budget cap
    ├── NotFittedError(ValueError)              sample/save called before fit
    ├── ModelFormatError(ValueError)            a saved model is missing, corrupt or too new
    ├── LedgerNotFoundError(FileNotFoundError)  no ledger at the given location
    ├── LedgerCorruptedError(RuntimeError)      the ledger failed verification (edited, cut...)
    ├── WitnessError(ValueError)                a ledger's witness file cannot be trusted
    └── GeneratorError(RuntimeError)            a generator under audit failed

A name in parentheses is the built-in class the exception also subclasses; a child without one
inherits its parent's. The modules that raise them re-export them (``dpsynth.release.policy``
has ``PolicyError``, ``dpsynth.accounting.ledger`` has ``UnknownDatasetError``...).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class DpsynthError(Exception):
    """Base class of every dpsynth exception."""


class SchemaError(DpsynthError, ValueError):
    """The schema is malformed (bad kind, bounds in the wrong order, duplicate column...)."""


class DataValidationError(DpsynthError, ValueError):
    """A table does not conform to its schema.

    ``problems`` lists every problem found, so the user can fix them all in one pass.
    """

    def __init__(self, problems: Iterable[str]):
        self.problems: tuple[str, ...] = tuple(problems)
        n = len(self.problems)
        head = f"The data does not match the schema ({n} problem{'s' if n != 1 else ''}):"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class DataReadError(DpsynthError, ValueError):
    """A file cannot be read as a table (missing, wrong delimiter, wrong encoding...)."""


class ParameterError(DpsynthError, ValueError):
    """A parameter has an invalid value."""


class LedgerAccessError(ParameterError):
    """The ledger cannot be opened or written: a directory, no such folder, read-only, a server
    that refuses the connection or is down."""


class LegacyLedgerError(ParameterError):
    """A format-1 (un-keyed) ledger: read and verified, never spent on."""


class PolicyError(ParameterError):
    """A release policy is malformed; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[str], source: str = "the release policy"):
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"Invalid {source} ({len(self.problems)} problem"
                         f"{'s' if len(self.problems) != 1 else ''}):\n{lines}")


class UnknownDatasetError(ParameterError):
    """The dataset is not registered in the ledger."""

    def __init__(self, name: str, known: Sequence[str], location: str):
        self.name = name
        listed = ", ".join(repr(k) for k in known[:10]) or "none"
        super().__init__(
            f"Dataset {name!r} is not registered in the ledger {location} (registered: "
            f"{listed}). Register it first with its cap: dpsynth budget register {name} "
            "--data FILE --epsilon EPS --delta DELTA (or Ledger.register)."
        )


class PrivacyError(DpsynthError, ValueError):
    """The requested operation would break the privacy guarantee."""


class BudgetExceededError(PrivacyError):
    """A spend would cross the privacy budget cap; nothing was spent."""


class NotFittedError(DpsynthError, ValueError):
    """The synthesizer must be fitted before this call."""


class ModelFormatError(DpsynthError, ValueError):
    """A saved model cannot be loaded."""


class LedgerNotFoundError(DpsynthError, FileNotFoundError):
    """No ledger exists at the given location (and creating one was not asked for)."""


class GeneratorError(DpsynthError, RuntimeError):
    """The generator under audit failed: it raised, exited non-zero, timed out, or returned
    something other than a table with the training columns."""


def param_error(name: str, must: str, got: object, owner: str | None = None) -> ParameterError:
    """Build a :class:`ParameterError` in the project's single message form.

    >>> str(param_error("epsilon", "a float in (0, inf)", -1, "AIM"))
    "The 'epsilon' parameter of AIM must be a float in (0, inf). Got -1 instead."
    """
    where = f" of {owner}" if owner else ""
    return ParameterError(f"The {name!r} parameter{where} must be {must}. Got {got!r} instead.")


def raise_if_problems(problems: Iterable[object], owner: str) -> None:
    """Raise one :class:`ParameterError` listing every problem of ``owner``'s parameters."""
    problems = [str(p) for p in problems]
    if len(problems) == 1:
        raise ParameterError(problems[0])
    if problems:
        raise ParameterError(f"{len(problems)} invalid parameters of {owner}:\n"
                             + "\n".join(f"  - {p}" for p in problems))


class LedgerCorruptedError(DpsynthError, RuntimeError):
    """The ledger failed verification: it was edited, cut short, rolled back or rewritten."""

    def __init__(self, location: str, problems: Sequence[str]):
        self.problems = tuple(problems)
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(f"The privacy ledger {location} is corrupted: {problems[0]}{more}. "
                         "Nothing was spent; run `dpsynth budget verify` for every problem.")


class WitnessError(DpsynthError, ValueError):
    """A ledger's witness file cannot be trusted (forged, malformed, another ledger's)."""


__all__ = [
    "BudgetExceededError",
    "DataReadError",
    "DataValidationError",
    "DpsynthError",
    "GeneratorError",
    "LedgerAccessError",
    "LedgerCorruptedError",
    "LedgerNotFoundError",
    "LegacyLedgerError",
    "ModelFormatError",
    "NotFittedError",
    "ParameterError",
    "PolicyError",
    "PrivacyError",
    "SchemaError",
    "UnknownDatasetError",
    "WitnessError",
    "param_error",
    "raise_if_problems",
]
