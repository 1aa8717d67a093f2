"""Device choice for torch models: one validation rule and one resolver (torch imported lazily)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dpsynth.errors import param_error

if TYPE_CHECKING:
    import torch

_MUST = "'auto', 'cpu', 'cuda' or 'cuda:N'"


def device_problems(device: Any, owner: str) -> list[str]:
    """Problems with a ``device`` parameter ('auto', 'cpu', 'cuda' or 'cuda:N' if available)."""
    if device == "auto":
        return []
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return [str(param_error("device", _MUST, device, owner))]
    if parsed.type not in ("cpu", "cuda"):
        return [str(param_error("device", _MUST, device, owner))]
    if parsed.type == "cuda" and not torch.cuda.is_available():
        return [str(param_error("device", "'auto' or 'cpu' on this machine (no CUDA device is "
                                "available)", device, owner))]
    return []


def resolve_device(device: str, owner: str, *, strict: bool = True) -> torch.device:
    """The torch device for ``device``: ``"auto"`` is CUDA when available, else the CPU.

    A CUDA device that is not available raises (``strict``) or falls back to the CPU with a
    warning (loading a model saved on a GPU machine).
    """
    import logging

    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    parsed = torch.device(device)
    if parsed.type == "cuda" and not torch.cuda.is_available():
        if strict:
            raise param_error("device", "'auto' or 'cpu' on this machine (no CUDA device is "
                              "available)", device, owner)
        logging.getLogger(__name__).warning("device=%r is not available here; using the CPU",
                                            device)
        return torch.device("cpu")
    return parsed


def fast_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA device that supports it, or a
    CPU with the AVX512-BF16 or AMX-BF16 instructions (read from ``/proc/cpuinfo``; other
    CPUs emulate bfloat16, more slowly than float32)."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    return _cpu_bf16()


_CPU_BF16: list[bool] = []


def _cpu_bf16() -> bool:
    if not _CPU_BF16:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as info:
                flags = next((line.split(":", 1)[1].split() for line in info
                              if line.startswith("flags")), [])
        except OSError:
            flags = []
        _CPU_BF16.append("avx512_bf16" in flags or "amx_bf16" in flags)
    return _CPU_BF16[0]


__all__ = ["device_problems", "fast_bfloat16", "resolve_device"]
