"""DP synthetic text: a language model fine-tuned with DP-SGD (see :mod:`.synthesizer`).

Importing this package registers the ``dptext`` and ``dptext-table`` synthesizers, and
``dptext-pp`` (private prediction, no training: :mod:`.private_prediction`).
"""

from dpsynth.synthesizers.text.private_prediction import PrivatePredictionSynthesizer
from dpsynth.synthesizers.text.synthesizer import DPTextSynthesizer
from dpsynth.synthesizers.text.tabular import TabularTextSynthesizer

__all__ = ["DPTextSynthesizer", "PrivatePredictionSynthesizer", "TabularTextSynthesizer"]
