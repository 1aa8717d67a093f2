"""Generators under audit: dpsynth synthesizers, Python callables, and command lines.

A shadow-model audit retrains the generator hundreds of times, so it needs the generator
itself, not only its output. Every wrapper here has one method, ``fit_sample(train, n_rows,
seed)``: train on ``train``, return ``n_rows`` synthetic rows, with all randomness drawn from
``seed``. ``privacy(n_train)`` gives the (epsilon, delta) the generator claims, the number an
empirical lower bound is checked against (``None`` for a non-private or unknown generator).

Wrappers are sent to worker processes, so they must pickle: a :class:`CallableGenerator`
needs a module-level function, not a lambda. Pickling here is only the transport between
processes of one audit; nothing is saved with it.

Two reference generators calibrate an audit (as TAPAS' ``Raw`` generator does; Houssiau et
al., NeurIPS 2022 workshop): :class:`MemorizingGenerator` releases its training rows with a
little noise (an attack must succeed against it), and :class:`PublicSampler` ignores its
training rows and samples a fixed public table (an attack must fail against it).
"""

from __future__ import annotations

import logging
import math
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dpsynth.errors import DpsynthError, GeneratorError, ParameterError, param_error
from dpsynth.schema import Schema

logger = logging.getLogger(__name__)

_FIELDS = ("train", "out", "n", "seed")


class Generator:
    """Base of the audited generators.

    Subclasses implement :meth:`_fit_sample`; :meth:`fit_sample` checks what comes back.

    Parameters
    ----------
    name:
        Shown in reports.
    epsilon, delta:
        The privacy the generator claims; ``epsilon=None`` (or ``inf``) for none.
    """

    kind = "generator"

    def __init__(self, *, name: str, epsilon: float | None = None,
                 delta: float | None = None):
        self.name = name
        self.epsilon = epsilon
        self.delta = delta

    def privacy(self, n_train: int) -> tuple[float, float] | None:
        """The claimed (epsilon, delta) for a training table of ``n_train`` rows, or None."""
        if self.epsilon is None or not math.isfinite(float(self.epsilon)):
            return None
        return float(self.epsilon), float(self.delta or 0.0)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description for the report."""
        return {"name": self.name, "kind": self.kind, "epsilon": self.epsilon,
                "delta": self.delta}

    def fit_sample(self, train: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
        """Train on ``train`` and return ``n_rows`` synthetic rows with its columns."""
        out = self._fit_sample(train, int(n_rows), int(seed))
        if not isinstance(out, pd.DataFrame):
            raise GeneratorError(f"generator {self.name!r} returned {type(out).__name__}, "
                                 "not a pandas DataFrame")
        missing = [c for c in train.columns if c not in out.columns]
        if missing or len(out) < 1:
            raise GeneratorError(f"generator {self.name!r} returned {len(out)} rows lacking "
                                 f"training columns {missing}")
        return out[list(train.columns)].reset_index(drop=True)

    def _fit_sample(self, train: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, epsilon={self.epsilon!r})"


class DpsynthGenerator(Generator):
    """A registered dpsynth synthesizer, fitted afresh for every run.

    Parameters
    ----------
    synthesizer:
        Registry name (``"mst"``, ``"aim"``, ``"dpvae"`` ...).
    schema:
        The public schema the synthesizer is fitted with (every domain declared).
    epsilon, delta:
        The synthesizer's budget. Keep ``delta`` fixed and small (default ``1e-5``): the audit
        checks one (epsilon, delta) claim, and the one-run audit needs ``delta`` far below
        ``1 / n_canaries``.
    params:
        Further keyword arguments of the synthesizer (``n_bins``, ``epochs`` ...).
    """

    kind = "dpsynth"

    def __init__(self, synthesizer: str, schema: Schema, *, epsilon: float = 1.0,
                 delta: float = 1e-5, params: Mapping[str, Any] | None = None):
        super().__init__(name=synthesizer, epsilon=epsilon, delta=delta)
        self.synthesizer = synthesizer
        self.schema = schema
        self.params = dict(params or {})

    def check(self) -> None:
        """Raise :class:`ParameterError` now (not in a worker) when the synthesizer is unknown."""
        from dpsynth.synthesizers import SYNTHESIZERS

        problems = []
        if self.synthesizer not in SYNTHESIZERS:
            problems.append(str(param_error("synthesizer", f"one of {sorted(SYNTHESIZERS)}",
                                            self.synthesizer, "DpsynthGenerator")))
        if not isinstance(self.schema, Schema):
            problems.append(str(param_error("schema", "a dpsynth Schema",
                                            type(self.schema).__name__, "DpsynthGenerator")))
        if problems:
            raise ParameterError(" ".join(problems))

    def privacy(self, n_train: int) -> tuple[float, float] | None:
        if not math.isfinite(float(self.epsilon or math.inf)):
            return None
        return float(self.epsilon or 0.0), float(self.delta or 0.0)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "params": {k: _plain(v) for k, v in self.params.items()}}

    def _fit_sample(self, train: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
        from dpsynth.synthesizers import create  # torch only where the synthesizer needs it

        fit_seed, sample_seed = np.random.SeedSequence(seed).generate_state(2)
        synth = create(self.synthesizer, epsilon=self.epsilon, delta=self.delta,
                       random_state=int(fit_seed), **self.params)
        synth.fit(train, self.schema)
        return synth.sample(n_rows, random_state=int(sample_seed))


class CallableGenerator(Generator):
    """A generator given as a function ``fn(train, n_rows, seed) -> DataFrame``.

    ``fn`` must be defined at module level (it is pickled to worker processes).
    """

    kind = "callable"

    def __init__(self, fn: Callable[[pd.DataFrame, int, int], pd.DataFrame], *,
                 name: str | None = None, epsilon: float | None = None,
                 delta: float | None = None):
        if not callable(fn):
            raise param_error("fn", "a callable fn(train, n_rows, seed)", fn, "CallableGenerator")
        super().__init__(name=name or str(getattr(fn, "__qualname__", "callable")),
                         epsilon=epsilon, delta=delta)
        self.fn = fn

    def _fit_sample(self, train: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
        try:
            return self.fn(train, n_rows, seed)
        except Exception as exc:
            raise GeneratorError(f"generator {self.name!r} raised "
                                 f"{type(exc).__name__}: {exc}") from exc


class CommandGenerator(Generator):
    """An external tool run as a command that reads a CSV and writes a CSV.

    Parameters
    ----------
    command:
        A command line (split like a POSIX shell, run without a shell) or a list of
        arguments, with the placeholders ``{train}`` (the training CSV it must read),
        ``{out}`` (the CSV it must write), ``{n}`` (rows to write) and ``{seed}``. Example:
        ``"python my_tool.py --input {train} --output {out} --rows {n} --seed {seed}"``.
    timeout:
        Seconds one run may take before it is stopped and reported.
    schema:
        Optional schema used to parse the output's column types.
    """

    kind = "command"

    def __init__(self, command: str | Sequence[str], *, name: str | None = None,
                 epsilon: float | None = None, delta: float | None = None,
                 timeout: float = 3600.0, schema: Schema | None = None,
                 cwd: str | Path | None = None):
        args = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        problems = []
        if not args:
            problems.append(str(param_error("command", "a non-empty command line", command,
                                            "CommandGenerator")))
        text = " ".join(args)
        for needed in ("{train}", "{out}"):
            if needed not in text:
                problems.append(str(param_error("command", f"a command line containing "
                                                f"{needed}", text, "CommandGenerator")))
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            problems.append(str(param_error("timeout", "a number of seconds > 0", timeout,
                                            "CommandGenerator")))
        if problems:
            raise ParameterError(" ".join(problems))
        super().__init__(name=name or Path(args[0]).name, epsilon=epsilon, delta=delta)
        self.args = tuple(args)
        self.timeout = float(timeout)
        self.schema = schema
        self.cwd = None if cwd is None else str(cwd)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "command": " ".join(self.args), "timeout": self.timeout}

    def _fit_sample(self, train: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
        with tempfile.TemporaryDirectory(prefix="dpsynth-gen-") as tmp:
            train_path, out_path = Path(tmp) / "train.csv", Path(tmp) / "synthetic.csv"
            train.to_csv(train_path, index=False)
            values = {"train": str(train_path), "out": str(out_path), "n": str(n_rows),
                      "seed": str(seed)}
            argv = [_fill(a, values) for a in self.args]
            try:
                done = subprocess.run(argv, capture_output=True, text=True,
                                      timeout=self.timeout, cwd=self.cwd, check=False)
            except subprocess.TimeoutExpired:
                raise GeneratorError(f"generator command {self.name!r} did not finish within "
                                     f"{self.timeout:g} s") from None
            except OSError as exc:
                raise GeneratorError(f"cannot run generator command {argv[0]!r}: {exc}") from None
            if done.returncode != 0:
                tail = " | ".join((done.stderr or done.stdout or "").strip().splitlines()[-5:])
                raise GeneratorError(f"generator command {self.name!r} exited with status "
                                     f"{done.returncode}: {tail or '(no output)'}")
            if not out_path.is_file():
                raise GeneratorError(f"generator command {self.name!r} exited 0 but wrote no "
                                     f"file at {{out}} ({out_path.name})")
            return _read_output(out_path, self.schema, self.name)


def _fill(arg: str, values: Mapping[str, str]) -> str:
    out = arg
    for key in _FIELDS:
        out = out.replace("{" + key + "}", values[key])
    return out


def _read_output(path: Path, schema: Schema | None, name: str) -> pd.DataFrame:
    from dpsynth.data.io import read_table

    try:
        return read_table(path, schema=schema)
    except (DpsynthError, ValueError) as exc:
        raise GeneratorError(f"cannot read the output of generator {name!r}: {exc}") from None


# -- reference generators ---------------------------------------------------------------------
class MemorizingGenerator(Generator):
    """Non-private reference: releases training rows (resampled) with a little noise.

    Numeric columns get Gaussian noise of ``noise`` times the column's standard deviation;
    category values are kept. Every attack should succeed against it.
    """

    kind = "reference"

    def __init__(self, *, noise: float = 0.01, name: str = "memorizer"):
        super().__init__(name=name, epsilon=None, delta=None)
        self.noise = noise

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "noise": self.noise}

    def _fit_sample(self, train: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        rows = rng.permutation(len(train))
        if n_rows > len(train):
            rows = np.concatenate([rows, rng.integers(0, len(train), n_rows - len(train))])
        out = train.iloc[rows[:n_rows]].reset_index(drop=True).copy()
        for col in out.columns:
            if pd.api.types.is_float_dtype(out[col]):
                scale = float(np.nanstd(out[col].to_numpy(dtype=float))) or 1.0
                out[col] = out[col] + rng.normal(0.0, self.noise * scale, len(out))
        return out


class PublicSampler(Generator):
    """Reference generator that ignores its training rows and resamples a public table.

    Its output does not depend on the training data at all (epsilon = 0); no attack should
    succeed against it.
    """

    kind = "reference"

    def __init__(self, public: pd.DataFrame, *, name: str = "public-sampler"):
        super().__init__(name=name, epsilon=0.0, delta=0.0)
        self.public = public

    def privacy(self, n_train: int) -> tuple[float, float] | None:
        return (0.0, 0.0)

    def _fit_sample(self, train: pd.DataFrame, n_rows: int, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return self.public.iloc[rng.integers(0, len(self.public), n_rows)]


def _plain(value: Any) -> Any:
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
