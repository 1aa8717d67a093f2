"""Marginal-based synthesizers for tables: AIM (the default for tables) and MST.

Both measure noisy marginals with the Gaussian mechanism, fit a graphical model consistent
with them (Private-PGM: junction tree and mirror descent, in numpy) and sample from it.
Numeric columns are binned on their declared or DP-discovered bounds, nulls are their own
value, and values that the noisy one-way marginals show to be rare are merged.
"""

from dpsynth.synthesizers.marginal.aim import AIMSynthesizer
from dpsynth.synthesizers.marginal.common import MarginalSynthesizer
from dpsynth.synthesizers.marginal.mst import MSTSynthesizer

__all__ = ["AIMSynthesizer", "MSTSynthesizer", "MarginalSynthesizer"]
