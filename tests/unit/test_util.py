"""dpsynth._util: the one home of seeds, JSON values, progress callbacks and device choice."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dpsynth._util.jsonable import (
    canonical_json,
    dumps,
    json_default,
    plain,
    plain_id,
    to_jsonable,
)
from dpsynth._util.progress import progress_bar, stage
from dpsynth._util.seeds import child_rng, child_seed, resolve_seed, seed_sequence
from dpsynth.errors import ParameterError


# -- seeds ------------------------------------------------------------------------------------
def test_child_seed_is_a_fixed_63_bit_function_of_root_and_path():
    a = child_seed(7, 1, 2)
    assert a == child_seed(7, 1, 2) and 0 <= a < 2**63
    assert len({a, child_seed(7, 1, 3), child_seed(8, 1, 2), child_seed(7, 2, 1)}) == 4


def test_child_rng_is_numpy_stream_of_the_seed_sequence():
    expected = np.random.default_rng(np.random.SeedSequence([5, 0])).random(4)
    assert np.array_equal(child_rng(5, 0).random(4), expected)
    assert not np.array_equal(child_rng(5, 1).random(4), expected)


def test_seed_sequence_depends_on_root_and_index_only():
    first = np.random.default_rng(seed_sequence(7, 3)).random()
    assert first == np.random.default_rng(np.random.SeedSequence(7, spawn_key=(3,))).random()
    assert first != np.random.default_rng(seed_sequence(7, 4)).random()


def test_resolve_seed_keeps_integers_and_draws_otherwise():
    assert resolve_seed(12, "f") == 12 and resolve_seed(np.int64(3), "f") == 3
    drawn = resolve_seed(np.random.default_rng(0), "f")
    assert drawn == resolve_seed(np.random.default_rng(0), "f") and drawn >= 0
    assert 0 <= resolve_seed(None, "f") < 2**63


@pytest.mark.parametrize("bad", [-1, True, 1.5, "3"])
def test_resolve_seed_refuses_other_values_naming_the_owner(bad):
    with pytest.raises(ParameterError, match="'random_state' parameter of run_audit"):
        resolve_seed(bad, "run_audit")


# -- JSON values ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Point:
    x: int
    y: float


def test_to_jsonable_turns_numpy_and_containers_into_plain_types():
    value = {"a": np.int64(2), "b": np.array([1.5, 2.0]), 3: (np.bool_(True), {2, 1}),
             "p": Path("x/y"), "d": _Point(1, 0.5)}
    assert to_jsonable(value) == {"a": 2, "b": [1.5, 2.0], "3": [True, [1, 2]], "p": "x/y",
                                  "d": {"x": 1, "y": 0.5}}
    assert type(to_jsonable(np.float32(0.5))) is float


def test_to_jsonable_nonfinite_modes():
    values = [math.nan, math.inf, -math.inf]
    assert to_jsonable(values, nonfinite="null") == [None, None, None]
    assert to_jsonable(values, nonfinite="string") == ["nan", "inf", "-inf"]
    kept = to_jsonable(values)
    assert math.isnan(kept[0]) and kept[1:] == [math.inf, -math.inf]
    with pytest.raises(ValueError, match="nonfinite"):
        to_jsonable(math.nan, nonfinite="zero")


def test_unknown_types_are_refused():
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        to_jsonable(object())
    with pytest.raises(TypeError):
        json.dumps({"x": object()}, default=json_default)


def test_json_default_and_dumps_write_numpy_values():
    assert json.dumps({"x": np.float64(0.25)}, default=json_default) == '{"x": 0.25}'
    assert json.loads(dumps({"n": np.int32(4)})) == {"n": 4}


def test_canonical_json_bytes_are_pinned():
    # The ledger hashes these exact bytes: a change here breaks every existing ledger.
    text = canonical_json({"b": 1.0, "a": [1, "é", math.nan, 0.1], "c": None})
    assert text == '{"a":[1,"é",NaN,0.1],"b":1.0,"c":null}'


def test_plain_and_plain_id():
    assert type(plain(np.int64(3))) is int and plain("a") == "a"
    assert plain_id(np.int64(3)) == 3 and plain_id("r7") == "r7" and plain_id(2.0) == "2.0"


# -- progress ---------------------------------------------------------------------------------
def test_stage_binds_the_label_and_may_announce_it():
    calls = []
    assert stage(None, "x") is None
    tick = stage(lambda *a: calls.append(a), "shadow runs")
    assert calls == []
    tick(3, 10)
    assert calls == [("shadow runs", 3, 10)]
    stage(lambda *a: calls.append(a), "one run", announce=True)
    assert calls[-1] == ("one run", 0, 1)


def test_progress_bar_disabled_yields_none():
    with progress_bar(False, "x", 10) as update:
        assert update is None


# -- devices ----------------------------------------------------------------------------------
def test_device_rules():
    pytest.importorskip("torch")
    from dpsynth._util.device import device_problems, resolve_device

    assert device_problems("auto", "M") == [] and device_problems("cpu", "M") == []
    assert "'device' parameter of M" in device_problems("tpu", "M")[0]
    assert resolve_device("cpu", "M").type == "cpu"
    assert resolve_device("auto", "M").type in ("cpu", "cuda")
