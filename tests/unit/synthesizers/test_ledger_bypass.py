"""A non-private fit cannot go around a ledger (issue 14, item 1, Python API)."""

import pytest

from dpsynth.accounting import Budget, Ledger
from dpsynth.datasets import load_dataset
from dpsynth.errors import PrivacyError
from dpsynth.synthesizers import create


def test_epsilon_inf_with_a_ledger_is_refused_before_the_data_is_read(tmp_path):
    rows, schema = load_dataset("wage")
    rows = rows.head(300)
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.register_table("w", Budget(1.0, 1e-6), rows, schema)
    synth = create("mst", epsilon=float("inf"), random_state=0)
    with pytest.raises(PrivacyError, match="cannot spend through a ledger"):
        synth.fit(rows.iloc[:0], schema, ledger=ledger.recorder("w"))  # the empty table is not read
    assert not hasattr(synth, "schema_")
    assert ledger.status("w").epsilon == 0 and not ledger.spends("w")
