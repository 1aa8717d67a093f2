"""The public surface of each package is exactly what is intended (httpx-style check).

Two checks per module: ``__all__`` is the list written here (a change to the public surface is
a decision, made in this file too), and ``__all__`` is exactly the module's actual public names
(nothing public is left out of it, nothing in it is missing from the module).
"""

import importlib
import inspect
import subprocess
import sys

import pytest

_ERRORS = ["BudgetExceededError", "DataReadError", "DataValidationError", "DpsynthError",
           "GeneratorError", "LedgerAccessError", "LedgerCorruptedError", "LedgerNotFoundError",
           "LegacyLedgerError", "ModelFormatError", "NotFittedError", "ParameterError",
           "PolicyError", "PrivacyError", "SchemaError", "UnknownDatasetError", "WitnessError"]

EXPECTED = {
    "dpsynth": [
        *_ERRORS, "AuditReport", "BaseSynthesizer", "Budget", "Column", "DatasetCard", "Ledger",
        "ReleasePolicy", "ReleaseResult", "SYNTHESIZERS", "Schema", "__version__", "assess",
        "audit_generator", "create", "draft_schema", "load_dataset", "run_audit",
        "split_holdout"],
    "dpsynth.errors": [*_ERRORS, "param_error", "raise_if_problems"],
    "dpsynth.schema": ["BOUNDED_KINDS", "CATEGORY_KINDS", "KINDS", "SCHEMA_VERSION", "Column",
                       "Schema", "columns_from", "draft_schema"],
    "dpsynth.data": ["OTHER", "RayTable", "StreamedTable", "map_to_domain", "plan_discovery",
                     "read_table", "run_discovery", "write_table"],
    "dpsynth.datasets": ["DATASETS", "load_dataset", "load_schema"],
    "dpsynth.evaluate": ["average_tvd", "discretize", "fidelity_report", "marginal_tvd",
                         "tstr_auc"],
    "dpsynth.accounting": [
        "ACCOUNTANT", "ApproxDPEvent", "Budget", "BudgetSession", "Event", "GaussianEvent",
        "LaplaceEvent", "Ledger", "LedgerRecorder", "NoiseSource", "PureDPEvent", "Spend",
        "SpendRecorder", "SubsampledGaussianEvent", "calibrate_dpsgd_noise",
        "calibrate_gaussian", "default_delta", "default_ledger_location", "event_from_dict",
        "fingerprint", "identify", "laplace_noise_multiplier", "pld_delta", "pld_epsilon",
        "rdp_epsilon"],
    "dpsynth.attacks": [
        "ATTACKS", "AttackResult", "AuditData", "AuditReport", "CalibratedScorer",
        "CallableGenerator", "CommandGenerator", "DpsynthGenerator", "EpsilonBound",
        "GeneratorError", "LEAK", "MemorizingGenerator", "MixedEncoder", "NO_RISK",
        "PublicSampler", "Rate", "RetrainableScorer", "RocCurve", "SequenceScorer", "ShadowPlan",
        "TEXT_ATTACKS", "TextData", "ThreatModel", "attribute_inference", "audit_generator",
        "canary_audit", "copy_attacks", "dcr_membership", "domias_membership",
        "epsilon_lower_bound", "linkability", "loss_membership", "mama_membership", "nearest",
        "one_run_epsilon_lower", "pii_attack", "rare_records", "render_html", "run_audit",
        "run_text_audit", "save_html", "singling_out", "vulnerability"],
    "dpsynth.release": [
        "Assessment", "Attempt", "Check", "DEFAULT_HOLDOUT_FRACTION", "DEFAULT_POLICY",
        "DatasetCard", "Decision", "Figures", "PolicyError", "ReleasePlan", "ReleasePolicy",
        "ReleaseResult", "SynthesizerFactory", "assess", "release", "render_report",
        "save_report", "split_holdout", "write_bundle"],
}

#: Every module whose ``__all__`` must equal its actual public names.
MODULES = sorted({*EXPECTED, "dpsynth.synthesizers"})


def _public_names(module) -> set[str]:
    """Names not starting with ``_`` defined in or imported into ``module``.

    Submodules and ``annotations`` (the ``__future__`` feature) are left out; so are classes
    and functions imported into a plain module (not a package) for its own use, such as
    ``Any`` in ``dpsynth.schema``. Names a package loads lazily count (they are in its
    ``dir()``), without being loaded here. ``__version__`` counts where it exists.
    """
    own = vars(module)
    package = hasattr(module, "__path__")
    names = set()
    for name in dir(module):
        if name.startswith("_") or name == "annotations":
            continue
        if name in own:
            value = own[name]
            if inspect.ismodule(value):
                continue
            if (not package and (inspect.isclass(value) or inspect.isfunction(value))
                    and value.__module__ != module.__name__):
                continue
        names.add(name)
    return names | ({"__version__"} & set(own))


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_exported_names(module_name):
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(EXPECTED[module_name])
    for name in module.__all__:
        assert hasattr(module, name), name


@pytest.mark.parametrize("module_name", MODULES)
def test_all_is_exactly_the_public_names(module_name):
    module = importlib.import_module(module_name)
    assert len(module.__all__) == len(set(module.__all__)), "duplicates in __all__"
    assert set(module.__all__) == _public_names(module)


def test_public_names_sees_what_a_module_leaks():
    import types

    fake = types.ModuleType("fake")
    exec("from typing import Any\nimport math\nVALUE = 1\ndef f(): pass\n_hidden = 2\n",
         vars(fake))
    assert _public_names(fake) == {"VALUE", "f"}


def test_top_level_names_load_lazily_and_are_the_real_objects():
    import dpsynth
    import dpsynth.accounting
    import dpsynth.schema

    assert dpsynth.Budget is dpsynth.accounting.Budget
    assert dpsynth.Schema is dpsynth.schema.Schema
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        dpsynth.nothing_here  # noqa: B018


def test_import_dpsynth_alone_loads_no_heavy_dependency():
    code = ("import sys, dpsynth\n"
            "heavy = {'torch', 'pandas', 'scipy', 'dp_accounting'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_distributed_exports_what_the_torchrun_guide_uses():
    pytest.importorskip("torch")
    import dpsynth.distributed as distributed

    assert sorted(distributed.__all__) == ["Replica", "init_from_env"]


def test_synthesizers_exports_and_registry():
    import dpsynth.synthesizers as synth

    assert {"BaseSynthesizer", "SYNTHESIZERS", "create", "register",
            "DEFAULT_TABLE_SYNTHESIZER"} <= set(synth.__all__)
    assert {"dpvae", "aim", "mst"} <= set(synth.SYNTHESIZERS)
    assert synth.DEFAULT_TABLE_SYNTHESIZER in synth.SYNTHESIZERS
