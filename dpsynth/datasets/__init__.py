"""Bundled real datasets with declared public schemas."""

from dpsynth.datasets._loaders import DATASETS, load_dataset, load_schema

__all__ = ["DATASETS", "load_dataset", "load_schema"]
