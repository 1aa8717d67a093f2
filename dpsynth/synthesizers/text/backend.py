"""Language-model backends of the text synthesizer: the byte model, or a local HF model.

A backend codes records (header + text) as stacked token ids and loss weights, exposes the
``nn.Module`` that DP-SGD trains and the loss of its output (``criterion``), samples
continuations of a header and scores records. The synthesizer does the privacy work
(planning, sampling of batches, noise); the backend only knows its model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from dpsynth.errors import ModelFormatError
from dpsynth.synthesizers.text import codec
from dpsynth.synthesizers.text.model import (
    ByteTransformer,
    RecordNLL,
    TransformerConfig,
    build_model,
    record_nll,
    sample_continuations,
)


class TextBackend(Protocol):
    """What :class:`~dpsynth.synthesizers.text.synthesizer.DPTextSynthesizer` needs."""

    kind: str

    @property
    def module(self) -> nn.Module: ...

    def criterion(self) -> Any:
        """The per-record loss of :attr:`module`'s output (``__call__(out, target)``, with a
        ``reduction`` attribute, as :class:`~dpsynth.synthesizers.text.model.RecordNLL`)."""

    def max_tokens(self) -> int:
        """Longest sequence the model accepts."""

    def code(self, texts: Sequence[str], headers: Sequence[str], max_length: int) -> np.ndarray:
        """Stacked ``(n, 2, length)`` token ids and loss weights."""

    def generate(self, head: str, n: int, *, max_length: int, temperature: float,
                 top_p: float, generator: torch.Generator) -> list[str]:
        """``n`` texts continuing header ``head``."""

    def to(self, device: torch.device) -> None: ...

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...


class ByteBackend:
    """The byte-level transformer of :mod:`dpsynth.synthesizers.text.model`."""

    kind = "byte"

    def __init__(self, model: ByteTransformer, origin: str):
        self.model = model
        self.origin = origin

    @classmethod
    def create(cls, pretrained: str | None, scratch: TransformerConfig,
               seed: int) -> ByteBackend:
        """From a shipped/pretrained checkpoint, or freshly initialised from ``seed``."""
        if pretrained is None:
            return cls(build_model(scratch, seed), "scratch")
        from dpsynth.synthesizers.text.pretrain import load_checkpoint

        cfg, weights, _ = load_checkpoint(pretrained)
        model = build_model(cfg, None)
        model.load_state_dict(weights)
        return cls(model, str(pretrained))

    @staticmethod
    def checkpoint_config(pretrained: str | None, scratch: TransformerConfig
                          ) -> TransformerConfig:
        """The architecture, read without loading the weights."""
        if pretrained is None:
            return scratch
        from dpsynth.synthesizers.text.pretrain import load_checkpoint

        return load_checkpoint(pretrained)[0]

    @property
    def module(self) -> nn.Module:
        return self.model

    def criterion(self) -> RecordNLL:
        return RecordNLL()

    def max_tokens(self) -> int:
        return self.model.cfg.max_positions

    def code(self, texts: Sequence[str], headers: Sequence[str], max_length: int) -> np.ndarray:
        return codec.encode_records(texts, headers, max_length).stacked()

    def generate(self, head: str, n: int, *, max_length: int, temperature: float,
                 top_p: float, generator: torch.Generator) -> list[str]:
        prompt = codec.encode_prompt(head)
        ids = sample_continuations(self.model, prompt, n, max_new=max_length + 1,
                                   temperature=temperature, top_p=top_p, generator=generator)
        return [codec.decode(row) for row in ids]

    def to(self, device: torch.device) -> None:
        self.model.to(device)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {f"model.{k}": v.detach().cpu().numpy()
                  for k, v in self.model.state_dict().items()}
        return {"backend": self.kind, "config": self.model.cfg.to_dict(),
                "origin": self.origin}, arrays

    @classmethod
    def from_state(cls, state: dict[str, Any], arrays: dict[str, np.ndarray]) -> ByteBackend:
        cfg = TransformerConfig.from_dict(state["config"])
        weights = {k.removeprefix("model."): torch.from_numpy(v.copy())
                   for k, v in arrays.items() if k.startswith("model.")}
        model = build_model(cfg, None)
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise ModelFormatError(f"The saved weights do not fit the model: {exc}") from None
        return cls(model.eval(), str(state.get("origin", "")))


def backend_nll(backend: TextBackend, stacked: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Mean NLL per target token of each coded record (nats), any backend."""
    module = backend.module
    device = next(module.parameters()).device
    return record_nll(module, torch.from_numpy(stacked).to(device), batch_size,
                      criterion=backend.criterion()).numpy()


__all__ = ["ByteBackend", "TextBackend", "backend_nll"]
