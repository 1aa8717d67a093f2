"""Ledger storage: missing files, formats, the SQLAlchemy back-end, dataset fingerprints."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from dpsynth.accounting import Budget, LaplaceEvent, PureDPEvent
from dpsynth.accounting._ledger_store import LedgerNotFoundError
from dpsynth.accounting.fingerprint import content_hash, fingerprint, identify
from dpsynth.accounting.ledger import Ledger
from dpsynth.data.io import read_table
from dpsynth.errors import BudgetExceededError, DataReadError, ParameterError
from dpsynth.schema import Column, Schema

FP = "sha256:" + "e" * 64


def test_missing_ledger_is_not_created_when_reading(tmp_path):
    path = tmp_path / "nope.sqlite"
    with pytest.raises(LedgerNotFoundError, match="budget register"):
        Ledger(path, create=False)
    assert not path.exists()
    assert isinstance(LedgerNotFoundError("x"), FileNotFoundError)


def test_ledger_creates_parent_directories(tmp_path):
    book = Ledger(tmp_path / "a" / "b" / "ledger.sqlite")
    assert book.head() == (0, "0" * 64)
    assert book.verify() == []
    assert book.datasets() == ()
    (tmp_path / "afile").write_text("")
    with pytest.raises(ParameterError, match="is a file"):
        Ledger(tmp_path / "afile" / "ledger.sqlite")


def test_other_format_is_refused(tmp_path):
    path = tmp_path / "l.sqlite"
    Ledger(path)
    con = sqlite3.connect(path)
    con.execute("UPDATE ledger_meta SET value = '99' WHERE key = 'format'")
    con.commit()
    con.close()
    with pytest.raises(ParameterError, match="format 99"):
        Ledger(path)


def test_sqlalchemy_url_shares_the_file_format(tmp_path):
    pytest.importorskip("sqlalchemy")
    path = tmp_path / "shared.sqlite"
    url = f"sqlite:///{path}"
    server = Ledger(url)
    server.register("census", Budget(1.0, 1e-6), fingerprint=FP, n_rows=1000)
    with server.spend("census", "bounds:age", LaplaceEvent(5.0)):
        pass
    with pytest.raises(BudgetExceededError):
        with server.spend("census", "train", PureDPEvent(0.9)):
            pass
    local = Ledger(path)  # the same rows through the sqlite3 back-end
    with local.spend("census", "train", PureDPEvent(0.5)):
        pass
    assert local.verify() == [] and server.verify() == []
    assert server.status("census") == local.status("census")
    assert server.status("census").n_spends == 2
    assert server.entries() == local.entries()


def test_sqlalchemy_refuses_in_memory_and_missing(tmp_path):
    pytest.importorskip("sqlalchemy")
    with pytest.raises(ParameterError, match="in-memory"):
        Ledger("sqlite://")
    with pytest.raises(LedgerNotFoundError):
        Ledger(f"sqlite:///{tmp_path / 'absent.sqlite'}", create=False)


def test_fingerprint_ignores_order_and_sees_every_value():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"age": rng.integers(0, 99, 50), "job": rng.choice(["a", "b"], 50),
                       "pay": rng.normal(size=50)})
    base = fingerprint(df)
    assert base.startswith("sha256:") and len(base) == 7 + 64
    assert fingerprint(df.sample(frac=1.0, random_state=0)) == base
    assert fingerprint(df[["pay", "job", "age"]]) == base
    assert fingerprint(df.set_index("job")) != base  # a column became the index: gone
    changed = df.copy()
    changed.loc[7, "pay"] += 1e-9
    assert fingerprint(changed) != base
    assert fingerprint(df.iloc[1:]) != base
    assert fingerprint(df.rename(columns={"pay": "wage"})) != base


def test_fingerprint_includes_the_schema():
    df = pd.DataFrame({"x": [1, 2, 3]})
    a = Schema((Column("x", "integer", lower=0, upper=10),))
    b = Schema((Column("x", "integer", lower=0, upper=11),))
    assert fingerprint(df, a) != fingerprint(df, b) != fingerprint(df)
    assert fingerprint(df, a) == fingerprint(df, a.to_dict())
    with pytest.raises(ParameterError):
        content_hash([1, 2, 3])  # type: ignore[arg-type]


def test_identity_is_the_same_for_csv_and_parquet(tmp_path):
    df = pd.DataFrame({"x": [1, 2, 3], "y": ["u", "v", "w"]})
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet", index=False)
    ident = identify(read_table(tmp_path / "t.csv"))
    assert ident == identify(df)
    assert ident.n_rows == 3 and ident.fingerprint == fingerprint(df)
    assert identify(read_table(tmp_path / "t.parquet")) == ident
    with pytest.raises(DataReadError):
        read_table(tmp_path / "missing.csv")
