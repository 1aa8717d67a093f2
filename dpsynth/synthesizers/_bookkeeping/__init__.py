"""Per-example clipping for DP-SGD by book-keeping: one forward, one backward, no second pass.

DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016) needs, for every
example ``i`` of a batch, the norm of its gradient so that it can sum the clipped gradients
``sum_i c_i g_i`` with ``c_i = min(1, C / (||g_i|| + 1e-6))``. For the layers of dpsynth's
models that norm follows from what a training step computes anyway:

* ``nn.Linear`` ``y = x W^T + b`` with input ``a_i`` ``(T, d)`` and output gradient
  ``G_i = dL_i/dy_i`` ``(T, p)``: the example's weight gradient is ``G_i^T a_i``. For tables
  (``T = 1``) its squared norm is ``||G_i||^2 ||a_i||^2``. For sequences it is
  ``<a_i a_i^T, G_i G_i^T>`` (the "ghost norm" of Li et al., "Large Language Models Can Be
  Strong Differentially Private Learners", ICLR 2022; ``T^2 (d + p)`` products) or the norm
  of the materialised ``G_i^T a_i`` (``T d p`` products), whichever is cheaper (the mixed rule
  of Bu et al., "Differentially Private Optimization on Large Model at Small Cost", ICML 2023).
* ``nn.Embedding``: the example's gradient sums its output gradients by token id; grouping
  ``(example, id)`` pairs gives the norm in ``O(T d)`` whatever the vocabulary.
* ``nn.LayerNorm``: the example's gradients ``sum_t G_t * xhat_t`` and ``sum_t G_t`` have
  ``d`` values each and are formed directly.

Book-keeping (Bu et al., ICML 2023) forms the clipped sum from the same activations and output
gradients, ``sum_i c_i G_i^T a_i = (c * G)^T a``: one matrix product per layer, the one plain
back-propagation spends on the unclipped weight gradient (for sequences where the
per-example gradients were cheaper, they are smaller than ``(a, G)`` too, and are kept and
summed instead). The layers run through autograd functions whose backward computes the
input gradient only and records what the clipped sum needs: autograd never forms a weight
gradient and no second backward runs, so a DP step costs about a plain one plus the norms.

Keeping the output gradients until every norm is known costs memory, as much again as the
layer outputs of an MLP. Inside an ``nn.Sequential`` run ``Linear -> ReLU -> Linear`` on
rows, the first layer's output gradient is ``(G' W') * [a' > 0]`` from the second layer's
``G'``, ``W'`` and input ``a'``, all kept anyway; so only its per-example norms are kept in
the backward and ``c * G`` is recomputed from ``c * G'`` (rows scale through the product).
By default this is done where the extra product costs no more than the layer's own weight
gradient. The recomputed rows are checked against the norms recorded in the backward (a gap
beyond rounding is a :class:`~dpsynth.errors.PrivacyError`) and scaled down where rounding
made them larger, so the bound ``||c_i g_i|| <= C`` never rests on the chain being what it
seems.

Norms and clipped sums are computed in at least float32 from the stored tensors, so the bound
holds to float32 rounding also when the forward and backward ran in bfloat16 under autocast.
"""

from __future__ import annotations

from dpsynth.synthesizers._bookkeeping._clipper import BookkeepingClipper, supports
from dpsynth.synthesizers._bookkeeping._optimizer import (
    BookkeepingCriterion,
    BookkeepingDPOptimizer,
    BookkeepingLoss,
    BookkeepingModule,
)
from dpsynth.synthesizers._bookkeeping._taps import RECOMPUTE_CHOICES, SUPPORTED_LAYERS

__all__ = [
    "RECOMPUTE_CHOICES",
    "SUPPORTED_LAYERS",
    "BookkeepingClipper",
    "BookkeepingCriterion",
    "BookkeepingDPOptimizer",
    "BookkeepingLoss",
    "BookkeepingModule",
    "supports",
]
