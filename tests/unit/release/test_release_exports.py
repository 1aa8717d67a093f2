"""The public surface of dpsynth.release is exactly what is intended."""

import dpsynth.release


def test_exported_names():
    assert sorted(dpsynth.release.__all__) == sorted([
        "DEFAULT_HOLDOUT_FRACTION", "DEFAULT_POLICY", "Assessment", "Attempt", "Check",
        "DatasetCard", "Decision", "Figures", "PolicyError", "ReleasePlan", "ReleasePolicy",
        "ReleaseResult", "SynthesizerFactory",
        "assess", "release", "render_report", "save_report", "split_holdout", "write_bundle"])
    for name in dpsynth.release.__all__:
        assert hasattr(dpsynth.release, name)
