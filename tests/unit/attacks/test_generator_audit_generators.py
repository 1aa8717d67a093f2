"""Generator wrappers: dpsynth synthesizers, callables, command lines, reference generators."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpsynth.attacks.generators import (
    CallableGenerator,
    CommandGenerator,
    DpsynthGenerator,
    GeneratorError,
    MemorizingGenerator,
    PublicSampler,
)
from dpsynth.errors import ParameterError
from dpsynth.schema import Column, Schema

ROOT = Path(__file__).resolve().parents[3]
TRAIN = pd.DataFrame({"age": [20, 35, 50, 65, 41, 29], "city": list("abcabc"),
                      "income": [10.5, 20.0, 31.2, 44.4, 25.0, 18.1]})
SCHEMA = Schema(columns=(Column("age", "integer", lower=18, upper=90),
                         Column("city", "categorical", categories=("a", "b", "c")),
                         Column("income", "numeric", lower=0, upper=100)))


def copy_rows(train, n_rows, seed):
    return train.sample(n_rows, replace=True, random_state=seed)


def not_a_table(train, n_rows, seed):
    return [1, 2, 3]


def explode(train, n_rows, seed):
    raise RuntimeError("tool crashed")


def script(tmp_path, body):
    path = tmp_path / "tool.py"
    path.write_text(textwrap.dedent(body))
    return f"{sys.executable} {path}"


def test_callable_generator_returns_the_training_columns():
    gen = CallableGenerator(copy_rows, epsilon=2.0, delta=1e-6)
    out = gen.fit_sample(TRAIN, 10, seed=3)
    assert list(out.columns) == list(TRAIN.columns) and len(out) == 10
    assert out.equals(gen.fit_sample(TRAIN, 10, seed=3))
    assert gen.privacy(6) == (2.0, 1e-6) and gen.describe()["name"] == "copy_rows"
    assert CallableGenerator(copy_rows).privacy(6) is None


@pytest.mark.parametrize("fn, message", [(not_a_table, "not a pandas DataFrame"),
                                         (explode, "RuntimeError: tool crashed")])
def test_callable_generator_failures_are_clear(fn, message):
    with pytest.raises(GeneratorError, match=message):
        CallableGenerator(fn).fit_sample(TRAIN, 5, seed=0)


def test_command_generator_runs_a_csv_tool(tmp_path):
    cmd = script(tmp_path, """
        import sys, pandas as pd
        train, out, n, seed = sys.argv[1:]
        pd.read_csv(train).sample(int(n), replace=True, random_state=int(seed)).to_csv(
            out, index=False)
    """)
    gen = CommandGenerator(cmd + " {train} {out} {n} {seed}", epsilon=1.0, schema=SCHEMA)
    out = gen.fit_sample(TRAIN, 8, seed=4)
    assert len(out) == 8 and set(out["city"]) <= {"a", "b", "c"}
    assert out.equals(gen.fit_sample(TRAIN, 8, seed=4))
    assert gen.describe()["command"].endswith("{train} {out} {n} {seed}")


@pytest.mark.parametrize("body, message", [
    ("import sys; print('bad input', file=sys.stderr); sys.exit(4)", "status 4: bad input"),
    ("pass", "wrote no file"),
    ("import time; time.sleep(5)", "did not finish within 0.5 s"),
    ("import sys; open(sys.argv[2], 'w').write('x\\n1\\n')", "lacking training columns"),
])
def test_command_generator_failures_are_clear(tmp_path, body, message):
    gen = CommandGenerator(script(tmp_path, body) + " {train} {out}", timeout=0.5)
    with pytest.raises(GeneratorError, match=message):
        gen.fit_sample(TRAIN, 3, seed=0)


def test_command_generator_missing_program_is_clear():
    with pytest.raises(GeneratorError, match="cannot run generator command"):
        CommandGenerator("/no/such/tool {train} {out}").fit_sample(TRAIN, 3, seed=0)


def test_command_template_problems_are_listed_together():
    with pytest.raises(ParameterError) as info:
        CommandGenerator("tool --rows {n}", timeout=0)
    message = str(info.value)
    assert "{train}" in message and "{out}" in message and "'timeout'" in message


def test_memorizer_releases_its_rows_and_public_sampler_ignores_them():
    out = MemorizingGenerator(noise=0.01).fit_sample(TRAIN, 6, seed=0)
    assert sorted(out["age"]) == sorted(TRAIN["age"])
    assert np.allclose(sorted(out["income"]), sorted(TRAIN["income"]), atol=1.0)
    public = TRAIN.assign(age=99)
    sampled = PublicSampler(public).fit_sample(TRAIN, 20, seed=0)
    assert (sampled["age"] == 99).all()
    assert PublicSampler(public).privacy(6) == (0.0, 0.0)
    assert MemorizingGenerator().privacy(6) is None


def test_dpsynth_generator_fits_a_registered_synthesizer():
    gen = DpsynthGenerator("mst", SCHEMA, epsilon=1.0, delta=1e-5,
                           params={"n_bins": 4, "final_iterations": 20})
    gen.check()
    train = pd.concat([TRAIN] * 10, ignore_index=True)
    out = gen.fit_sample(train, 30, seed=1)
    assert list(out.columns) == list(TRAIN.columns) and len(out) == 30
    assert out.equals(gen.fit_sample(train, 30, seed=1))
    assert gen.privacy(60) == (1.0, 1e-5)
    assert gen.describe()["params"] == {"n_bins": 4, "final_iterations": 20}


def test_dpsynth_generator_checks_its_synthesizer_before_any_run():
    with pytest.raises(ParameterError, match="'synthesizer'"):
        DpsynthGenerator("no-such-synth", SCHEMA).check()


def test_importing_the_generator_audit_never_imports_torch():
    code = ("import sys, dpsynth.attacks.generators, dpsynth.attacks.generator_audit, "
            "dpsynth.attacks.runner, dpsynth.commands.audit_generator; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 0, done.stderr
