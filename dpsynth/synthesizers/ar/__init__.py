"""An autoregressive DP-SGD table model (``dpar``): tokens, network, training, sampling.

Importing this package registers :class:`DPARSynthesizer` under the name ``"dpar"``.
"""

from __future__ import annotations

from dpsynth.synthesizers.ar.synthesizer import DPARSynthesizer

__all__ = ["DPARSynthesizer"]
