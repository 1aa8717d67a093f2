"""GPT-2's weight initialisation from a seeded generator, shared by dpsynth's transformers.

Radford et al. ("Language Models are Unsupervised Multitask Learners", 2019): linear and
embedding weights N(0, 0.02^2), the projections that write into the residual stream scaled by
``1 / sqrt(2 n_layers)``, zero biases, layer norms the identity. Drawn from a
``torch.Generator`` so no global RNG is touched.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def gpt2_init(model: nn.Module, seed: int, n_layers: int,
              residual_suffixes: tuple[str, ...]) -> None:
    """Initialise ``model`` in place; modules whose name ends in ``residual_suffixes`` get
    the scaled standard deviation."""
    gen = torch.Generator().manual_seed(int(seed))
    residual = 0.02 / math.sqrt(2 * max(1, n_layers))
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                std = residual if name.endswith(residual_suffixes) else 0.02
                module.weight.normal_(0.0, std, generator=gen)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()


__all__ = ["gpt2_init"]
