import builtins
import importlib
import inspect
import re

import pytest

from dpsynth import errors

#: The built-in class each exception (or its nearest listed ancestor) also subclasses.
_BUILTIN = {"GeneratorError": RuntimeError, "LedgerNotFoundError": FileNotFoundError,
            "LedgerCorruptedError": RuntimeError}


def _classes() -> dict[str, type]:
    return {name: obj for name, obj in vars(errors).items()
            if inspect.isclass(obj) and issubclass(obj, BaseException)
            and obj.__module__ == errors.__name__}


def _tree() -> dict[str, tuple[str | None, str | None]]:
    """``name -> (parent, built-in)`` as drawn in the module docstring."""
    drawn: dict[str, tuple[str | None, str | None]] = {}
    stack: list[str] = []
    for line in errors.__doc__.splitlines():
        m = re.match(r"^    ((?:[│ ]   )*)(?:[├└]── )?(\w+Error)(?:\((\w+)\))?(?:\s|$)", line)
        if not m:
            continue
        depth = len(m.group(1)) // 4 + (1 if "── " in line else 0)
        del stack[depth:]
        drawn[m.group(2)] = (stack[-1] if stack else None, m.group(3))
        stack.append(m.group(2))
    return drawn


def test_message_form():
    assert str(errors.param_error("epsilon", "a float in (0, inf)", -1, "AIM")) == (
        "The 'epsilon' parameter of AIM must be a float in (0, inf). Got -1 instead.")


@pytest.mark.parametrize("name", [n for n in errors.__all__ if n.endswith("Error")
                                  and n != "DpsynthError"])
def test_every_error_is_a_dpsynth_error_and_a_builtin_one(name):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.DpsynthError)
    assert issubclass(cls, _BUILTIN.get(name, ValueError))


def test_validation_error_lists_every_problem():
    exc = errors.DataValidationError(["a", "b"])
    assert exc.problems == ("a", "b") and "2 problems" in str(exc)


def test_docstring_tree_lists_exactly_the_classes_defined():
    drawn = _tree()
    assert set(drawn) == set(_classes())
    assert set(drawn) <= set(errors.__all__)


@pytest.mark.parametrize("name", sorted(_classes()))
def test_docstring_tree_draws_each_class_under_its_parent(name):
    cls = _classes()[name]
    parent, builtin = _tree()[name]
    if parent is None:
        assert cls.__bases__ == (Exception,) and builtin == "Exception"
        return
    assert cls.__bases__[0] is getattr(errors, parent)
    if builtin is not None:
        assert cls.__bases__[1:] == (getattr(builtins, builtin),)
    else:
        assert len(cls.__bases__) == 1


@pytest.mark.parametrize(("module", "name"), [
    ("dpsynth.release.policy", "PolicyError"), ("dpsynth.release", "PolicyError"),
    ("dpsynth.accounting.ledger", "UnknownDatasetError"),
    ("dpsynth.accounting.ledger", "LedgerCorruptedError"),
    ("dpsynth.accounting._ledger_store", "LedgerNotFoundError"),
    ("dpsynth.attacks.generators", "GeneratorError"),
])
def test_moved_errors_are_still_importable_where_they_were(module, name):
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)
