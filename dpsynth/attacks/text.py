"""Reproduction audits for synthetic text: verbatim, near-verbatim and PII copies.

Language models memorise and regurgitate training text (Carlini et al., "Extracting Training
Data from Large Language Models", USENIX Security 2021), the more so the more often a string
repeats (Kandpal et al., "Deduplicating Training Data Mitigates Privacy Risks in Language
Models", ICML 2022). These audits read only the synthetic text, the training text and a
holdout the generator never saw (pure Python and NumPy; no model needed):

* :func:`copy_attacks`: exact copies of training records, the longest substring each
  synthetic record shares with the training text (Carlini et al. 2021 count 50-token copies),
  near-verbatim copies (a normalised similarity of at least ``near``, via :mod:`difflib`) and
  the share of synthetic word n-grams found in the training text. Each rate is measured
  against a random subset of the training records the size of the holdout, and against the
  holdout itself: text the population writes anyway (greetings, boilerplate) is copied from
  the holdout as often, so only the excess points at memorisation.
* :func:`pii_attack`: e-mail addresses, phone numbers and URLs present in the training
  text that reappear in the synthetic text, against those of the holdout only.

Both return :class:`~dpsynth.attacks.result.AttackResult` objects scored by
:func:`~dpsynth.attacks.result.score_attack`, the rule of every tabular attack: a leak when the
lower end of the risk interval, ``(attack - control) / (1 - control)``, exceeds the threshold.
The naive baseline of a text attack is its control arm (what the population's text alone
gives). :func:`verbatim_reproduction` and :func:`pii_reproduction` return the measurements only.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.attacks.result import AttackResult, check_rule, exposed_ids, score_attack
from dpsynth.attacks.stats import wilson_interval
from dpsynth.attacks.threat import ThreatModel
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


@dataclass(frozen=True, eq=False)
class TextData:
    """The records of one free-text column in their roles (an audit's text tables).

    ``train`` are the generator's training records (targets), ``holdout`` records of the same
    population it never saw (controls), ``synthetic`` its output; ``ids`` name the training
    records (row ids, never values) in the results.
    """

    column: str
    train: tuple[str, ...]
    holdout: tuple[str, ...]
    synthetic: tuple[str, ...]
    ids: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        problems = [f"the {role} text needs at least 1 record" for role, x in
                    (("train", self.train), ("synthetic", self.synthetic),
                     ("holdout", self.holdout)) if not x]
        if problems:
            raise DataValidationError(problems)
        if not self.ids:
            object.__setattr__(self, "ids", tuple(range(len(self.train))))

    @classmethod
    def of(cls, train: Sequence[Any], holdout: Sequence[Any], synthetic: Sequence[Any], *,
           column: str = "text", ids: Sequence[Any] = ()) -> TextData:
        """From sequences of texts (missing values read as empty text)."""
        return cls(column, tuple(_texts(train)), tuple(_texts(holdout)),
                   tuple(_texts(synthetic)), tuple(ids))

    @classmethod
    def from_frames(cls, train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                    column: str) -> TextData:
        """The ``column`` of three tables; the training table's index names the records."""
        return cls.of(train[column].tolist(), holdout[column].tolist(),
                      synthetic[column].tolist(), column=column, ids=tuple(train.index))


#: The copy measures :func:`copy_attacks` scores, in the order of its results.
COPY_MEASURES = ("exact", "long_copy", "near_verbatim")


def copy_attacks(data: TextData, *, min_length: int = 40, near: float = 0.9, ngram: int = 4,
                 index_n: int = 8, threshold: float = 0.05, confidence: float = 0.95,
                 random_state: int | np.random.Generator | None = 0
                 ) -> tuple[ReproductionReport, tuple[AttackResult, ...]]:
    """Verbatim and near-verbatim copies of training text in the synthetic text.

    Each synthetic record is compared with a random subset of the training records the size of
    the holdout (the attack) and with the holdout itself (the control): the two outcomes of one
    synthetic record form a pair, scored by :func:`~dpsynth.attacks.result.score_attack` with
    the paired Newcombe interval. One :class:`AttackResult` per measure of
    :data:`COPY_MEASURES` (``text_exact``, ``text_long_copy``, ``text_near_verbatim``), and the
    measurements as a :class:`ReproductionReport`.

    Parameters
    ----------
    data:
        The column's training, holdout and synthetic records.
    min_length:
        A *long copy* shares a substring of at least this many characters with one record.
    near:
        A *near-verbatim* copy has a :class:`difflib.SequenceMatcher` ratio of at least
        ``near`` with one record (case and spacing ignored).
    ngram:
        Word n-gram length of the overlap rate (a measurement, not an attack).
    index_n:
        Character n-gram length of the substring index (shorter common substrings count 0).
    threshold, confidence:
        The verdict rule (see :mod:`dpsynth.attacks.result`).
    """
    if not isinstance(min_length, int) or min_length < index_n:
        raise param_error("min_length", f"an integer >= index_n ({index_n})", min_length,
                          "copy_attacks")
    if not 0 < near <= 1:
        raise param_error("near", "a float in (0, 1]", near, "copy_attacks")
    check_rule(threshold, confidence, "copy_attacks")
    train_t, syn_t, hold_t = list(data.train), list(data.synthetic), list(data.holdout)
    rng = np.random.default_rng(random_state)
    size = min(len(train_t), len(hold_t))
    matched = [train_t[i] for i in np.sort(rng.choice(len(train_t), size, replace=False))]
    control = [hold_t[i] for i in np.sort(rng.choice(len(hold_t), size, replace=False))]
    a, c = (_arm(syn_t, ref, min_length=min_length, near=near, ngram=ngram, n=index_n)
            for ref in (matched, control))
    report = _reproduction_report(train_t, syn_t, a, c, size=size, min_length=min_length,
                                  near=near, index_n=index_n)
    copied = {_normalise(t) for t in syn_t} - {""}
    exposed = exposed_ids(data.ids, np.flatnonzero([_normalise(t) in copied for t in train_t]))
    threat = ThreatModel.reproduction(data.column, len(syn_t))
    figures = {"n_compared": size, "exact_rate_full": report.exact_rate_full,
               "mean_lcs": report.mean_lcs, "max_lcs": report.max_lcs}
    results = tuple(
        score_attack(f"text_{measure}", threat, a[key], c[key], c[key], threshold=threshold,
                     confidence=confidence, paired=True, metrics={**figures, **extra},
                     exposed_row_ids=exposed if measure == "exact" else ())
        for measure, key, extra in (("exact", "exact", {}),
                                    ("long_copy", "long", {"min_length": min_length}),
                                    ("near_verbatim", "near", {"near": near})))
    return report, results


def _reproduction_report(train_t: list[str], syn_t: list[str], a: dict[str, np.ndarray],
                         c: dict[str, np.ndarray], *, size: int, min_length: int, near: float,
                         index_n: int) -> ReproductionReport:
    """The measurements of both arms, and the longest copies against the whole training text."""
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


def verbatim_reproduction(train: Sequence[str], synthetic: Sequence[str],
                          holdout: Sequence[str], *, min_length: int = 40, near: float = 0.9,
                          ngram: int = 4, index_n: int = 8,
                          random_state: int | np.random.Generator | None = 0
                          ) -> ReproductionReport:
    """The measurements of :func:`copy_attacks` alone, from sequences of texts."""
    data = TextData.of(train, holdout, synthetic)
    return copy_attacks(data, min_length=min_length, near=near, ngram=ngram, index_n=index_n,
                        random_state=random_state)[0]


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


def pii_attack(data: TextData, *, patterns: Mapping[str, str] = PII_PATTERNS,
               threshold: float = 0.05, confidence: float = 0.95
               ) -> tuple[PIIReport, AttackResult]:
    """PII-like strings (e-mails, phones, URLs) of the training text reproduced in the synthetic.

    The targets are the distinct strings found in the training text only, the controls those
    found in the holdout only; a hit is a string the synthetic text contains. Strings found in
    both are population-wide (a public hotline) and left out of both arms. The two arms are
    independent (Newcombe's unpaired interval); the result is named ``text_pii``.
    """
    if not patterns:
        raise param_error("patterns", "a non-empty mapping of name to regex", patterns,
                          "pii_reproduction")
    check_rule(threshold, confidence, "pii_attack")
    in_train = extract_pii(data.train, patterns)
    in_hold = extract_pii(data.holdout, patterns)
    joined = "\x00".join(data.synthetic)
    arms: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for kind in patterns:
        own = sorted(in_train[kind] - in_hold[kind])
        other = sorted(in_hold[kind] - in_train[kind])
        arms[kind] = (np.array([x in joined for x in own], dtype=bool),
                      np.array([x in joined for x in other], dtype=bool))
    report = PIIReport({k: int(h.size) for k, (h, _) in arms.items()},
                       {k: int(h.sum()) for k, (h, _) in arms.items()},
                       {k: int(c.size) for k, (_, c) in arms.items()},
                       {k: int(c.sum()) for k, (_, c) in arms.items()})
    hits = np.concatenate([h for h, _ in arms.values()])
    control = np.concatenate([c for _, c in arms.values()])
    threat = ThreatModel.reproduction(data.column, hits.size)
    metrics: dict[str, float | int | str | None] = {
        **{f"found_{k}": n for k, n in report.found.items()},
        **{f"reproduced_{k}": n for k, n in report.reproduced.items()},
        "n_controls": int(control.size)}
    result = score_attack("text_pii", threat, hits, control, control, threshold=threshold,
                          confidence=confidence, metrics=metrics)
    return report, result


def pii_reproduction(train: Sequence[str], synthetic: Sequence[str], holdout: Sequence[str],
                     *, patterns: Mapping[str, str] = PII_PATTERNS) -> PIIReport:
    """The counts of :func:`pii_attack` alone, from sequences of texts."""
    return pii_attack(TextData.of(train, holdout, synthetic), patterns=patterns)[0]


__all__ = [
    "COPY_MEASURES",
    "PII_PATTERNS",
    "Comparison",
    "PIIReport",
    "ReproductionReport",
    "SubstringIndex",
    "TextData",
    "copy_attacks",
    "extract_pii",
    "longest_common_substrings",
    "pii_attack",
    "pii_reproduction",
    "verbatim_reproduction",
]
