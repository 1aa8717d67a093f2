"""Reproduction audits for synthetic text: verbatim, near-verbatim and PII copies.

Language models memorise and regurgitate training text (Carlini et al., "Extracting Training
Data from Large Language Models", USENIX Security 2021), the more so the more often a string
repeats (Kandpal et al., "Deduplicating Training Data Mitigates Privacy Risks in Language
Models", ICML 2022). These audits read only the synthetic text, the training text and a
holdout the generator never saw (pure Python and NumPy; no model needed):

* :func:`verbatim_reproduction`: exact copies of training records, the longest substring each
  synthetic record shares with the training text (Carlini et al. 2021 count 50-token copies),
  near-verbatim copies (a normalised similarity of at least ``near``, via :mod:`difflib`) and
  the share of synthetic word n-grams found in the training text. Each rate is measured
  against a random subset of the training records the size of the holdout, and against the
  holdout itself: text the population writes anyway (greetings, boilerplate) is copied from
  the holdout as often, so only the excess points at memorisation.
* :func:`pii_reproduction`: e-mail addresses, phone numbers and URLs present in the training
  text that reappear in the synthetic text, against those of the holdout only.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dpsynth.attacks.result import wilson_interval
from dpsynth.errors import DataValidationError, param_error

#: Regular expressions of the PII-like strings :func:`pii_reproduction` looks for.
PII_PATTERNS: Mapping[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "phone": r"(?<!\w)(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{3}\)|\d{3})[\s.-]?\d{3}[\s.-]?\d{4}(?!\w)",
    "url": r"https?://[^\s\"'<>]+",
}
_MAX_CANDIDATE_SHARE = 0.3


def _normalise(text: str) -> str:
    return " ".join(str(text).casefold().split())


def _texts(values: Sequence[Any]) -> list[str]:
    return ["" if v is None or (isinstance(v, float) and v != v) else str(v) for v in values]


# -- longest common substring -----------------------------------------------------------------
class SubstringIndex:
    """Character ``n``-gram index over a corpus, for exact longest-common-substring queries.

    A common substring of length at least ``n`` contains a shared ``n``-gram, so only records
    sharing one are searched; matches shorter than ``n`` are reported as 0.
    """

    def __init__(self, corpus: Sequence[str], n: int = 8):
        if not isinstance(n, int) or n < 2:
            raise param_error("n", "an integer >= 2", n, "SubstringIndex")
        self.n = n
        self.corpus = [str(t) for t in corpus]
        self.joined = "\x00".join(self.corpus)
        postings: dict[str, set[int]] = defaultdict(set)
        for i, text in enumerate(self.corpus):
            for j in range(len(text) - n + 1):
                postings[text[j:j + n]].add(i)
        self.postings = postings

    def candidates(self, text: str) -> set[int]:
        """Records sharing at least one ``n``-gram with ``text``."""
        out: set[int] = set()
        for j in range(len(text) - self.n + 1):
            out |= self.postings.get(text[j:j + self.n], set())
        return out

    def longest(self, text: str) -> tuple[int, set[int]]:
        """Length of the longest substring of ``text`` found in the corpus, and the candidates."""
        found = self.candidates(text)
        if not found:
            return 0, found
        haystack = (self.joined if len(found) > _MAX_CANDIDATE_SHARE * len(self.corpus)
                    else "\x00".join(self.corpus[i] for i in found))
        best, i = 0, 0
        while i + best < len(text):  # matching statistics, one substring query per move
            if text[i:i + best + 1] in haystack:
                best += 1
            else:
                i += 1
        return (best if best >= self.n else 0), found


def longest_common_substrings(synthetic: Sequence[str], corpus: Sequence[str], *,
                              n: int = 8) -> np.ndarray:
    """For each synthetic text, the longest substring (characters) it shares with ``corpus``."""
    index = SubstringIndex(_texts(corpus), n)
    return np.array([index.longest(t)[0] for t in _texts(synthetic)], dtype=int)


# -- verbatim reproduction --------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """A rate on the training text beside the same rate on the holdout (the control)."""

    train: float
    control: float
    train_ci: tuple[float, float]
    control_ci: tuple[float, float]

    @classmethod
    def of(cls, hits: np.ndarray, control_hits: np.ndarray) -> Comparison:
        return cls(float(np.mean(hits)) if hits.size else 0.0,
                   float(np.mean(control_hits)) if control_hits.size else 0.0,
                   wilson_interval(int(np.sum(hits)), hits.size),
                   wilson_interval(int(np.sum(control_hits)), control_hits.size))

    @property
    def excess(self) -> float:
        return self.train - self.control


@dataclass(frozen=True)
class ReproductionReport:
    """What :func:`verbatim_reproduction` found (rates are shares of synthetic records)."""

    n_synthetic: int
    n_compared: int
    min_length: int
    near: float
    exact_rate_full: float
    exact: Comparison
    long_copy: Comparison
    near_verbatim: Comparison
    ngram_overlap: Comparison
    mean_lcs: float
    max_lcs: int
    longest_copies: tuple[int, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["longest_copies"] = list(self.longest_copies)
        return out


def _word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _normalise(text).split()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def _near_hits(synthetic: list[str], index: SubstringIndex, found: list[set[int]],
               near: float) -> np.ndarray:
    hits = np.zeros(len(synthetic), dtype=bool)
    for k, (text, cands) in enumerate(zip(synthetic, found, strict=True)):
        a = _normalise(text)
        for i in cands:
            matcher = difflib.SequenceMatcher(None, a, _normalise(index.corpus[i]),
                                              autojunk=False)
            if matcher.real_quick_ratio() >= near and matcher.quick_ratio() >= near \
                    and matcher.ratio() >= near:
                hits[k] = True
                break
    return hits


def _arm(synthetic: list[str], reference: list[str], *, min_length: int, near: float,
         ngram: int, n: int) -> dict[str, np.ndarray]:
    """Per-synthetic-record outcomes against one reference corpus."""
    index = SubstringIndex(reference, n)
    results = [index.longest(t) for t in synthetic]
    lcs = np.array([r[0] for r in results], dtype=int)
    exact_set = {_normalise(t) for t in reference}
    ref_grams: set[tuple[str, ...]] = set().union(*(_word_ngrams(t, ngram) for t in reference))
    syn_grams = [_word_ngrams(t, ngram) for t in synthetic]
    return {
        "lcs": lcs,
        "exact": np.array([bool(_normalise(t)) and _normalise(t) in exact_set
                           for t in synthetic]),
        "long": lcs >= min_length,
        "near": _near_hits(synthetic, index, [r[1] for r in results], near),
        "grams": np.array([g in ref_grams for grams in syn_grams for g in grams], dtype=bool),
    }


def verbatim_reproduction(train: Sequence[str], synthetic: Sequence[str],
                          holdout: Sequence[str], *, min_length: int = 40, near: float = 0.9,
                          ngram: int = 4, index_n: int = 8,
                          random_state: int | np.random.Generator | None = 0
                          ) -> ReproductionReport:
    """Verbatim and near-verbatim copies of training text in ``synthetic``, against a holdout.

    Parameters
    ----------
    train, synthetic, holdout:
        Training records, synthetic records, and records of the same population never used
        for training.
    min_length:
        A *long copy* shares a substring of at least this many characters with one record.
    near:
        A *near-verbatim* copy has a :class:`difflib.SequenceMatcher` ratio of at least
        ``near`` with one record (case and spacing ignored).
    ngram:
        Word n-gram length of the overlap rate.
    index_n:
        Character n-gram length of the substring index (shorter common substrings count 0).
    """
    train_t, syn_t, hold_t = _texts(train), _texts(synthetic), _texts(holdout)
    problems = [f"the {role} text needs at least 1 record" for role, x in
                (("train", train_t), ("synthetic", syn_t), ("holdout", hold_t)) if not x]
    if problems:
        raise DataValidationError(problems)
    if not isinstance(min_length, int) or min_length < index_n:
        raise param_error("min_length", f"an integer >= index_n ({index_n})", min_length,
                          "verbatim_reproduction")
    if not 0 < near <= 1:
        raise param_error("near", "a float in (0, 1]", near, "verbatim_reproduction")
    rng = np.random.default_rng(random_state)
    size = min(len(train_t), len(hold_t))
    matched = [train_t[i] for i in np.sort(rng.choice(len(train_t), size, replace=False))]
    control = [hold_t[i] for i in np.sort(rng.choice(len(hold_t), size, replace=False))]
    a, c = (_arm(syn_t, ref, min_length=min_length, near=near, ngram=ngram, n=index_n)
            for ref in (matched, control))
    full = {_normalise(t) for t in train_t}
    full_lcs = longest_common_substrings(syn_t, train_t, n=index_n)
    order = np.argsort(-full_lcs, kind="stable")[:10]
    return ReproductionReport(
        n_synthetic=len(syn_t), n_compared=size, min_length=min_length, near=near,
        exact_rate_full=float(np.mean([bool(_normalise(t)) and _normalise(t) in full
                                       for t in syn_t])),
        exact=Comparison.of(a["exact"], c["exact"]),
        long_copy=Comparison.of(a["long"], c["long"]),
        near_verbatim=Comparison.of(a["near"], c["near"]),
        ngram_overlap=Comparison.of(a["grams"], c["grams"]),
        mean_lcs=float(full_lcs.mean()), max_lcs=int(full_lcs.max(initial=0)),
        longest_copies=tuple(int(i) for i in order if full_lcs[i] > 0),
    )


# -- PII reproduction -------------------------------------------------------------------------
@dataclass(frozen=True)
class PIIReport:
    """Distinct PII-like strings of the training and holdout text found again in the synthetic.

    ``reproduced[kind]`` counts training strings (absent from the holdout) that the synthetic
    text contains; ``control_reproduced[kind]`` the same for holdout-only strings.
    """

    found: Mapping[str, int]
    reproduced: Mapping[str, int]
    control_found: Mapping[str, int]
    control_reproduced: Mapping[str, int]

    @property
    def rate(self) -> float:
        total = sum(self.found.values())
        return sum(self.reproduced.values()) / total if total else 0.0

    @property
    def control_rate(self) -> float:
        total = sum(self.control_found.values())
        return sum(self.control_reproduced.values()) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"found": dict(self.found), "reproduced": dict(self.reproduced),
                "control_found": dict(self.control_found),
                "control_reproduced": dict(self.control_reproduced), "rate": self.rate,
                "control_rate": self.control_rate}


def extract_pii(texts: Sequence[str], patterns: Mapping[str, str] = PII_PATTERNS
                ) -> dict[str, set[str]]:
    """Distinct matches of each pattern in ``texts``."""
    compiled = {k: re.compile(p) for k, p in patterns.items()}
    out: dict[str, set[str]] = {k: set() for k in patterns}
    for text in _texts(texts):
        for kind, regex in compiled.items():
            out[kind].update(m.group(0).rstrip(".,;:!?)") for m in regex.finditer(text))
    return out


def pii_reproduction(train: Sequence[str], synthetic: Sequence[str], holdout: Sequence[str],
                     *, patterns: Mapping[str, str] = PII_PATTERNS) -> PIIReport:
    """PII-like strings (e-mails, phones, URLs) of the training text reproduced in ``synthetic``.

    Strings found in both training and holdout text are population-wide (a public hotline)
    and left out of both arms.
    """
    if not patterns:
        raise param_error("patterns", "a non-empty mapping of name to regex", patterns,
                          "pii_reproduction")
    in_train, in_hold = extract_pii(train, patterns), extract_pii(holdout, patterns)
    joined = "\x00".join(_texts(synthetic))
    found, reproduced, c_found, c_reproduced = {}, {}, {}, {}
    for kind in patterns:
        own, other = in_train[kind] - in_hold[kind], in_hold[kind] - in_train[kind]
        found[kind], c_found[kind] = len(own), len(other)
        reproduced[kind] = sum(1 for s in own if s in joined)
        c_reproduced[kind] = sum(1 for s in other if s in joined)
    return PIIReport(found, reproduced, c_found, c_reproduced)


__all__ = [
    "PII_PATTERNS",
    "Comparison",
    "PIIReport",
    "ReproductionReport",
    "SubstringIndex",
    "extract_pii",
    "longest_common_substrings",
    "pii_reproduction",
    "verbatim_reproduction",
]
