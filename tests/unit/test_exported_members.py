"""The public surface of each package is exactly what is intended (httpx-style check)."""

import importlib

import pytest

EXPECTED = {
    "dpsynth": ["Budget", "Column", "Schema", "__version__", "draft_schema"],
    "dpsynth.data": ["OTHER", "map_to_domain", "plan_discovery", "read_table", "run_discovery",
                     "write_table"],
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
}


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_exported_names(module_name):
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(EXPECTED[module_name])
    for name in module.__all__:
        assert hasattr(module, name), name


def test_synthesizers_exports_and_registry():
    import dpsynth.synthesizers as synth

    assert {"BaseSynthesizer", "SYNTHESIZERS", "create", "register",
            "DEFAULT_TABLE_SYNTHESIZER"} <= set(synth.__all__)
    assert {"dpvae", "aim", "mst"} <= set(synth.SYNTHESIZERS)
    assert synth.DEFAULT_TABLE_SYNTHESIZER in synth.SYNTHESIZERS
