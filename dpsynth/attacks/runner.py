"""Independent runs fanned out over local processes or a Ray cluster, reproducibly.

Shadow-model audits train a generator hundreds of times on independent datasets. Each run
``i`` gets its randomness from ``numpy.random.SeedSequence(seed, spawn_key=(i,))``, so its
result depends on the master seed and its index only: the same whether runs go one by one in
this process, over local worker processes (``concurrent.futures`` with the *spawn* start
method, the default), or over a Ray cluster (``ray_address``). A run that raises, or whose
worker dies, is tried once more with the same seed; one that fails twice is reported in the
result with its error, never dropped silently.

The task is a module-level function ``task(context, index, seed_sequence)``; ``context`` (the
generator, the data) is sent to each worker once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import numpy as np

from dpsynth._util.progress import ProgressFn
from dpsynth._util.seeds import seed_sequence
from dpsynth.errors import ParameterError, param_error

logger = logging.getLogger(__name__)

Task = Callable[[Any, int, np.random.SeedSequence], Any]

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class RunOutcome:
    """One run: its value, or the error of its last attempt."""

    index: int
    value: Any = None
    error: str | None = None
    attempts: int = 1
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class RunBatch:
    """All runs of one call of :func:`run_many`, in index order."""

    outcomes: tuple[RunOutcome, ...]
    backend: str
    workers: int
    seconds: float

    @property
    def failed(self) -> tuple[RunOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.ok)

    @property
    def retried(self) -> tuple[RunOutcome, ...]:
        return tuple(o for o in self.outcomes if o.attempts > 1)

    def values(self) -> list[Any]:
        """Values of the successful runs, in index order."""
        return [o.value for o in self.outcomes if o.ok]

    def summary(self) -> dict[str, Any]:
        return {"backend": self.backend, "workers": self.workers, "runs": len(self.outcomes),
                "runs_failed": len(self.failed), "runs_retried": len(self.retried),
                "run_seconds": round(self.seconds, 3),
                "errors": [f"run {o.index}: {o.error}" for o in self.failed][:10]}


def _check(n_runs: int, n_jobs: int | None, retries: int) -> None:
    problems = []
    if isinstance(n_runs, bool) or not isinstance(n_runs, (int, np.integer)) or n_runs < 0:
        problems.append(str(param_error("n_runs", "an integer >= 0", n_runs, "run_many")))
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int)
                               or n_jobs < 1):
        problems.append(str(param_error("n_jobs", "None or an integer >= 1", n_jobs,
                                        "run_many")))
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        problems.append(str(param_error("retries", "an integer >= 0", retries, "run_many")))
    if problems:
        raise ParameterError(" ".join(problems))


def default_jobs() -> int:
    """Worker processes used when none is asked for: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def run_many(task: Task, context: Any, n_runs: int, *, seed: int, n_jobs: int | None = None,
             ray_address: str | None = None, retries: int = 1,
             progress: ProgressFn | None = None) -> RunBatch:
    """Run ``task(context, i, seed_sequence(seed, i))`` for ``i`` in ``range(n_runs)``.

    Parameters
    ----------
    task:
        A module-level (importable, picklable) function.
    context:
        Picklable data shared by every run; shipped once per worker.
    seed:
        Master seed; run ``i`` sees :func:`seed_sequence` ``(seed, i)`` whatever the backend.
    n_jobs:
        Local worker processes (default: the usable CPUs); 1 runs in this process.
    ray_address:
        Address of a Ray cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``;
        ``"local"`` starts a private one) to run on instead of local processes; needs the
        optional ``ray`` package. Ray workers get this process' import path, so ``task`` and
        ``context`` may use modules importable here when the cluster shares its file system.
    retries:
        Further attempts for a run that fails (same seed each time).
    progress:
        ``progress(done, total)`` after each finished run.
    """
    _check(n_runs, n_jobs, retries)
    start = time.perf_counter()
    if ray_address is not None:
        outcomes, workers = _run_ray(task, context, int(n_runs), int(seed), ray_address,
                                     retries, progress)
        backend = "ray"
    else:
        workers = min(n_jobs or default_jobs(), max(int(n_runs), 1))
        if workers == 1:
            outcomes, backend = _run_serial(task, context, int(n_runs), int(seed), retries,
                                            progress), "serial"
        else:
            outcomes = _run_processes(task, context, int(n_runs), int(seed), workers, retries,
                                      progress)
            backend = "processes"
    batch = RunBatch(tuple(sorted(outcomes, key=lambda o: o.index)), backend, workers,
                     time.perf_counter() - start)
    for o in batch.failed:
        logger.error("run %d failed after %d attempts: %s", o.index, o.attempts, o.error)
    return batch


def attempt(task: Task, context: Any, index: int, seed: int) -> tuple[Any, float]:
    """One attempt of run ``index``: its value and its duration."""
    began = time.perf_counter()
    value = task(context, index, seed_sequence(seed, index))
    return value, time.perf_counter() - began


def describe_error(exc: BaseException) -> str:
    """``Type: message`` plus the innermost frame, one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    text = " ".join(str(exc).split())[:500]
    return f"{type(exc).__name__}: {text}{where}"


def _run_serial(task: Task, context: Any, n_runs: int, seed: int, retries: int,
                progress: ProgressFn | None) -> list[RunOutcome]:
    out = []
    for index in range(n_runs):
        error = None
        for tries in range(1, retries + 2):
            try:
                value, seconds = attempt(task, context, index, seed)
            except Exception as exc:  # noqa: BLE001 - reported in the outcome
                error = describe_error(exc)
                logger.warning("run %d attempt %d failed: %s", index, tries, error)
                continue
            out.append(RunOutcome(index, value, None, tries, seconds))
            break
        else:
            out.append(RunOutcome(index, None, error, retries + 1))
        if progress is not None:
            progress(index + 1, n_runs)
    return out


# -- local processes -------------------------------------------------------------------------
_CONTEXT: Any = None
_STARTED: Any = None  # a SimpleQueue of the run indices a worker has begun


def _install(context: Any, started: Any) -> None:
    global _CONTEXT, _STARTED
    _CONTEXT, _STARTED = context, started


def _worker(task: Task, index: int, seed: int) -> tuple[Any, float]:
    if _STARTED is not None:
        _STARTED.put(index)  # synchronous: recorded even if the run then kills the process
    return attempt(task, _CONTEXT, index, seed)


@contextlib.contextmanager
def _threads_per_worker(workers: int) -> Iterator[None]:
    """Children inherit the environment at spawn: cap their BLAS/OpenMP threads."""
    share = str(max(1, default_jobs() // workers))
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    for k in _THREAD_VARS:
        os.environ.setdefault(k, share)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class _Tally:
    """Outcomes and attempts of the process backend, as runs finish."""

    n_runs: int
    retries: int
    progress: ProgressFn | None
    done: dict[int, RunOutcome] = field(default_factory=dict)
    tries: dict[int, int] = field(default_factory=dict)

    def success(self, i: int, value: Any, seconds: float) -> None:
        self.tries[i] = self.tries.get(i, 0) + 1
        self._finish(RunOutcome(i, value, None, self.tries[i], seconds))

    def failure(self, i: int, error: str) -> bool:
        """Count a failed attempt; True when the run gets another."""
        self.tries[i] = self.tries.get(i, 0) + 1
        logger.warning("run %d attempt %d failed: %s", i, self.tries[i], error)
        if self.tries[i] <= self.retries:
            return True
        self._finish(RunOutcome(i, None, error, self.tries[i]))
        return False

    def _finish(self, outcome: RunOutcome) -> None:
        self.done[outcome.index] = outcome
        if self.progress is not None:
            self.progress(len(self.done), self.n_runs)


def _run_processes(task: Task, context: Any, n_runs: int, seed: int, workers: int,
                   retries: int, progress: ProgressFn | None) -> list[RunOutcome]:
    """Rounds in a shared pool; runs suspected of killing a worker go to pools of their own.

    A worker that dies breaks the shared pool and fails every run still in it. Runs that had
    not started are resubmitted, no attempt counted; those that had started (the culprit among
    them) are run one per process, where a failure is the run's own.
    """
    tally = _Tally(n_runs, retries, progress)
    pending = list(range(n_runs))
    while pending:
        pending, suspects = _shared_round(task, context, pending, seed, workers, tally)
        if suspects:
            logger.warning("a worker process died; running %d suspect run(s) alone: %s",
                           len(suspects), suspects[:10])
            _isolated_rounds(task, context, suspects, seed, workers, tally)
    return list(tally.done.values())


def _pool(workers: int, context: Any, started: Any = None) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                               initializer=_install, initargs=(context, started))


def _shared_round(task: Task, context: Any, indices: Sequence[int], seed: int, workers: int,
                  tally: _Tally) -> tuple[list[int], list[int]]:
    """Run ``indices`` in one pool; return (runs to submit again, crash suspects)."""
    started_queue = get_context("spawn").SimpleQueue()
    again: list[int] = []
    unfinished: list[int] = []
    with _threads_per_worker(workers), _pool(min(workers, len(indices)), context,
                                             started_queue) as pool:
        futures = {pool.submit(_worker, task, i, seed): i for i in indices}
        for future in as_completed(futures):
            i = futures[future]
            try:
                value, seconds = future.result()
            except BrokenProcessPool:
                unfinished.append(i)
            except Exception as exc:  # noqa: BLE001 - reported in the outcome
                if tally.failure(i, describe_error(exc)):
                    again.append(i)
            else:
                tally.success(i, value, seconds)
    started = set()
    while not started_queue.empty():
        started.add(started_queue.get())
    suspects = [i for i in unfinished if i in started] or unfinished
    return sorted(again + [i for i in unfinished if i not in suspects]), sorted(suspects)


def _alone(task: Task, context: Any, index: int, seed: int) -> tuple[Any, float]:
    """Run ``index`` in a fresh one-process pool (called from a thread)."""
    with _pool(1, context) as pool:
        return pool.submit(_worker, task, index, seed).result()


def _isolated_rounds(task: Task, context: Any, indices: Sequence[int], seed: int,
                     workers: int, tally: _Tally) -> None:
    """Each run in a process of its own, ``workers`` at a time, until done or out of tries."""
    pending = list(indices)
    while pending:
        with _threads_per_worker(workers), ThreadPoolExecutor(
                max_workers=min(workers, len(pending))) as threads:
            futures = {threads.submit(_alone, task, context, i, seed): i for i in pending}
            pending = []
            for future in as_completed(futures):
                i = futures[future]
                try:
                    value, seconds = future.result()
                except Exception as exc:  # noqa: BLE001 - its own failure, alone
                    if tally.failure(i, describe_error(exc)):
                        pending.append(i)
                else:
                    tally.success(i, value, seconds)


# -- Ray -------------------------------------------------------------------------------------
def _connect_ray(address: str) -> tuple[Any, bool]:
    try:
        import ray
    except ModuleNotFoundError:
        raise ParameterError("ray_address needs the optional 'ray' package (pip install "
                             "'ray'); without it, runs go to local processes") from None
    if not ray.is_initialized():
        # workers import the task and the generator by module name: give them this driver's
        # import path (enough on one machine or a shared file system; a remote cluster needs
        # the modules installed, or ray.init(runtime_env=...) called by the user first)
        path = os.pathsep.join(p for p in sys.path if p)
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
        return ray, True
    return ray, False


def _run_ray(task: Task, context: Any, n_runs: int, seed: int, address: str, retries: int,
             progress: ProgressFn | None) -> tuple[list[RunOutcome], int]:
    """Runs as Ray tasks (one CPU each), retried by us, not by Ray, so attempts are counted."""
    ray, connected_here = _connect_ray(address)
    try:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        remote = ray.remote(num_cpus=1, max_retries=0)(attempt)
        shared = ray.put(context)
        tries = dict.fromkeys(range(n_runs), 0)
        refs = {remote.remote(task, shared, i, seed): i for i in range(n_runs)}
        done: dict[int, RunOutcome] = {}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            i = refs.pop(ready[0])
            tries[i] += 1
            try:
                value, seconds = ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - task error or lost worker
                error = describe_error(exc)
                logger.warning("run %d attempt %d failed: %s", i, tries[i], error)
                if tries[i] <= retries:
                    refs[remote.remote(task, shared, i, seed)] = i
                    continue
                done[i] = RunOutcome(i, None, error, tries[i])
            else:
                done[i] = RunOutcome(i, value, None, tries[i], seconds)
            if progress is not None:
                progress(len(done), n_runs)
        return list(done.values()), workers
    finally:
        if connected_here:
            ray.shutdown()
