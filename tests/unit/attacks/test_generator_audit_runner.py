"""Parallel runs: per-run seeds independent of the backend, retries, crashes reported."""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from dpsynth._util.seeds import seed_sequence as run_seed
from dpsynth.attacks.runner import run_many
from dpsynth.errors import ParameterError

HAS_RAY = importlib.util.find_spec("ray") is not None


def draw(context, index, seed):
    """A run whose value depends only on its seed (and the shared context)."""
    rng = np.random.default_rng(seed)
    return context["offset"] + index + float(rng.random())


def flaky(context, index, seed):
    """Fails on its first attempt for odd runs (a marker file remembers the attempt)."""
    marker = Path(context["dir"]) / f"run-{index}"
    if index % 2 == 1 and not marker.exists():
        marker.touch()
        raise RuntimeError(f"transient failure of run {index}")
    return draw({"offset": 0.0}, index, seed)


def broken(context, index, seed):
    """Run 1 fails once; run 2 always raises; run 3 kills its worker (in a worker only)."""
    if index == 1:
        return flaky(context, index, seed)
    if index == 2:
        raise ValueError("this run always fails")
    if index == 3 and os.getpid() != context["parent"]:
        os._exit(3)
    return draw({"offset": 0.0}, index, seed)


def test_run_seed_depends_on_seed_and_index_only():
    a = np.random.default_rng(run_seed(7, 3)).random()
    assert a == np.random.default_rng(run_seed(7, 3)).random()
    assert a != np.random.default_rng(run_seed(7, 4)).random()
    assert a != np.random.default_rng(run_seed(8, 3)).random()


def test_serial_and_processes_give_identical_results():
    ctx = {"offset": 10.0}
    calls = []
    serial = run_many(draw, ctx, 6, seed=5, n_jobs=1, progress=lambda d, t: calls.append((d, t)))
    parallel = run_many(draw, ctx, 6, seed=5, n_jobs=2)
    assert serial.backend == "serial" and parallel.backend == "processes"
    assert serial.values() == parallel.values()
    assert [o.index for o in parallel.outcomes] == list(range(6))
    assert calls[-1] == (6, 6) and len(calls) == 6
    assert run_many(draw, ctx, 6, seed=6, n_jobs=1).values() != serial.values()


def test_a_failing_run_is_retried_once_with_the_same_seed(tmp_path):
    batch = run_many(flaky, {"dir": str(tmp_path)}, 4, seed=1, n_jobs=1)
    assert not batch.failed
    assert [o.attempts for o in batch.outcomes] == [1, 2, 1, 2]
    clean = run_many(draw, {"offset": 0.0}, 4, seed=1, n_jobs=1)
    assert batch.values() == clean.values()  # the retry reproduces the run exactly
    assert batch.summary()["runs_retried"] == 2


def test_failures_are_reported_not_dropped(tmp_path):
    ctx = {"parent": os.getpid(), "dir": str(tmp_path)}
    batch = run_many(broken, ctx, 4, seed=0, n_jobs=1, retries=1)
    assert [o.index for o in batch.failed] == [2]
    failed = batch.failed[0]
    assert failed.attempts == 2 and "ValueError: this run always fails" in failed.error
    assert batch.summary()["runs_failed"] == 1 and "run 2" in batch.summary()["errors"][0]


def test_in_processes_a_dead_worker_is_reported_and_other_runs_survive(tmp_path):
    ctx = {"parent": os.getpid(), "dir": str(tmp_path)}
    batch = run_many(broken, ctx, 5, seed=0, n_jobs=2, retries=1)
    by_index = {o.index: o for o in batch.outcomes}
    assert sorted(o.index for o in batch.failed) == [2, 3]
    # run 3 killed its worker twice, the second time alone in its own process
    assert "BrokenProcessPool" in by_index[3].error and by_index[3].attempts == 2
    assert by_index[2].attempts == 2 and "ValueError" in by_index[2].error
    # transient: retried, not dropped. When run 3 breaks the pool while run 1's first attempt
    # is still in flight (a loaded machine), that attempt is lost with the pool rather than
    # counted, and the rerun alone is its first counted attempt: 1 or 2, both correct.
    assert by_index[1].ok and by_index[1].attempts in (1, 2)
    clean = run_many(draw, {"offset": 0.0}, 5, seed=0, n_jobs=1).values()
    assert batch.values() == [clean[0], clean[1], clean[4]]


def test_bad_parameters_are_listed_together():
    with pytest.raises(ParameterError) as info:
        run_many(draw, {}, -1, seed=0, n_jobs=0, retries=-1)
    for name in ("'n_runs'", "'n_jobs'", "'retries'"):
        assert name in str(info.value)


def test_ray_address_without_ray_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(ParameterError, match="optional 'ray' package"):
        run_many(draw, {"offset": 0.0}, 2, seed=0, ray_address="auto")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_RAY, reason="ray is not installed")
def test_ray_gives_the_same_results_and_retries(tmp_path):
    ctx = {"offset": 1.0}
    local = run_many(draw, ctx, 5, seed=3, n_jobs=1)
    on_ray = run_many(draw, ctx, 5, seed=3, ray_address="local")
    assert on_ray.backend == "ray" and on_ray.values() == local.values()
    flaky_batch = run_many(flaky, {"dir": str(tmp_path)}, 4, seed=1, ray_address="local")
    assert not flaky_batch.failed and [o.attempts for o in flaky_batch.outcomes] == [1, 2, 1, 2]
