"""Exceptions raised by dpsynth.

Every exception subclasses :class:`DpsynthError` and one built-in type, so code that already
catches ``ValueError`` or ``TypeError`` keeps working::

    DpsynthError(Exception)
    ├── SchemaError(ValueError)          the schema itself is malformed
    ├── DataValidationError(ValueError)  a table does not match its schema (lists every problem)
    ├── DataReadError(ValueError)        a file cannot be read as a table
    ├── ParameterError(ValueError)       a parameter has a bad value (epsilon <= 0, ...)
    ├── PrivacyError(ValueError)         the operation would leak: data read without budget, ...
    │   └── BudgetExceededError          a spend would cross the budget cap
    ├── NotFittedError(ValueError)       sample/save called before fit
    └── ModelFormatError(ValueError)     a saved model is missing, corrupt or of another version
"""

from __future__ import annotations

from collections.abc import Iterable


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


class PrivacyError(DpsynthError, ValueError):
    """The requested operation would break the privacy guarantee."""


class BudgetExceededError(PrivacyError):
    """A spend would cross the privacy budget cap; nothing was spent."""


class NotFittedError(DpsynthError, ValueError):
    """The synthesizer must be fitted before this call."""


class ModelFormatError(DpsynthError, ValueError):
    """A saved model cannot be loaded."""


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


__all__ = [
    "BudgetExceededError",
    "DataReadError",
    "DataValidationError",
    "DpsynthError",
    "ModelFormatError",
    "NotFittedError",
    "ParameterError",
    "PrivacyError",
    "SchemaError",
    "param_error",
    "raise_if_problems",
]
