"""Threat models and the audit's data, kept apart from the attacks that use them.

A :class:`ThreatModel` says what the attacker has (the synthetic data; reference rows from the
same population; a target's full or partial record) and which records it attacks (random
training rows, or the most vulnerable ones), following the separation of TAPAS (Houssiau et al.,
"TAPAS: a Toolbox for Adversarial Privacy Auditing of Synthetic Data", NeurIPS 2022 workshop).

:class:`AuditData` holds the tables an auditor is handed, each in its role: the training rows
(*targets*), a holdout never used for training (*controls*), the synthetic rows, and optional
reference rows. It codes them once (:class:`~dpsynth.attacks.distance.MixedEncoder`) so that
every attack reuses the same distances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dpsynth.attacks.distance import MixedEncoder, NeighbourIndex, audited_kinds
from dpsynth.errors import DataValidationError, ParameterError, param_error
from dpsynth.schema import Schema

if TYPE_CHECKING:
    from dpsynth.attacks.singling_out import SortedColumns

GOALS = ("membership", "singling_out", "linkability", "attribute_inference", "reproduction")
KNOWLEDGE = {
    "synthetic": "the synthetic data",
    "reference": "reference rows from the same population, not used for training",
    "target_record": "each target's full record",
    "partial_record": "each target's record without its secret column",
    "split_record": "each target's columns, split between two auxiliary sources",
    "generator": "the generator itself, to retrain on datasets of its choice",
    "generator_family": "which family of generator made the data (e.g. MST or AIM)",
    "model_scores": "the fitted model's loss on any record",
    "public_model": "the public checkpoint the model was fine-tuned from",
}
TARGETS = ("random", "vulnerable", "canary")


@dataclass(frozen=True)
class ThreatModel:
    """What the attacker has, and whom it attacks.

    Parameters
    ----------
    goal:
        ``membership``, ``singling_out``, ``linkability``, ``attribute_inference`` or
        ``reproduction`` (synthetic records that copy training records or their PII).
    knowledge:
        Keys of :data:`KNOWLEDGE` the attacker holds; ``synthetic`` is always among them.
    targets:
        ``random`` training records, or the most ``vulnerable`` ones (Meeus et al. 2023).
    n_targets:
        Number of training records attacked (and as many controls), or predicates tried
        for singling-out. Fewer when the tables are smaller.
    secret:
        The column to infer (attribute inference), or the free-text column attacked (text
        attacks).
    aux_columns:
        The two auxiliary sources' columns (linkability); ``None`` lets the attack split the
        columns at random.
    """

    goal: str
    knowledge: tuple[str, ...] = ("synthetic",)
    targets: str = "random"
    n_targets: int = 2000
    secret: str | None = None
    aux_columns: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "knowledge", tuple(self.knowledge))
        if self.aux_columns is not None:
            object.__setattr__(self, "aux_columns", tuple(tuple(s) for s in self.aux_columns))
        problems = self._problems()
        if problems:
            raise ParameterError(" ".join(problems))

    def _problems(self) -> list[str]:
        owner = "ThreatModel"
        out = []
        if self.goal not in GOALS:
            out.append(str(param_error("goal", f"one of {GOALS}", self.goal, owner)))
        if "synthetic" not in self.knowledge or not set(self.knowledge) <= set(KNOWLEDGE):
            out.append(str(param_error("knowledge", f"'synthetic' plus keys of {list(KNOWLEDGE)}",
                                       self.knowledge, owner)))
        if self.targets not in TARGETS:
            out.append(str(param_error("targets", f"one of {TARGETS}", self.targets, owner)))
        if not isinstance(self.n_targets, (int, np.integer)) or self.n_targets < 1:
            out.append(str(param_error("n_targets", "an integer >= 1", self.n_targets, owner)))
        if self.goal == "attribute_inference" and not self.secret:
            out.append(str(param_error("secret", "a column name for attribute inference",
                                       self.secret, owner)))
        if self.aux_columns is not None and (len(self.aux_columns) != 2 or not all(
                self.aux_columns) or set(self.aux_columns[0]) & set(self.aux_columns[1])):
            out.append(str(param_error("aux_columns", "two non-empty, disjoint column lists",
                                       self.aux_columns, owner)))
        return out

    # -- the usual threat models ------------------------------------------------------------
    @classmethod
    def membership(cls, n_targets: int = 2000, *, reference: bool = False,
                   targets: str = "random") -> ThreatModel:
        """Membership inference from the synthetic data (plus reference rows if ``reference``)."""
        knowledge = ("synthetic", "target_record") + (("reference",) if reference else ())
        return cls("membership", knowledge, targets, n_targets)

    @classmethod
    def singling_out(cls, n_predicates: int = 500) -> ThreatModel:
        return cls("singling_out", ("synthetic",), "random", n_predicates)

    @classmethod
    def linkability(cls, aux_columns: Sequence[Sequence[str]] | None = None,
                    n_targets: int = 2000) -> ThreatModel:
        aux = None if aux_columns is None else (tuple(aux_columns[0]), tuple(aux_columns[1]))
        return cls("linkability", ("synthetic", "split_record"), "random", n_targets,
                   aux_columns=aux)

    @classmethod
    def attribute_inference(cls, secret: str, n_targets: int = 2000) -> ThreatModel:
        return cls("attribute_inference", ("synthetic", "partial_record"), "random", n_targets,
                   secret=secret)

    @classmethod
    def reproduction(cls, column: str, n_targets: int) -> ThreatModel:
        """Copies of the free-text ``column``'s training records read off the synthetic data."""
        return cls("reproduction", ("synthetic",), "random", max(1, int(n_targets)),
                   secret=column)

    # -- description ------------------------------------------------------------------------
    def describe(self) -> str:
        """One plain sentence for reports."""
        has = " and ".join(KNOWLEDGE[k] for k in self.knowledge)
        whom = {"vulnerable": "the most vulnerable (outlying) training records",
                "canary": "crafted canary records"}.get(self.targets, "random training records")
        aims = {
            "membership": f"tells whether {whom} were in the training data",
            "singling_out": "writes predicates that isolate exactly one training record",
            "linkability": f"links the two halves of {whom} through the synthetic data",
            "attribute_inference": f"infers the column {self.secret!r} of {whom}",
            "reproduction": f"finds training text of the column {self.secret!r} copied into "
                            "the synthetic records",
        }
        if self.secret is not None and self.goal == "membership":
            aims["membership"] += f" (text column {self.secret!r})"
        tries = (f"up to {self.n_targets} predicates, each also tried on the control table"
                 if self.goal == "singling_out" else
                 f"{self.n_targets} targets, each also sought among holdout records"
                 if self.goal == "reproduction" else
                 f"up to {self.n_targets} targets, each matched by a control record")
        return f"Knows {has}; {aims[self.goal]} ({tries})."

    def to_dict(self) -> dict[str, Any]:
        return {
            "goal": self.goal, "knowledge": list(self.knowledge), "targets": self.targets,
            "n_targets": int(self.n_targets), "secret": self.secret,
            "aux_columns": None if self.aux_columns is None else [list(c) for c in
                                                                  self.aux_columns],
            "description": self.describe(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThreatModel:
        aux = data.get("aux_columns")
        return cls(goal=str(data["goal"]), knowledge=tuple(data.get("knowledge", ("synthetic",))),
                   targets=str(data.get("targets", "random")),
                   n_targets=int(data.get("n_targets", 2000)), secret=data.get("secret"),
                   aux_columns=None if aux is None else (tuple(aux[0]), tuple(aux[1])))


@dataclass(frozen=True, eq=False)
class Part:
    """One table in its role: column values (numbers or category codes), row ids, and the
    embedding (:attr:`x`, computed on first use; :meth:`embed` codes only the rows asked for
    until then, so a large training table sampled for targets is never embedded whole)."""

    values: np.ndarray
    ids: tuple[Any, ...]
    encoder: MixedEncoder

    def __len__(self) -> int:
        return len(self.values)

    @cached_property
    def x(self) -> np.ndarray:
        """The embedding of every row."""
        return self.encoder.embed(self.values)

    def embed(self, rows: np.ndarray) -> np.ndarray:
        """The embedding of ``rows`` (the same numbers as ``x[rows]``)."""
        if "x" in self.__dict__:
            return np.asarray(self.__dict__["x"][rows])
        return self.encoder.embed(self.values[rows])

    @cached_property
    def index(self) -> NeighbourIndex:
        """Nearest-neighbour index over the embedding (built on first use, then shared)."""
        return NeighbourIndex(self.x)

    @cached_property
    def sorted_columns(self) -> SortedColumns:
        """The values' columns sorted once, for predicate counts (built on first use)."""
        from dpsynth.attacks.singling_out import SortedColumns

        return SortedColumns(self.values)

    def take(self, rows: np.ndarray) -> Part:
        part = Part(self.values[rows], tuple(self.ids[i] for i in rows), self.encoder)
        if "x" in self.__dict__:
            part.__dict__["x"] = self.__dict__["x"][rows]
        return part


@dataclass(frozen=True, eq=False)
class AuditData:
    """The tables of an audit, coded once for every attack.

    Build it with :meth:`from_frames`. ``train`` rows are the attack targets, ``control`` rows
    (the holdout) are attacked the same way to measure what the population alone reveals.
    """

    encoder: MixedEncoder
    train: Part
    control: Part
    synthetic: Part
    reference: Part | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return self.encoder.columns

    @property
    def kinds(self) -> dict[str, str]:
        return {c.name: c.kind for c in self.encoder.codings_}

    @classmethod
    def from_frames(cls, train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame,
                    *, schema: Schema | None = None,
                    reference: pd.DataFrame | None = None) -> AuditData:
        """Check the tables, pick the audited columns and code them.

        Identifier and free-text columns are left out. Without a ``schema``, column kinds
        come from the training table's dtypes. Raises :class:`DataValidationError` listing
        every problem.
        """
        frames = {"train": train, "holdout": holdout, "synthetic": synthetic}
        if reference is not None:
            frames["reference"] = reference
        problems = [f"the {role} table must be a pandas DataFrame with at least 2 rows"
                    for role, f in frames.items()
                    if not isinstance(f, pd.DataFrame) or len(f) < 2]
        if problems:
            raise DataValidationError(problems)
        kinds = audited_kinds(train, schema)
        if not kinds:
            problems.append("no column can be audited (only identifiers or free text)")
        for role, frame in frames.items():
            missing = [c for c in kinds if c not in frame.columns]
            if missing:
                problems.append(f"the {role} table lacks audited columns {missing}")
        if problems:
            raise DataValidationError(problems)
        encoder = MixedEncoder(kinds, schema).fit(list(frames.values()))
        parts = {role: _part(encoder, frame) for role, frame in frames.items()}
        return cls(encoder, parts["train"], parts["holdout"], parts["synthetic"],
                   parts.get("reference"))

    def balanced_targets(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Random training and control rows, as many of each: ``min(n, len(train), len(control))``.

        Equal numbers keep the two arms exchangeable when the synthetic data does not leak.
        """
        m = int(min(n, len(self.train), len(self.control)))
        members = np.sort(rng.choice(len(self.train), size=m, replace=False))
        controls = np.sort(rng.choice(len(self.control), size=m, replace=False))
        return members, controls

    def with_reference(self, rng: np.random.Generator) -> AuditData:
        """This data with reference rows: the given ones, or half of the holdout.

        When no reference table was given, the holdout is split at random into reference rows
        (the attacker's) and controls, so no control row is also reference.
        """
        if self.reference is not None:
            return self
        order = rng.permutation(len(self.control))
        half = len(order) // 2
        return replace(self, reference=self.control.take(np.sort(order[:half])),
                       control=self.control.take(np.sort(order[half:])))


def _part(encoder: MixedEncoder, frame: pd.DataFrame) -> Part:
    values = encoder.values(frame)
    return Part(values, tuple(frame.index), encoder)
