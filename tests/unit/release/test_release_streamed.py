"""The release of a table read in batches: Parquet file, folder and CSV ship; the holdout is a
row-key hash (stable across batch sizes) that never reaches the fit; a planted leak is caught;
bad input spends nothing and writes nothing; the fit equals the in-memory fit of the same
training rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from planted import Copycat
from tables import workers_schema, workers_table

from dpsynth.accounting import Budget
from dpsynth.accounting.fingerprint import StreamedIdentity, identify
from dpsynth.accounting.ledger import Ledger
from dpsynth.data.stream import StreamedTable
from dpsynth.errors import DataReadError, DataValidationError, ParameterError
from dpsynth.release import DatasetCard, release
from dpsynth.release.streamed import BottomK, TrainingRows, _salt, scan
from dpsynth.schema import Column, Schema
from dpsynth.synthesizers import create

SCHEMA = workers_schema(("a", "b", "c", "d", "planted"))


def _table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    return workers_table(n, seed)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("streamed")
    df = _table()
    paths = {"parquet": folder / "t.parquet", "csv": folder / "t.csv",
             "folder": folder / "parts"}
    df.to_parquet(paths["parquet"], index=False)
    df.to_csv(paths["csv"], index=False)
    paths["folder"].mkdir()
    for i, start in enumerate(range(0, len(df), 700)):
        df.iloc[start:start + 700].to_parquet(paths["folder"] / f"p{i}.parquet", index=False)
    return df, paths


def _release(data, tmp_path, **kw):
    args = {"epsilon": 1.0, "dataset": "t", "ledger": tmp_path / "l.sqlite",
            "cap": Budget(5, 1e-5), "synthesizer": "mst", "random_state": 0,
            "n_targets": 200, "out": tmp_path / "bundle"}
    return release(data, SCHEMA, **{**args, **kw})


class StreamingCopycat(Copycat):
    """The planted leak, fitted from a stream: memorises the training rows it is given."""

    streams = True

    def _fit_streamed(self, stream, schema, *, ledger):
        rows = pd.concat(list(stream.batches(schema)), ignore_index=True)
        Copycat.fit(self, rows, schema, ledger=ledger)


def test_parquet_file_and_csv_ship_with_bounded_samples(files, tmp_path):
    df, paths = files
    results = {name: _release(paths[name] if name != "csv" else StreamedTable(
        paths[name], batch_rows=300), tmp_path / name, sample_rows=500)
        for name in ("parquet", "csv")}
    for name, result in results.items():
        card = result.card
        assert card.decision == "ship", (name, card.reasons)
        assert card.source["n_train"] + card.source["n_holdout"] == len(df)
        assert 0.15 < card.source["n_holdout"] / len(df) < 0.25
        assert "hashes below 0.2" in card.source["holdout_use"]
        assert "--stream --sample-rows 500" in card.reproduce["rerun"]
        assert card.audit["n_train"] <= 500 and card.audit["n_holdout"] <= 500
        assert card.evaluation["fidelity"]["compared_with"].startswith("a sample of 500 of")
        # the gate read 500 synthetic rows; the bundle holds as many as the training rows
        assert len(result.synthetic) == 500
        assert card.synthetic["n_rows"] == card.source["n_train"]
        shipped = pd.read_parquet(tmp_path / name / "bundle" / "synthetic.parquet")
        assert len(shipped) == card.source["n_train"]
        assert len(pd.read_csv(tmp_path / name / "bundle" / "synthetic.csv")) == len(shipped)
        # the rows the gate read are rows of the bundle, which the card's seed redraws
        redrawn = result.synthesizer.sample(len(shipped),
                                            random_state=card.reproduce["sample_seed"])
        pd.testing.assert_frame_equal(redrawn, shipped, check_dtype=False,
                                      check_categorical=False)
        assert len(result.synthetic.merge(shipped.drop_duplicates())) >= 500
    # the same rows and positions as a Parquet file or a CSV: the same split and fit
    a, c = results["parquet"], results["csv"]
    assert a.card.source["fingerprint"] == c.card.source["fingerprint"] == identify(
        StreamedTable(paths["parquet"]).read_all(SCHEMA, all_columns=True),
        SCHEMA).fingerprint
    assert a.card.source["n_holdout"] == c.card.source["n_holdout"]
    assert a.holdout_index.equals(c.holdout_index)
    pd.testing.assert_frame_equal(a.synthetic, c.synthetic)
    # a folder keys rows by file and row: another split of the same rows
    folder = TrainingRows(paths["folder"], salt=_salt(0, "holdout"))
    assert not scan(folder, SCHEMA, 10).holdout.index.equals(
        scan(TrainingRows(paths["parquet"], salt=_salt(0, "holdout")), SCHEMA, 10
             ).holdout.index)


def test_planted_leak_is_caught_and_nothing_is_written(files, tmp_path):
    _, paths = files
    result = _release(paths["parquet"], tmp_path, synthesizer=StreamingCopycat(),
                      sample_rows=1000)
    assert result.card.decision == "reject"
    assert result.card.audit["verdict"] == "leak"
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == [
        "dataset_card.yaml", "report.html"]


def test_holdout_is_stable_across_batch_sizes_and_samples_too(files):
    _, paths = files
    seen = []
    for batch in (7, 256, 5000):
        table = TrainingRows(paths["parquet"], batch, fraction=0.2, salt="s")
        found = scan(table, SCHEMA, 300)
        train_index = pd.Index(np.concatenate([f.index for f in table.batches(SCHEMA)]))
        seen.append((train_index, found.holdout.index, found.train.index, found.n_holdout))
    for other in seen[1:]:
        assert all(a.equals(b) for a, b in zip(seen[0][:3], other[:3], strict=True))
        assert other[3] == seen[0][3]
    # another salt holds out other rows
    other = scan(TrainingRows(paths["parquet"], fraction=0.2, salt="t"), SCHEMA, 300)
    assert not other.holdout.index.equals(seen[0][1])
    # an identifier column keys the rows: the split follows the key, not the position
    keyed = Schema((*SCHEMA.columns, Column("pid", "identifier")))
    df = _table(300).assign(pid=[f"p{i}" for i in range(300)])
    a, b = TrainingRows("a.parquet", key="pid", salt="s"), TrainingRows("b.parquet", key="pid",
                                                                         salt="s")
    shuffled = df.sample(frac=1, random_state=0)
    assert set(df["pid"][a.held_out(df)]) == set(shuffled["pid"][b.held_out(shuffled)])
    assert keyed.columns[-1].kind == "identifier"


def test_bottom_k_sample_keeps_the_smallest_hashes():
    frame = pd.DataFrame({"x": np.arange(1000)})
    hashes = np.random.default_rng(0).permutation(1000).astype(np.uint64)
    sample = BottomK(50)
    for start in range(0, 1000, 128):
        sample.add(frame.iloc[start:start + 128], hashes[start:start + 128])
    assert sorted(sample.rows(["x"])["x"]) == sorted(np.flatnonzero(hashes < 50))


def test_holdout_rows_never_reach_the_fit(files, tmp_path, monkeypatch):
    df, _ = files
    planted = df.copy()
    # the salt of a release with seed 0: plant a category only in the rows it holds out
    table = TrainingRows(tmp_path / "x.parquet", fraction=0.2, salt=_salt(0, "holdout"))
    held = table.held_out(planted)
    planted.loc[held, "job"] = "planted"
    planted.to_parquet(tmp_path / "x.parquet", index=False)
    fitted: list[pd.DataFrame] = []
    original = TrainingRows.batches

    def spy(self, schema, *, all_columns=False, to_domain=False):
        for frame in original(self, schema, all_columns=all_columns, to_domain=to_domain):
            fitted.append(frame)
            yield frame

    monkeypatch.setattr(TrainingRows, "batches", spy)
    result = _release(tmp_path / "x.parquet", tmp_path)
    seen = pd.concat(fitted)
    assert len(seen) == result.card.source["n_train"] == int((~held).sum())
    assert "planted" not in set(seen["job"])
    # the holdout (all of it: fewer rows than sample_rows) is exactly the planted rows
    assert set(result.holdout_index) == set(np.flatnonzero(held))


def test_streamed_fit_equals_the_in_memory_fit_of_the_same_training_rows(files, tmp_path):
    df, paths = files
    result = _release(paths["parquet"], tmp_path)
    card = result.card
    table = TrainingRows(paths["parquet"], fraction=0.2, salt=_salt(0, "holdout"))
    train = pd.concat(list(table.batches(SCHEMA)))
    memory = create("mst", epsilon=1.0, delta=1e-5,
                    random_state=card.attempts[0].seeds.generator).fit(train, SCHEMA)
    pd.testing.assert_frame_equal(memory.sample(500, random_state=1),
                                  result.synthesizer.sample(500, random_state=1))
    other = create("mst", epsilon=1.0, delta=1e-5, random_state=1).fit(train, SCHEMA)
    assert not other.sample(500, random_state=1).equals(memory.sample(500, random_state=1))
    # the in-memory release of the same rows holds out other rows but decides the same,
    # and names the table by the same fingerprint in the ledger
    whole = _release(df, tmp_path / "memory", ledger=tmp_path / "m.sqlite")
    assert whole.card.decision == card.decision == "ship"
    assert whole.card.source["fingerprint"] == card.source["fingerprint"]


def test_bad_input_spends_nothing_and_writes_nothing(files, tmp_path):
    df, _ = files
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    df.iloc[:1000].to_parquet(mixed / "a.parquet", index=False)
    df.iloc[1000:].astype({"age": str}).to_parquet(mixed / "b.parquet", index=False)
    late = df.copy()
    late.loc[1900, "job"] = "zzz"
    late.to_parquet(tmp_path / "late.parquet", index=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    df.iloc[:1000].to_parquet(broken / "a.parquet", index=False)
    (broken / "b.parquet").write_bytes(b"PAR1 not parquet")
    cases = [(mixed, DataValidationError, "column 'age' is"),
             (StreamedTable(tmp_path / "late.parquet", batch_rows=500), DataValidationError,
              "rows 1500..1999"),
             (broken, DataReadError, "b.parquet"),
             (tmp_path / "nowhere.parquet", DataReadError, "No such file")]
    for i, (data, error, message) in enumerate(cases):
        with pytest.raises(error, match=message):
            _release(data, tmp_path, out=tmp_path / f"b{i}")
        assert not (tmp_path / f"b{i}").exists()
    assert Ledger(tmp_path / "l.sqlite", create=True).datasets() == ()
    # what a stream cannot do is refused before reading
    with pytest.raises(ParameterError, match="does not support: clip"):
        _release(tmp_path / "late.parquet", tmp_path, clip=True)
    with pytest.raises(ParameterError, match="sample_rows"):
        _release(tmp_path / "late.parquet", tmp_path, sample_rows=10)


def test_streamed_identity_equals_the_in_memory_one(files):
    df, _ = files
    acc = StreamedIdentity()
    try:
        for start in range(0, len(df), 333):
            acc.add(df.iloc[start:start + 333])
        assert acc.result(SCHEMA) == identify(df, SCHEMA)
    finally:
        acc.close()


def test_cli_streams_a_parquet_folder(files, tmp_path):
    from cli_app import cli_app
    from typer.testing import CliRunner

    from dpsynth.commands.release import register

    _, paths = files
    schema = tmp_path / "s.yaml"
    SCHEMA.save(schema)
    common = ["release", str(paths["folder"]), "--schema", str(schema), "--epsilon", "1",
              "--dataset", "t", "--ledger", str(tmp_path / "l.sqlite"), "--cap-epsilon", "3",
              "--seed", "0", "--quiet", "--n-targets", "200", "--synthesizer", "mst",
              "--target", "job", "--positive", "a", "--stream", "--sample-rows", "1000"]
    result = CliRunner().invoke(cli_app(register), [*common, "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    card = DatasetCard.load(tmp_path / "b")
    assert "hashes below" in card.source.holdout_use and "--stream" in \
        card.provenance.invocation
    assert card.source.n_train + card.source.n_holdout == 2000
    assert card.evaluation["fidelity"]["compared_with"].startswith("a sample of 1000 of")
    assert card.evaluation["utility"]["tested_on"] == "holdout rows"  # fewer than 1000
    refused = CliRunner().invoke(cli_app(register), [*common[:-9], "--synthesizer", "dpvae",
                                                     "--stream", "--out", str(tmp_path / "c")])
    assert refused.exit_code == 2 and "reads its table whole" in refused.output
    assert not (tmp_path / "c").exists()


def test_a_missing_registration_is_said_before_the_table_is_read(files, tmp_path, monkeypatch):
    from dpsynth.errors import LedgerNotFoundError, UnknownDatasetError
    from dpsynth.release import streamed

    _, paths = files

    def refuse(*args, **kwargs):
        raise AssertionError("the table was read before the ledger was checked")

    monkeypatch.setattr(streamed, "scan", refuse)
    with pytest.raises(LedgerNotFoundError):  # no ledger file at all
        _release(paths["parquet"], tmp_path, cap=None)
    Ledger(tmp_path / "l.sqlite", create=True).register_table(
        "other", Budget(1.0, 1e-5), files[0], SCHEMA)
    with pytest.raises(UnknownDatasetError):  # a ledger without this dataset
        _release(paths["parquet"], tmp_path, cap=None)
    assert not (tmp_path / "bundle").exists()
