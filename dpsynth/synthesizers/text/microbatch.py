"""Virtual batches: one logical DP-SGD batch processed in physical chunks.

The DP recipes that get a signal through a large model use logical batches of thousands of
records (Li et al., "Large Language Models Can Be Strong Differentially Private Learners",
ICLR 2022; Yu et al., "Differentially Private Fine-tuning of Language Models", ICLR 2022). A
language model's activations, and above all its logits over the vocabulary, grow with the
batch; so the Poisson batch is cut into chunks of at most ``chunk`` records, each chunk runs a
forward and a backward pass, its records are clipped one by one, and the clipped sums are
added up. The noise is then added once to the whole sum by the optimiser step, exactly as for
one physical batch: the mechanism, and so the accounting, is unchanged; only peak memory
(bounded by the chunk) and speed differ.

:func:`chunked_loss` makes the loss function of an
:class:`~dpsynth.synthesizers._dpsgd_base.Objective`: for a batch larger than ``chunk`` it
returns a :class:`ChunkedLoss`, whose ``backward`` runs the chunks. With DP it needs the
book-keeping criterion (:mod:`dpsynth.synthesizers._bookkeeping`), whose clipper holds the
clipped sum of the last backward pass; without DP the plain mean loss is accumulated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dpsynth.errors import ParameterError
from dpsynth.synthesizers._bookkeeping import BookkeepingCriterion
from dpsynth.synthesizers._dpsgd_base import LossFn, autocast


class ChunkedLoss:
    """A logical batch's loss whose :meth:`backward` runs the physical chunks."""

    def __init__(self, run: Callable[[torch.Tensor, Any], Any], criterion: Any,
                 batch: torch.Tensor, chunk: int, precision: str):
        self.run, self.criterion, self.batch = run, criterion, batch
        self.chunk, self.precision = int(chunk), precision
        self.losses: list[torch.Tensor] = []

    def _chunks(self) -> list[torch.Tensor]:
        """The batch's records by length, in chunks: each chunk is padded only to its own
        longest record (the clipped sum, the loss and so the step do not depend on the
        order of the records)."""
        weights = self.batch[:, 1]
        positions = torch.arange(weights.shape[1], device=weights.device)
        last = ((weights != 0) * positions).amax(dim=1)
        return list(torch.split(self.batch[torch.argsort(last, stable=True)], self.chunk))

    def _forward(self, part: torch.Tensor) -> Any:
        with autocast(self.batch.device, self.precision):
            return self.run(part, self.criterion)

    def backward(self) -> None:
        if isinstance(self.criterion, BookkeepingCriterion):
            self._private_backward(self.criterion)
            return
        if hasattr(self.criterion, "criterion") or hasattr(self.criterion, "loss_reduction"):
            raise ParameterError("micro-batching with DP needs book-keeping clipping "
                                 "(grad_sample_mode 'auto' or 'bookkeeping').")
        total = len(self.batch)
        for part in self._chunks():
            loss = self._forward(part)
            (loss * (len(part) / total)).backward()
            self.losses.append(loss.detach() * len(part))

    def _private_backward(self, criterion: BookkeepingCriterion) -> None:
        clipper = criterion.clipper
        summed = torch.zeros_like(clipper.summed)
        for part in self._chunks():
            loss = self._forward(part)
            loss.backward()  # clips each record of the chunk into clipper.summed
            summed += clipper.summed
            self.losses.append(loss.per_sample.detach().sum())
        clipper.summed.copy_(summed)
        clipper.ready = True

    def detach(self) -> torch.Tensor:
        if not self.losses:
            raise RuntimeError("ChunkedLoss.detach() before backward()")
        return torch.stack(self.losses).sum() / len(self.batch)

    def item(self) -> float:
        return float(self.detach())


def chunked_loss(loss: LossFn, chunk: int | None, precision: str) -> LossFn:
    """``loss`` run in chunks of ``chunk`` records when a batch is larger (``None``: never)."""
    if chunk is None:
        return loss

    def run(module: Any, criterion: Any, batch: torch.Tensor) -> Any:
        if len(batch) <= chunk:
            return loss(module, criterion, batch)
        return ChunkedLoss(lambda part, crit: loss(module, crit, part), criterion, batch,
                           int(chunk), precision)

    return run


__all__ = ["ChunkedLoss", "chunked_loss"]
