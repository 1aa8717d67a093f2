import pytest

from dpsynth import errors


def test_message_form():
    assert str(errors.param_error("epsilon", "a float in (0, inf)", -1, "AIM")) == (
        "The 'epsilon' parameter of AIM must be a float in (0, inf). Got -1 instead.")


@pytest.mark.parametrize("name", [n for n in errors.__all__ if n.endswith("Error")
                                  and n != "DpsynthError"])
def test_every_error_is_a_value_error_and_a_dpsynth_error(name):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.DpsynthError) and issubclass(cls, ValueError)


def test_validation_error_lists_every_problem():
    exc = errors.DataValidationError(["a", "b"])
    assert exc.problems == ("a", "b") and "2 problems" in str(exc)
