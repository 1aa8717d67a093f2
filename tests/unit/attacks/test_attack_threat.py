"""Threat models and the audit's data roles."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpsynth.attacks.threat import AuditData, ThreatModel
from dpsynth.errors import DataValidationError, ParameterError

ROOT = Path(__file__).resolve().parents[3]


def test_attacks_package_never_imports_torch():
    code = ("import sys, dpsynth.attacks, dpsynth.attacks.report, dpsynth.commands.audit; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 0, done.stderr


def test_threat_model_lists_every_problem():
    with pytest.raises(ParameterError) as info:
        ThreatModel("guess", knowledge=("reference",), targets="all", n_targets=0)
    message = str(info.value)
    for name in ("'goal'", "'knowledge'", "'targets'", "'n_targets'"):
        assert name in message


def test_threat_model_checks_goal_specific_fields():
    with pytest.raises(ParameterError, match="'secret'"):
        ThreatModel("attribute_inference", ("synthetic", "partial_record"))
    with pytest.raises(ParameterError, match="'aux_columns'"):
        ThreatModel.linkability([["a", "b"], ["b"]])


def test_threat_model_describes_itself_and_round_trips():
    threat = ThreatModel.membership(500, reference=True, targets="vulnerable")
    text = threat.describe()
    assert "reference rows" in text and "most vulnerable" in text and "500" in text
    assert ThreatModel.from_dict(threat.to_dict()) == threat
    link = ThreatModel.linkability([["a"], ["b", "c"]])
    assert ThreatModel.from_dict(link.to_dict()) == link
    assert "'s'" in ThreatModel.attribute_inference("s").describe()


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 90, n), "sex": rng.choice(["f", "m"], n)},
                        index=pd.RangeIndex(100 * seed, 100 * seed + n))


def test_audit_data_lists_every_problem():
    good = _frame(10, 1)
    with pytest.raises(DataValidationError) as info:
        AuditData.from_frames(good, good[["age"]], good[["sex"]])
    assert len(info.value.problems) == 2
    with pytest.raises(DataValidationError) as info:
        AuditData.from_frames(good, good.iloc[:1], "not a frame")  # type: ignore[arg-type]
    assert len(info.value.problems) == 2


def test_audit_data_keeps_row_ids_and_balances_targets():
    data = AuditData.from_frames(_frame(30, 1), _frame(20, 2), _frame(40, 3))
    assert data.columns == ("age", "sex")
    assert data.train.ids[0] == 100 and data.control.ids[0] == 200
    members, controls = data.balanced_targets(1000, np.random.default_rng(0))
    assert members.size == controls.size == 20


def test_reference_split_is_disjoint_from_controls():
    data = AuditData.from_frames(_frame(30, 1), _frame(20, 2), _frame(40, 3))
    split = data.with_reference(np.random.default_rng(0))
    assert split.reference is not None
    assert len(split.reference) + len(split.control) == 20
    assert not set(split.reference.ids) & set(split.control.ids)
    given = AuditData.from_frames(_frame(30, 1), _frame(20, 2), _frame(40, 3),
                                  reference=_frame(15, 4))
    assert given.with_reference(np.random.default_rng(0)) is given
