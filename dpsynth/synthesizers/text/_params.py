"""Parameter checks shared by the text synthesizers (every problem collected, one message each)."""

from __future__ import annotations

import math
from typing import Any

from dpsynth.errors import param_error
from dpsynth.synthesizers._dpsgd_base import number
from dpsynth.synthesizers.text.model import TRAINABLE_SETS
from dpsynth.synthesizers.text.topics import MAX_TOPICS


def param_problems(synth: Any) -> list[str]:
    """Messages for every invalid text-specific parameter (the DP-SGD base checks the rest)."""
    owner = type(synth).__name__
    out: list[str] = []
    positive = (("d_model", True), ("n_layers", True), ("n_heads", True))
    for name, integer in positive:
        value = getattr(synth, name)
        if not number(value, integer) or value <= 0:
            out.append(str(param_error(name, "an integer >= 1" if integer else
                                       "a finite float > 0", value, owner)))
    if synth.max_length is not None and (not number(synth.max_length, True)
                                         or synth.max_length < 1):
        out.append(str(param_error("max_length", "None or an integer >= 1", synth.max_length,
                                   owner)))
    if not number(synth.lora_rank, True) or synth.lora_rank < 0:
        out.append(str(param_error("lora_rank", "an integer >= 0", synth.lora_rank, owner)))
    if synth.micro_batch_size is not None and (not number(synth.micro_batch_size, True)
                                               or synth.micro_batch_size < 1):
        out.append(str(param_error("micro_batch_size", "None or an integer >= 1",
                                   synth.micro_batch_size, owner)))
    layers = synth.lora_layers
    if layers is not None and layers != "auto" and (not number(layers, True) or layers < 1):
        out.append(str(param_error("lora_layers", "'auto' (the top min(8, blocks)), None "
                                   "(every block) or an integer >= 1", layers, owner)))
    targets = synth.lora_targets
    if not isinstance(targets, str) or not [t for t in targets.split(",") if t.strip()]:
        out.append(str(param_error("lora_targets", "'auto', 'all-linear' or comma-separated "
                                   "module names", targets, owner)))
    if not number(synth.control_fraction) or not 0 < synth.control_fraction < 1:
        out.append(str(param_error("control_fraction", "a float in (0, 1)",
                                   synth.control_fraction, owner)))
    if not number(synth.temperature) or synth.temperature < 0:
        out.append(str(param_error("temperature", "a float >= 0 (0: greedy)",
                                   synth.temperature, owner)))
    if not number(synth.top_p) or not 0 < synth.top_p <= 1:
        out.append(str(param_error("top_p", "a float in (0, 1]", synth.top_p, owner)))
    guidance = getattr(synth, "guidance", 0.0)
    if not number(guidance) or not 0 <= guidance < math.inf:
        out.append(str(param_error("guidance", "a finite float >= 0 (0: off)", guidance,
                                   owner)))
    steering = getattr(synth, "steering", 0.0)
    if not number(steering) or not 0 <= steering < math.inf:
        out.append(str(param_error("steering", "a finite float >= 0 (0: off)", steering,
                                   owner)))
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
    if synth.precision not in ("auto", "float32", "bfloat16"):
        out.append(str(param_error("precision", "'auto', 'float32' or 'bfloat16'",
                                   synth.precision, owner)))
    if not isinstance(synth.release_controls, bool):
        out.append(str(param_error("release_controls", "a bool", synth.release_controls,
                                   owner)))
    out.extend(_topic_problems(synth, owner))
    out.extend(_label_problems(synth, owner))
    return out


def _label_problems(synth: Any, owner: str) -> list[str]:
    """``labeller`` ('auto', True or False) and ``label_fraction`` (room for the rest)."""
    if not hasattr(synth, "labeller"):
        return []
    out: list[str] = []
    if not (isinstance(synth.labeller, bool) or synth.labeller == "auto"):
        out.append(str(param_error("labeller", "'auto', True or False", synth.labeller,
                                   owner)))
    share = synth.label_fraction
    if not number(share) or not 0 < share < 1:
        out.append(str(param_error("label_fraction", "a float in (0, 1)", share, owner)))
    elif synth.labeller is True:  # 'auto' is checked at planning, when the table is known
        out.extend(label_share_problems(synth, owner))
    return out


def label_share_problems(synth: Any, owner: str) -> list[str]:
    """The control, topic and label fractions must leave room for the text model."""
    share = synth.label_fraction
    others = [f for f in (synth.control_fraction,
                          synth.topic_fraction if synth.topics else 0.0) if number(f)]
    if sum(others) + share < 1:
        return []
    return [str(param_error("label_fraction", "a float with the control, topic and label "
                            "fractions summing below 1 (the rest trains the model; or turn "
                            "the label model off: labeller=False, --labeller off)", share,
                            owner))]


def _topic_problems(synth: Any, owner: str) -> list[str]:
    """``topics`` (0, or 2 to MAX_TOPICS) and ``topic_fraction`` (with room for the rest)."""
    k = synth.topics
    if not number(k, True) or not (k == 0 or 2 <= k <= MAX_TOPICS):
        return [str(param_error("topics", f"0 (off) or an integer in [2, {MAX_TOPICS}]", k,
                                owner))]
    if k == 0:
        return []
    out: list[str] = []
    share = synth.topic_fraction
    if not number(share) or not 0 < share < 1:
        out.append(str(param_error("topic_fraction", "a float in (0, 1)", share, owner)))
    elif number(synth.control_fraction) and synth.control_fraction + share >= 1:
        out.append(str(param_error("topic_fraction", "a float with control_fraction + "
                                   "topic_fraction < 1 (the rest trains the model)", share,
                                   owner)))
    if synth.release_controls is False:
        out.append(str(param_error("topics", "0 when release_controls=False (the topic "
                                   "histogram is released with the controls)", k, owner)))
    return out
