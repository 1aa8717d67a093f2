"""DP synthetic text: a language model fine-tuned with DP-SGD (see :mod:`.synthesizer`).

Importing this package registers the ``dptext`` and ``dptext-table`` synthesizers.
"""

from dpsynth.synthesizers.text.synthesizer import DPTextSynthesizer
from dpsynth.synthesizers.text.tabular import TabularTextSynthesizer

__all__ = ["DPTextSynthesizer", "TabularTextSynthesizer"]
