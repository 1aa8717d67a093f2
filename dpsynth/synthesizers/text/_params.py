"""Parameter checks shared by the text synthesizers (every problem collected, one message each)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from dpsynth.errors import param_error
from dpsynth.synthesizers import _dpsgd
from dpsynth.synthesizers.text.model import TRAINABLE_SETS


def _number(value: Any, integer: bool = False) -> bool:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    return isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)


def param_problems(synth: Any) -> list[str]:
    """Messages for every invalid text-specific parameter of ``synth``."""
    owner = type(synth).__name__
    out: list[str] = []
    positive = (("epochs", False), ("batch_size", True), ("max_grad_norm", False),
                ("d_model", True), ("n_layers", True),
                ("n_heads", True))
    for name, integer in positive:
        value = getattr(synth, name)
        if not _number(value, integer) or value <= 0:
            out.append(str(param_error(name, "an integer >= 1" if integer else
                                       "a finite float > 0", value, owner)))
    if synth.learning_rate is not None and (not _number(synth.learning_rate)
                                            or synth.learning_rate <= 0):
        out.append(str(param_error("learning_rate", "None (automatic) or a finite float > 0",
                                   synth.learning_rate, owner)))
    if synth.max_length is not None and (not _number(synth.max_length, True)
                                         or synth.max_length < 1):
        out.append(str(param_error("max_length", "None or an integer >= 1", synth.max_length,
                                   owner)))
    if not _number(synth.lora_rank, True) or synth.lora_rank < 0:
        out.append(str(param_error("lora_rank", "an integer >= 0", synth.lora_rank, owner)))
    if not _number(synth.control_fraction) or not 0 < synth.control_fraction < 1:
        out.append(str(param_error("control_fraction", "a float in (0, 1)",
                                   synth.control_fraction, owner)))
    if not _number(synth.temperature) or synth.temperature < 0:
        out.append(str(param_error("temperature", "a float >= 0 (0: greedy)",
                                   synth.temperature, owner)))
    if not _number(synth.top_p) or not 0 < synth.top_p <= 1:
        out.append(str(param_error("top_p", "a float in (0, 1]", synth.top_p, owner)))
    if synth.pretrained is not None and not isinstance(synth.pretrained, str):
        out.append(str(param_error("pretrained", "None, a checkpoint name or a path",
                                   synth.pretrained, owner)))
    if synth.model_dir is not None and not isinstance(synth.model_dir, str):
        out.append(str(param_error("model_dir", "None or a directory path (str)",
                                   synth.model_dir, owner)))
    if synth.trainable not in ("auto", *TRAINABLE_SETS):
        out.append(str(param_error("trainable", f"'auto' or one of {TRAINABLE_SETS}",
                                   synth.trainable, owner)))
    elif synth.model_dir is not None and synth.trainable not in ("auto", "all"):
        out.append(str(param_error("trainable", "'auto' or 'all' with model_dir (its "
                                   "parameter-efficient mode is lora_rank)", synth.trainable,
                                   owner)))
    if synth.grad_sample_mode not in _dpsgd.GRAD_SAMPLE_MODES:
        out.append(str(param_error("grad_sample_mode", f"one of {_dpsgd.GRAD_SAMPLE_MODES}",
                                   synth.grad_sample_mode, owner)))
    if synth.precision not in ("float32", "bfloat16"):
        out.append(str(param_error("precision", "'float32' or 'bfloat16'", synth.precision,
                                   owner)))
    for name in ("progress", "release_controls"):
        if not isinstance(getattr(synth, name), bool):
            out.append(str(param_error(name, "a bool", getattr(synth, name), owner)))
    out.extend(_dpsgd.device_problems(synth.device, owner))
    return out


def resolve_device(device: str, owner: str, *, strict: bool = True) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    parsed = torch.device(device)
    if parsed.type == "cuda" and not torch.cuda.is_available():
        if strict:
            raise param_error("device", "'auto' or 'cpu' on this machine (no CUDA device is "
                              "available)", device, owner)
        return torch.device("cpu")
    return parsed
