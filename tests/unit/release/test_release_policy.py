"""The release policy: YAML form, validation with every problem at once, and the decision."""

from __future__ import annotations

import pytest

from dpsynth.errors import ParameterError
from dpsynth.release import DEFAULT_POLICY, Check, PolicyError, ReleasePolicy
from dpsynth.release.policy import resolve_policy


def _checks(privacy: bool = True, fidelity: bool = True, utility: bool | None = True):
    return [Check("attack:dcr_membership", "privacy", -0.01 if privacy else 0.3, 0.05, privacy,
                  "lower end <= 0.05"),
            Check("fidelity:tvd_2way", "fidelity", 0.1 if fidelity else 0.6, 0.25, fidelity,
                  "<= 0.25"),
            Check("utility:tstr_trtr_ratio", "utility", 0.9 if utility is not False else 0.3,
                  0.8, utility, ">= 0.8")]


def test_yaml_round_trip_and_file(tmp_path):
    policy = ReleasePolicy(max_attack_risk=0.1, max_tvd_2way=None, max_attempts=3)
    assert ReleasePolicy.from_dict(policy.to_dict()) == policy
    path = tmp_path / "policy.yaml"
    path.write_text(policy.to_yaml())
    assert ReleasePolicy.load(path) == policy
    assert resolve_policy(path) == policy
    assert resolve_policy(None) == DEFAULT_POLICY


def test_partial_file_keeps_defaults(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("utility:\n  min_ratio: 0.5\n")
    policy = ReleasePolicy.load(path)
    assert policy.min_utility_ratio == 0.5
    assert policy.max_tvd_2way == DEFAULT_POLICY.max_tvd_2way


def test_every_problem_reported_at_once(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("version: 1\nprivacy:\n  max_attack_risk: -1\n  confidense: 0.9\n"
                    "fidelity:\n  max_tvd_2way: two\nmax_attempts: 0\nshiny: true\n")
    with pytest.raises(PolicyError) as info:
        ReleasePolicy.load(path)
    text = str(info.value)
    assert str(path) in text
    # unknown keys are reported first, with the allowed ones
    assert "privacy.confidense" in text and "shiny" in text and "allowed" in text
    assert isinstance(info.value, ParameterError)


def test_bad_values_all_listed():
    with pytest.raises(PolicyError) as info:
        ReleasePolicy.from_dict({"privacy": {"max_attack_risk": -1, "confidence": 1.5},
                                 "fidelity": {"max_tvd_2way": "two"}, "max_attempts": 0})
    problems = info.value.problems
    assert len(problems) >= 4
    assert any("privacy.max_attack_risk" in p for p in problems)
    assert any("fidelity.max_tvd_2way" in p and "'two'" in p for p in problems)
    assert any("max_attempts" in p for p in problems)


@pytest.mark.parametrize("text", ["- a list\n", "version: 2\n", "privacy: 3\n", "a: [\n"])
def test_malformed_files(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError):
        ReleasePolicy.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(PolicyError, match="not found"):
        ReleasePolicy.load(tmp_path / "nope.yaml")


def test_ship_when_everything_passes():
    decision = DEFAULT_POLICY.decide(_checks(), attempt=1)
    assert decision.outcome == "ship"


def test_leak_rejects_even_with_attempts_left():
    decision = DEFAULT_POLICY.decide(_checks(privacy=False), attempt=1)
    assert decision.outcome == "reject"
    assert "privacy" in decision.reasons[0]
    assert decision.failed("privacy")


def test_quality_failure_regenerates_then_rejects():
    policy = ReleasePolicy(max_attempts=2)
    first = policy.decide(_checks(fidelity=False), attempt=1)
    assert first.outcome == "regenerate"
    assert any("attempt 2 of 2" in r for r in first.reasons)
    last = policy.decide(_checks(utility=False), attempt=2)
    assert last.outcome == "reject"
    assert any("after 2 attempts" in r for r in last.reasons)
    assert ReleasePolicy(max_attempts=1).decide(_checks(fidelity=False), 1).outcome == "reject"


def test_unchecked_utility_ships_and_says_so():
    decision = DEFAULT_POLICY.decide(_checks(utility=None), attempt=1)
    assert decision.outcome == "ship"
    assert any("not checked" in r for r in decision.reasons)
