"""Attribute inference on categorical and numeric secrets, with known answers."""

import numpy as np
import pandas as pd
import pytest

from dpsynth.attacks import AuditData, ThreatModel, attribute_inference
from dpsynth.attacks.inference import _correct, _guess
from dpsynth.errors import ParameterError


def test_guess_is_majority_or_median_and_tolerance_counts():
    neighbours = np.array([[1.0, 2.0, 2.0], [3.0, 1.0, 3.0]])
    assert _guess(neighbours, categorical=True).tolist() == [2.0, 3.0]
    assert _guess(neighbours, categorical=False).tolist() == [2.0, 3.0]
    guess, truth = np.array([1.0, 5.0, np.nan, np.nan]), np.array([1.4, 6.0, np.nan, 1.0])
    assert _correct(guess, truth, False, 0.5).tolist() == [True, False, True, False]


def _population(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    noise = rng.normal(size=(n, 2))
    return pd.DataFrame({"x": x, "y": noise[:, 0], "z": noise[:, 1],
                         "secret": np.where(rng.random(n) < 0.5, "yes", "no"),
                         "amount": rng.gamma(2.0, 10.0, size=n)})


@pytest.mark.parametrize("secret", ["secret", "amount"])
def test_copy_reveals_the_secret_and_independent_sample_does_not(secret):
    train, holdout, other = _population(500, 1), _population(500, 2), _population(500, 3)
    leak = attribute_inference(AuditData.from_frames(train, holdout, train), secret=secret,
                               random_state=0)
    assert leak.success.value == 1.0 and leak.leak
    assert leak.metrics["secret_kind"] == ("categorical" if secret == "secret" else "numeric")
    safe = attribute_inference(AuditData.from_frames(train, holdout, other), secret=secret,
                               random_state=0)
    assert not safe.leak


def test_secret_predictable_from_the_population_is_not_a_leak():
    def table(n: int, seed: int) -> pd.DataFrame:
        frame = _population(n, seed)
        frame["secret"] = np.where(frame["x"] > 0, "pos", "neg")  # a population rule
        return frame[["x", "secret"]]

    train, holdout, other = table(500, 1), table(500, 2), table(500, 3)
    result = attribute_inference(AuditData.from_frames(train, holdout, other), secret="secret",
                                 random_state=0)
    assert result.success.value > 0.95 and result.control.value > 0.95
    assert not result.leak  # the control explains the success: inference, not a leak


def test_missing_numeric_secrets_count_as_guessed_when_both_missing():
    train = _population(300, 4)
    train.loc[train.index[:30], "amount"] = np.nan
    result = attribute_inference(AuditData.from_frames(train, _population(300, 5), train),
                                 secret="amount", random_state=0)
    assert result.success.value == 1.0


def test_attribute_inference_validates():
    frame = _population(30, 6)
    data = AuditData.from_frames(frame, frame, frame)
    with pytest.raises(ParameterError, match="'secret'"):
        attribute_inference(data)
    with pytest.raises(ParameterError) as info:
        attribute_inference(data, ThreatModel.attribute_inference("nope"), n_neighbors=0,
                            tolerance=3.0)
    assert all(n in str(info.value) for n in ("'secret'", "'n_neighbors'", "'tolerance'"))
    with pytest.raises(ParameterError, match="'threat.goal'"):
        attribute_inference(data, ThreatModel.membership())
