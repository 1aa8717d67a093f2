"""Streamed input (Parquet file, folder of Parquet files, CSV): identical fits to the
in-memory path for the same seed, bounded by batches, and bad input refused before spending."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tables import workers_schema, workers_table

from dpsynth.accounting import Budget, BudgetSession
from dpsynth.data.stream import StreamedTable, code_dtype, holdout_mask
from dpsynth.errors import DataReadError, DataValidationError, ParameterError
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import create

SCHEMA = workers_schema()


def _table(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    return workers_table(n, seed)


def _sample_of(name: str, data: object, schema: Schema = SCHEMA) -> pd.DataFrame:
    params = {"rounds": 4} if name == "aim" else {}
    synth = create(name, epsilon=1.0, random_state=7, **params).fit(data, schema)
    return synth.sample(500, random_state=1)


@pytest.mark.parametrize("name", ["aim", "mst"])
def test_streamed_parquet_folder_and_csv_fit_like_memory(tmp_path, name):
    df = _table()
    whole = tmp_path / "t.parquet"
    df.to_parquet(whole, index=False)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, start in enumerate(range(0, len(df), 1000)):
        part = df.iloc[start:start + 1000]
        part.to_parquet(folder / f"part-{i}.parquet", index=False)
    csv = tmp_path / "t.csv"
    df.to_csv(csv, index=False)
    expected = _sample_of(name, df)
    for data in (whole, str(folder), StreamedTable(csv, batch_rows=700),
                 StreamedTable(whole, batch_rows=128)):
        pd.testing.assert_frame_equal(_sample_of(name, data), expected)
    # a different seed gives another fit, so the comparison above can fail
    other = create(name, epsilon=1.0, random_state=8, **({"rounds": 4} if name == "aim" else {}))
    assert not other.fit(whole, SCHEMA).sample(500, random_state=1).equals(expected)


def test_streamed_fit_spends_like_memory(tmp_path):
    df = _table()
    path = tmp_path / "t.parquet"
    df.to_parquet(path, index=False)
    a, b = BudgetSession(Budget(1.0, 1e-6)), BudgetSession(Budget(1.0, 1e-6))
    s1 = create("aim", epsilon=1.0, random_state=3, rounds=3).fit(df, SCHEMA, ledger=a)
    s2 = create("aim", epsilon=1.0, random_state=3, rounds=3).fit(path, SCHEMA, ledger=b)
    assert a.spent_events() == b.spent_events()
    assert s1.privacy_ == s2.privacy_
    assert s2.n_rows_ == len(df)


def _refused(data: object, schema: Schema = SCHEMA) -> BaseException:
    session = BudgetSession(Budget(1.0, 1e-6))
    with pytest.raises((DataValidationError, DataReadError, ParameterError)) as err:
        create("aim", epsilon=1.0, random_state=0, rounds=2).fit(data, schema, ledger=session)
    assert session.spent_events() == ()
    return err.value


def test_bad_inputs_spend_nothing_and_leave_no_codes(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    df = _table(600)
    # a folder whose files disagree on a column's type
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    df.iloc[:300].to_parquet(mixed / "a.parquet", index=False)
    df.iloc[300:].astype({"age": str}).to_parquet(mixed / "b.parquet", index=False)
    assert "column 'age' is " in str(_refused(mixed))
    # one Parquet file whose column has another type than the schema says
    bad_type = tmp_path / "bad.parquet"
    df.assign(kids=df["kids"].map(lambda k: f"k{k}")).to_parquet(bad_type, index=False)
    assert "kids" in str(_refused(bad_type))
    # an unreadable file part way through a folder
    broken = tmp_path / "broken"
    broken.mkdir()
    df.iloc[:300].to_parquet(broken / "a.parquet", index=False)
    (broken / "b.parquet").write_bytes(b"PAR1 this is not parquet")
    assert "b.parquet" in str(_refused(broken))
    # a file truncated after its footer was read (data pages corrupt)
    late = tmp_path / "late"
    late.mkdir()
    df.iloc[:300].to_parquet(late / "a.parquet", index=False)
    pq.write_table(pa.Table.from_pandas(df.iloc[300:], preserve_index=False),
                   late / "b.parquet", compression="none")
    raw = bytearray((late / "b.parquet").read_bytes())
    raw[8:400] = b"\xff" * 392
    (late / "b.parquet").write_bytes(bytes(raw))
    _refused(late)
    # a value outside the schema in a late batch
    out_of_domain = df.copy()
    out_of_domain.loc[550, "job"] = "zzz"
    path = tmp_path / "ood.parquet"
    out_of_domain.to_parquet(path, index=False)
    assert "rows 500..599" in str(_refused(StreamedTable(path, batch_rows=100)))
    # undeclared domains: the discovery pass validates every batch before anything is spent
    undeclared = Schema((Column("age", "integer"), SCHEMA["job"]))
    assert "rows 500..599" in str(_refused(StreamedTable(path, batch_rows=100), undeclared))
    assert list((tmp_path / "tmp").iterdir()) == []  # no code files left behind


def test_non_marginal_synthesizers_read_the_stream_whole(tmp_path):
    df = _table(200)
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    got = StreamedTable(path, batch_rows=64).read_all(SCHEMA)
    pd.testing.assert_frame_equal(got[["age", "job", "kids"]], df[["age", "job", "kids"]],
                                  check_dtype=False)


def test_code_dtype_and_holdout_hash():
    assert code_dtype([3, 256]) == np.uint8
    assert code_dtype([257]) == np.uint16
    keys = pd.Series(range(10_000))
    mask = holdout_mask(keys, 0.2, salt="s")
    assert 0.17 < mask.mean() < 0.23
    # stable: the same key is held out whatever batch it comes in
    again = np.concatenate([holdout_mask(keys[:3000], 0.2, "s"),
                            holdout_mask(keys[3000:], 0.2, "s")])
    assert (mask == again).all()
    assert not (holdout_mask(keys, 0.2, salt="t") == mask).all()


def test_sample_to_writes_chunks_like_one_generator(tmp_path):
    synth = create("mst", epsilon=1.0, random_state=0).fit(_table(800), SCHEMA)
    out = synth.sample_to(tmp_path / "s.parquet", 2500, random_state=4, chunk_rows=1000)
    got = pd.read_parquet(out)
    assert len(got) == 2500 and list(got.columns) == [c.name for c in SCHEMA.data_columns]
    assert SCHEMA.problems(got) == []
    again = synth.sample_to(tmp_path / "t.parquet", 2500, random_state=4, chunk_rows=1000)
    pd.testing.assert_frame_equal(pd.read_parquet(again), got)
    rng = np.random.default_rng(4)
    by_hand = pd.concat([synth.sample(k, random_state=rng) for k in (1000, 1000, 500)],
                        ignore_index=True)
    pd.testing.assert_frame_equal(got, by_hand, check_dtype=False)
    csv = synth.sample_to(tmp_path / "s.csv", 1500, random_state=4, chunk_rows=1000)
    assert len(pd.read_csv(csv)) == 1500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv", "s.parquet", "t.parquet"]


def test_sample_to_leaves_nothing_when_writing_fails(tmp_path, monkeypatch):
    synth = create("mst", epsilon=1.0, random_state=0).fit(_table(800), SCHEMA)
    calls = {"n": 0}
    real = type(synth).sample

    def failing(self, n, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return real(self, n, **kw)

    monkeypatch.setattr(type(synth), "sample", failing)
    with pytest.raises(RuntimeError):
        synth.sample_to(tmp_path / "s.parquet", 2500, random_state=4, chunk_rows=1000)
    assert list(tmp_path.iterdir()) == []


def test_cli_fits_a_parquet_folder_in_batches_and_samples_in_chunks(tmp_path):
    from typer.testing import CliRunner

    from dpsynth.cli import app

    df = _table(1500)
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(3):
        df.iloc[i * 500:(i + 1) * 500].to_parquet(folder / f"p{i}.parquet", index=False)
    schema_file = SCHEMA.save(tmp_path / "schema.json")
    runner = CliRunner()
    res = runner.invoke(app, ["fit", str(folder), "--schema", str(schema_file), "--out",
                              str(tmp_path / "m"), "--synthesizer", "mst", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert "on 1500 rows" in res.output
    res = runner.invoke(app, ["sample", str(tmp_path / "m"), "--n-rows", "1200", "--out",
                              str(tmp_path / "s.parquet"), "--seed", "2"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_parquet(tmp_path / "s.parquet")) == 1200
    in_memory = create("mst", epsilon=1.0, random_state=1).fit(df, SCHEMA)
    from dpsynth.synthesizers import BaseSynthesizer

    streamed = BaseSynthesizer.load(tmp_path / "m")
    pd.testing.assert_frame_equal(streamed.sample(300, random_state=0),
                                  in_memory.sample(300, random_state=0))


def test_cli_fit_with_a_ledger_streams_and_spends_on_the_registered_table(tmp_path, monkeypatch):
    """fit --ledger on a Parquet file hashes its identity batch by batch (never read whole),
    spends on the registered dataset, and a different file is refused with nothing spent."""
    from typer.testing import CliRunner

    from dpsynth.accounting.ledger import Ledger
    from dpsynth.cli import app
    from dpsynth.data import io

    df = _table(1500)
    df.to_parquet(tmp_path / "t.parquet", index=False)
    df.iloc[:1400].to_parquet(tmp_path / "other.parquet", index=False)
    ledger = tmp_path / "ledger.sqlite"
    Ledger(ledger, create=True).register_table("t", Budget(2.0, 1e-6), df, SCHEMA)
    schema_file = SCHEMA.save(tmp_path / "schema.json")

    def refuse(*args, **kwargs):
        raise AssertionError("the table was read whole")

    monkeypatch.setattr(io, "read_table", refuse)
    runner = CliRunner()
    args = ["--schema", str(schema_file), "--synthesizer", "mst", "--epsilon", "0.5",
            "--ledger", str(ledger), "--dataset", "t"]
    res = runner.invoke(app, ["fit", str(tmp_path / "t.parquet"), "--out", str(tmp_path / "m"),
                              *args])
    assert res.exit_code == 0, res.output
    assert len(Ledger(ledger).spent_events("t")) >= 1
    spent = Ledger(ledger).spent_events("t")
    res = runner.invoke(app, ["fit", str(tmp_path / "other.parquet"), "--out",
                              str(tmp_path / "m2"), *args])
    assert res.exit_code != 0 and "fingerprint" in res.output.lower()
    assert Ledger(ledger).spent_events("t") == spent and not (tmp_path / "m2").exists()


def test_read_all_keeps_identifiers_when_asked(tmp_path):
    schema = Schema((Column("id", "identifier"), *SCHEMA.columns))
    df = _table(300).assign(id=[f"r{i}" for i in range(300)])
    df.to_parquet(tmp_path / "t.parquet", index=False)
    table = StreamedTable(tmp_path / "t.parquet", batch_rows=100)
    assert "id" not in table.read_all(schema).columns
    whole = table.read_all(schema, all_columns=True)
    assert list(whole["id"]) == list(df["id"]) and len(whole) == 300
