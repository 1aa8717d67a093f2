"""The contract every registered synthesizer meets (scikit-learn's ``parametrize_with_checks``).

Each case fits a tiny table for a few steps: fit -> sample -> save -> load gives the same rows
for the same random_state; the privacy spent is reported and within the target; planning is
a pure query equal to what the fit spent; a seed reproduces the fit; bad parameters are
refused in the scikit-learn message form. A synthesizer registered without a case here fails.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dpsynth._util.jsonable import to_jsonable
from dpsynth.accounting import Budget, BudgetSession
from dpsynth.errors import ParameterError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import SYNTHESIZERS, BaseSynthesizer, FitPlan, create

_TEXT = {"pretrained": None, "d_model": 16, "n_layers": 1, "n_heads": 2, "batch_size": 40,
         "epochs": 0.5, "learning_rate": 5e-3, "max_length": 12}


def _table(n: int = 160) -> tuple[pd.DataFrame, Schema]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"kind": rng.choice(["a", "b", "c"], n),
                          "age": rng.integers(18, 80, n),
                          "flag": rng.choice(["no", "yes"], n)})
    schema = Schema((Column("kind", "categorical", categories=("a", "b", "c")),
                     Column("age", "integer", lower=18, upper=80),
                     Column("flag", "categorical", categories=("no", "yes"))))
    return frame, schema


def _text_table(n: int = 160) -> tuple[pd.DataFrame, Schema]:
    frame, schema = _table(n)
    frame["note"] = np.where(frame["kind"] == "a", "late bill", "no login")
    return frame, Schema((*schema.columns, Column("note", "text", max_length=12)))


def _text_only(n: int = 160) -> tuple[pd.DataFrame, Schema]:
    frame, schema = _text_table(n)
    return frame[["kind", "note"]], Schema((schema["kind"], schema["note"]))


#: name -> (fast parameters, tiny table of the right shape)
CASES: dict[str, tuple[dict[str, Any], Any]] = {
    "aim": ({"rounds": 2, "final_iterations": 20, "round_iterations": 5}, _table),
    "mst": ({"final_iterations": 20}, _table),
    "dpvae": ({"epochs": 1, "batch_size": 40, "hidden_sizes": (8,), "latent_dim": 2}, _table),
    "dpar": ({"epochs": 1, "batch_size": 40, "d_model": 8, "n_heads": 2}, _table),
    "dptext": (_TEXT, _text_only),
    "dptext-table": ({"table_synthesizer": "mst", "table_params": {"final_iterations": 20},
                      "text_params": _TEXT}, _text_table),
    "dptext-pp": ({"pretrained": None, "d_model": 16, "n_layers": 1, "n_heads": 2,
                   "group_size": 4, "temperature": None, "records_per_group": 3,
                   "max_length": 8}, _text_only),
}

NAMES = sorted(SYNTHESIZERS)


def _case(name: str) -> tuple[dict[str, Any], pd.DataFrame, Schema]:
    assert name in CASES, f"add a contract case for the registered synthesizer {name!r}"
    params, make = CASES[name]
    frame, schema = make()
    return params, frame, schema


@pytest.fixture(scope="module")
def fitted() -> dict[str, tuple[BaseSynthesizer, BudgetSession, pd.DataFrame, Schema]]:
    return {}


def _fit(name: str, cache: dict) -> tuple[BaseSynthesizer, BudgetSession, pd.DataFrame, Schema]:
    if name not in cache:
        params, frame, schema = _case(name)
        session = BudgetSession(Budget(2.0, 1e-4))
        synth = create(name, epsilon=2.0, delta=1e-4, random_state=0, **params)
        cache[name] = (synth.fit(frame, schema, ledger=session), session, frame, schema)
    return cache[name]


@pytest.mark.parametrize("name", NAMES)
def test_fit_sample_save_load_round_trip(name, fitted, tmp_path):
    synth, _, frame, schema = _fit(name, fitted)
    rows = synth.sample(30, random_state=1)
    assert list(rows.columns) == [c.name for c in schema.data_columns] and len(rows) == 30
    assert rows.equals(synth.sample(30, random_state=1))
    synth.save(tmp_path / "m")
    again = BaseSynthesizer.load(tmp_path / "m")
    assert type(again) is type(synth)
    assert to_jsonable(again.get_params()) == to_jsonable(synth.get_params())
    assert again.sample(30, random_state=1).equals(rows)
    assert again.n_rows_ == len(frame) and again.privacy_ == synth.privacy_


@pytest.mark.parametrize("name", NAMES)
def test_privacy_is_reported_within_the_target(name, fitted):
    synth, session, _, _ = _fit(name, fitted)
    report = synth.privacy_
    assert report is not None and report.target_epsilon == 2.0 and report.delta == 1e-4
    assert 0 < report.epsilon <= 2.0 + 1e-9
    assert session.epsilon_spent() <= 2.0 + 1e-9


@pytest.mark.parametrize("name", NAMES)
def test_plan_budget_is_pure_and_equals_the_spend(name, fitted):
    synth, session, frame, schema = _fit(name, fitted)
    params, _, _ = _case(name)
    fresh = create(name, epsilon=2.0, delta=1e-4, random_state=0, **params)
    before = dict(vars(fresh))
    plan = fresh.plan_budget(schema, len(frame))
    assert vars(fresh) == before  # a query: nothing parked on the object
    assert isinstance(plan, FitPlan) and plan.n_rows == len(frame)
    assert plan.spends == synth.privacy_.spends
    assert plan.events == session.spent_events()
    assert plan.epsilon() <= 2.0 + 1e-9 and plan.summary().startswith("Privacy budget plan")
    state = {k: id(v) for k, v in vars(synth).items()}
    assert synth.plan_budget(schema, len(frame)) == plan
    assert {k: id(v) for k, v in vars(synth).items()} == state


@pytest.mark.parametrize("name", NAMES)
def test_random_state_reproduces_the_fit(name, fitted):
    synth, _, frame, schema = _fit(name, fitted)
    params, _, _ = _case(name)
    twin = create(name, epsilon=2.0, delta=1e-4, random_state=0, **params)
    twin.fit(frame, schema, ledger=BudgetSession(Budget(2.0, 1e-4)))
    assert twin.sample(30, random_state=5).equals(synth.sample(30, random_state=5))


@pytest.mark.parametrize("name", NAMES)
def test_bad_parameters_are_refused_in_one_form(name):
    params, frame, schema = _case(name)
    owner = SYNTHESIZERS[name].__name__
    for bad, must in (({"epsilon": -1}, "a float in"), ({"discovery_fraction": 2}, "a float in")):
        synth = create(name, **{**params, **bad})
        key, value = next(iter(bad.items()))
        message = rf"The '{key}' parameter of {owner} must be {must}.* Got {value} instead\."
        with pytest.raises(ParameterError, match=message):
            synth.fit(frame, schema)
        with pytest.raises(ParameterError, match=message):
            synth.plan_budget(schema, len(frame))


def test_every_registered_name_has_a_case():
    assert set(CASES) == set(SYNTHESIZERS)


def test_table_synthesizers_do_not_import_torch(tmp_path):
    """Importing the package, creating, fitting, sampling and loading AIM and MST import no
    torch (the DP-SGD synthesizers are registered by name and imported on first use)."""
    script = textwrap.dedent(f"""
        import sys
        import numpy as np, pandas as pd
        import dpsynth.synthesizers as synths
        from dpsynth.schema import Column, Schema
        assert {{"dpvae", "dptext", "aim", "mst"}} <= set(synths.SYNTHESIZERS)
        assert "dpvae" in synths.SYNTHESIZERS and synths.DEFAULT_TABLE_SYNTHESIZER == "aim"
        rng = np.random.default_rng(0)
        frame = pd.DataFrame({{"k": rng.choice(["a", "b"], 100), "x": rng.integers(0, 9, 100)}})
        schema = Schema((Column("k", "categorical", categories=("a", "b")),
                         Column("x", "integer", lower=0, upper=9)))
        for name in ("aim", "mst"):
            synth = synths.create(name, epsilon=1.0, random_state=0, final_iterations=10)
            synth.fit(frame, schema).sample(10, random_state=0)
            synth.save(r"{tmp_path}/" + name)
            synths.BaseSynthesizer.load(r"{tmp_path}/" + name).sample(10)
        assert "torch" not in sys.modules, "torch was imported"
        assert "opacus" not in sys.modules, "opacus was imported"
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_registry_refuses_overwrites_and_resolves_lazily():
    from dpsynth.synthesizers import SynthesizerRegistry

    registry = SynthesizerRegistry({"lazy": "dpsynth.synthesizers.marginal.mst:MSTSynthesizer"})
    assert "lazy" in registry and list(registry) == ["lazy"] and len(registry) == 1
    klass = registry["lazy"]
    assert klass.__name__ == "MSTSynthesizer"
    with pytest.raises(ValueError, match="already registered"):
        registry["lazy"] = SYNTHESIZERS["aim"]
    with pytest.raises(KeyError):
        registry["missing"]


def test_fit_planned_checks_the_plan_against_the_data():
    from dpsynth.accounting import NoiseSource

    frame, schema = _table()
    synth = create("mst", epsilon=1.0, delta=1e-4, random_state=0, final_iterations=10)
    plan = synth.plan_training(schema, len(frame), Budget(1.0, 1e-4))
    session = BudgetSession(Budget(1.0, 1e-4))
    noise = NoiseSource.create(0, False)
    with pytest.raises(ParameterError, match="The 'data' parameter of MSTSynthesizer must be"):
        synth.fit_planned(frame.head(50), schema, plan=plan, recorder=session, noise=noise)
    with pytest.raises(ParameterError, match="The 'plan' parameter"):
        synth.fit_planned(frame, schema, plan=None, recorder=None, noise=noise)
    assert session.spends == ()
    synth.fit_planned(frame, schema, plan=plan, recorder=session, noise=noise)
    assert session.spent_events() == plan.events and synth.privacy_ is None
    assert len(synth.sample(5, random_state=0)) == 5
