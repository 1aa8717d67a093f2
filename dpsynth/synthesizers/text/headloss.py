"""The loss of a frozen output layer, fused with it and computed a chunk of positions at a time.

A causal LM's training loss normally goes through its logits: one number per position and
vocabulary entry. For SmolLM2 (49,152 entries) a micro-batch of 32 records of 64 tokens has
100 million of them, and the usual path (the head's product, autocast's float32 copy for the
loss, the log-softmax kept for the backward pass, its gradient) allocates and first touches
1-2 GB per micro-batch. Every such block is over glibc's 32 MB ceiling for reusing freed
memory, so each one is mapped anew and page-faulted page by page: on the 2-core machines
this project measures on, 44 % of a DP fine-tune's CPU time was system time.

When the output layer is frozen (LoRA adapters elsewhere, tied embeddings left as they are),
the gradient of a position's loss with respect to its last hidden state is
``(softmax(h W^T) - onehot(target)) W``, which needs nothing from the backward pass. So
:func:`head_nll` computes, for a chunk of positions at a time: the logits into a buffer
reused across chunks, their log-sum-exp, each target's negative log-likelihood, and that
gradient; only the ``(positions, width)`` gradient is kept for backward, and no tensor of
the vocabulary's size outlives its chunk. Positions with a zero loss weight (the record
header, padding) are not computed at all. The same idea as the fused linear cross-entropy
of Liger Kernel (Hsu et al., 2024) and Cut Cross-Entropy (Wijmans et al., "Cut Your Losses
in Large-Vocabulary Language Models", ICLR 2025); here the head is frozen, so no gradient of
``W`` is formed.

The per-record losses and the gradients are those of :class:`~dpsynth.synthesizers.text.
model.RecordNLL` on the logits, up to rounding (tested); under bfloat16 autocast the head's
product runs in bfloat16 and the loss in float32, as autocast would run them.
"""

from __future__ import annotations

from typing import Any

import torch

from dpsynth.synthesizers.text.model import reduce_records

#: Bytes of one chunk's float32 logits: under glibc's 32 MB mmap ceiling, so the buffers
#: come from the heap and are reused instead of being mapped and faulted in anew.
CHUNK_BYTES = 24 << 20
#: The same on a GPU, whose caching allocator reuses blocks of any size and whose matrix
#: products want more rows than a CPU's: 256 MB, about 1,365 positions of SmolLM2's
#: vocabulary (not measured on a GPU: none was lent to this project when it was written).
CUDA_CHUNK_BYTES = 256 << 20


def chunk_rows(n: int, vocab: int, device_type: str) -> int:
    """Positions per chunk of ``n`` over a ``vocab``-entry head on ``device_type``."""
    budget = CUDA_CHUNK_BYTES if device_type == "cuda" else CHUNK_BYTES
    return max(1, min(n, budget // (4 * vocab)))


class _HeadNLL(torch.autograd.Function):
    """Per-position NLL of ``targets`` under ``logits = hidden @ weight.T`` (``weight``
    frozen, already in the compute dtype); the hidden states' gradient is formed forward."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
        n, width = hidden.shape
        vocab = weight.shape[0]
        want_grad = bool(ctx.needs_input_grad[0])
        low = weight.dtype != torch.float32
        nll = torch.empty(n, dtype=torch.float32, device=hidden.device)
        grad = (torch.empty((n, width), dtype=hidden.dtype, device=hidden.device)
                if want_grad else None)
        rows = chunk_rows(n, vocab, hidden.device.type)
        buf = torch.empty((rows, vocab), dtype=torch.float32, device=hidden.device)
        # The products run in the weight's dtype: into ``buf`` itself when that is float32,
        # else into a buffer of their own, copied to and from ``buf``.
        prod = (torch.empty((rows, vocab), dtype=weight.dtype, device=hidden.device)
                if low else buf)
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, n, rows):
                stop = min(n, start + rows)
                m = stop - start
                logits = buf[:m]
                torch.mm(hidden[start:stop].to(weight.dtype), weight.t(), out=prod[:m])
                if low:
                    logits.copy_(prod[:m])
                tgt = targets[start:stop, None]
                picked = logits.gather(1, tgt).squeeze(1)
                top = logits.amax(dim=1, keepdim=True)
                logits.sub_(top).exp_()                     # exp(x - max), in place
                total = logits.sum(dim=1, keepdim=True)
                nll[start:stop] = (total.log() + top).squeeze(1) - picked
                if grad is None:
                    continue
                logits.div_(total)                          # softmax
                logits.scatter_add_(1, tgt, torch.full_like(picked[:, None], -1.0))
                if low:
                    prod[:m].copy_(logits)
                grad[start:stop] = torch.mm(prod[:m], weight)
        if grad is not None:
            ctx.save_for_backward(grad)
        return nll

    @staticmethod
    def backward(ctx: Any, upstream: torch.Tensor) -> tuple[Any, None, None]:
        (grad,) = ctx.saved_tensors
        return grad * upstream[:, None].to(grad.dtype), None, None


def head_nll(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-position negative log-likelihood (float32) of ``targets`` ``(n,)`` under the
    logits ``hidden @ weight.T`` (``hidden`` ``(n, width)``, ``weight`` ``(vocab, width)``
    and frozen, in the dtype the product is to run in), differentiable in ``hidden``."""
    out: torch.Tensor = _HeadNLL.apply(hidden, weight, targets)
    return out


def _autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast runs products in on ``device_type`` now, ``None`` when it is off
    (the per-device calls are PyTorch 2.4's; the older ones before)."""
    if hasattr(torch, "get_autocast_dtype"):
        on = torch.is_autocast_enabled(device_type)
        return torch.get_autocast_dtype(device_type) if on else None
    if device_type == "cpu":  # pragma: no cover - PyTorch < 2.4
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    return (torch.get_autocast_gpu_dtype()  # pragma: no cover - PyTorch < 2.4
            if torch.is_autocast_enabled() else None)


class HeadRecordNLL:
    """:class:`~dpsynth.synthesizers.text.model.RecordNLL` for a model that returns its last
    hidden states: the frozen ``head`` weight ``(vocab, width)`` is applied here, fused with
    the loss (:func:`head_nll`).

    ``__call__(hidden, target)`` takes ``hidden`` ``(B, T, width)`` and ``target``
    ``(B, 2, T)`` (next-token ids and 0/1 loss weights) and returns each record's mean NLL
    per target token (``reduction="none"``), or their mean or sum.
    """

    def __init__(self, head: torch.Tensor):
        self.head = head
        self.reduction = "mean"
        self._cast: tuple[tuple[Any, ...], torch.Tensor] | None = None

    def _weight(self, dtype: torch.dtype) -> torch.Tensor:
        """The head in ``dtype``, cast once (the head is frozen; a new version recasts)."""
        head = self.head.detach()
        if head.dtype == dtype:
            return head
        key = (head.data_ptr(), head._version, head.device, dtype)
        if self._cast is None or self._cast[0] != key:
            self._cast = (key, head.to(dtype))
        return self._cast[1]

    def __call__(self, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        b, t, width = hidden.shape
        ids, weights = target[:, 0], target[:, 1].to(torch.float32)
        dtype = _autocast_dtype(hidden.device.type) or hidden.dtype
        keep = torch.nonzero(weights.reshape(-1)).squeeze(1)
        nll = head_nll(hidden.reshape(-1, width)[keep], self._weight(dtype),
                       ids.reshape(-1)[keep])
        summed = torch.zeros(b, dtype=torch.float32, device=hidden.device).index_add(
            0, keep // t, nll * weights.reshape(-1)[keep])
        return reduce_records(summed, weights, self.reduction)


__all__ = ["CHUNK_BYTES", "CUDA_CHUNK_BYTES", "HeadRecordNLL", "chunk_rows", "head_nll"]
