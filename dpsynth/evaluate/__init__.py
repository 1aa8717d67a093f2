"""Fidelity and utility metrics for synthetic data (no torch)."""

from dpsynth.evaluate.fidelity import average_tvd, discretize, fidelity_report, marginal_tvd
from dpsynth.evaluate.utility import tstr_auc

__all__ = ["average_tvd", "discretize", "fidelity_report", "marginal_tvd", "tstr_auc"]
