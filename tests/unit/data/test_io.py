"""read_table / write_table: every bad file gives one clear DataReadError; schemas parse kinds."""

from __future__ import annotations

import gzip
import logging

import numpy as np
import pandas as pd
import pytest

from dpsynth.data.io import coerce_to_schema, read_table, write_table
from dpsynth.errors import DataReadError, DataValidationError, ParameterError
from dpsynth.schema import Column, Schema

ROWS = "name,age,city\nAnn,31,Paris\nBob,42,Lyon\nCléo,28,Nice\n"


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"name": ["Ann", "Bob", "Cléo"], "age": [31, 42, 28],
                         "city": ["Paris", "Lyon", "Nice"]})


def _write(tmp_path, name: str, text: str, encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# -- formats ----------------------------------------------------------------------------------
def test_reads_csv(tmp_path, frame):
    df = read_table(_write(tmp_path, "t.csv", ROWS))
    pd.testing.assert_frame_equal(df, frame, check_dtype=False)
    assert df["age"].dtype.kind == "i"


@pytest.mark.parametrize("delim", [";", "\t", "|"])
def test_detects_other_delimiters_and_logs_it(tmp_path, frame, caplog, delim):
    path = _write(tmp_path, "t.csv", ROWS.replace(",", delim))
    with caplog.at_level(logging.INFO, logger="dpsynth.data.io"):
        df = read_table(path)
    pd.testing.assert_frame_equal(df, frame, check_dtype=False)
    assert repr(delim) in caplog.text


def test_semicolon_file_with_decimal_commas_is_detected(tmp_path):
    df = read_table(_write(tmp_path, "t.csv", "a;b\n1,5;x\n2,5;y\n"))
    assert list(df.columns) == ["a", "b"] and df["a"].tolist() == ["1,5", "2,5"]


def test_single_column_csv_is_fine(tmp_path):
    df = read_table(_write(tmp_path, "t.csv", "x\n1\n2\n"))
    assert df["x"].tolist() == [1, 2]


def test_bom_is_ignored(tmp_path, frame):
    df = read_table(_write(tmp_path, "t.csv", "\ufeff" + ROWS))
    assert list(df.columns) == list(frame.columns)


def test_csv_gz_and_tsv_round_trip(tmp_path, frame):
    for name in ("t.csv.gz", "t.tsv", "t.tsv.gz", "t.csv"):
        path = write_table(frame, tmp_path / name)
        pd.testing.assert_frame_equal(read_table(path), frame, check_dtype=False)
    with gzip.open(tmp_path / "t.csv.gz", "rt") as fh:
        assert fh.readline().strip() == "name,age,city"


def test_parquet_round_trip_keeps_types(tmp_path):
    df = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64"),
                       "d": pd.to_datetime(["2020-01-01", "2021-06-30", None]),
                       "s": ["a", "b", None]})
    back = read_table(write_table(df, tmp_path / "out" / "t.parquet"))
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert str(back["n"].dtype) == "Int64"


def test_json_lines_and_array(tmp_path, frame):
    lines = frame.to_json(orient="records", lines=True, force_ascii=False)
    assert read_table(_write(tmp_path, "t.jsonl", lines)).equals(frame)
    array = frame.to_json(orient="records", force_ascii=False)
    pd.testing.assert_frame_equal(read_table(_write(tmp_path, "t.json", array)), frame)


def test_write_table_rejects_unknown_extension(tmp_path, frame):
    with pytest.raises(ParameterError, match="'path'"):
        write_table(frame, tmp_path / "t.xlsx")


# -- bad files --------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(DataReadError, match="File not found: .*nope.csv"):
        read_table(tmp_path / "nope.csv")


def test_directory(tmp_path):
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(DataReadError, match="is a directory"):
        read_table(tmp_path / "d.csv")


@pytest.mark.parametrize("name", ["e.csv", "e.parquet", "e.jsonl"])
def test_empty_file(tmp_path, name):
    with pytest.raises(DataReadError, match="is empty"):
        read_table(_write(tmp_path, name, ""))


@pytest.mark.parametrize("name,text", [("b.csv", "\n\n  \n"), ("b.jsonl", "\n \n")])
def test_blank_file(tmp_path, name, text):
    with pytest.raises(DataReadError, match="no data"):
        read_table(_write(tmp_path, name, text))


def test_empty_gzip(tmp_path):
    path = tmp_path / "e.csv.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"")
    with pytest.raises(DataReadError, match="no data"):
        read_table(path)


def test_corrupt_gzip(tmp_path):
    with pytest.raises(DataReadError, match="Cannot read"):
        read_table(_write(tmp_path, "c.csv.gz", "not gzip at all"))


def test_latin1_file_names_the_encoding_and_the_fix(tmp_path):
    path = _write(tmp_path, "t.csv", ROWS, encoding="latin-1")
    with pytest.raises(DataReadError) as info:
        read_table(path)
    message = str(info.value)
    assert "utf-8" in message and "latin-1" in message and "--encoding" in message
    assert "0xe9" in message
    assert read_table(path, encoding="latin-1")["name"].tolist() == ["Ann", "Bob", "Cléo"]


def test_bad_byte_beyond_the_sniffed_sample_is_caught(tmp_path):
    body = "a,b\n" + "1,x\n" * 30_000 + "2,\xe9\n"
    with pytest.raises(DataReadError, match="cannot be decoded as utf-8"):
        read_table(_write(tmp_path, "t.csv", body, encoding="latin-1"))


def test_long_first_line_with_multibyte_characters_is_not_an_encoding_error(tmp_path):
    header = "x" * (64 * 1024 - 1) + "é,b"  # the 64 KiB sample ends inside the "é"
    df = read_table(_write(tmp_path, "t.csv", header + "\n1,2\n"))
    assert df.shape == (1, 2) and df.columns[0].endswith("é")


def test_given_delimiter_that_does_not_fit_is_named(tmp_path):
    path = _write(tmp_path, "t.csv", ROWS.replace(",", ";"))
    with pytest.raises(DataReadError) as info:
        read_table(path, delimiter=",")
    assert "';'" in str(info.value) and "--delimiter" in str(info.value)
    assert read_table(path, delimiter=";").shape == (3, 3)


def test_ragged_rows_name_the_line(tmp_path):
    with pytest.raises(DataReadError, match="line 3"):
        read_table(_write(tmp_path, "t.csv", "a,b\n1,2\n3,4,5\n"))


def test_rows_wider_than_header(tmp_path):
    with pytest.raises(DataReadError, match="more fields than the header"):
        read_table(_write(tmp_path, "t.csv", "a,b\n1,2,3\n4,5,6\n"))


@pytest.mark.parametrize("name,text", [("t.parquet", "PAR1 nonsense"),
                                       ("t.jsonl", '{"a": 1}\n{"a": \n')])
def test_corrupt_parquet_and_json(tmp_path, name, text):
    with pytest.raises(DataReadError, match="not"):
        read_table(_write(tmp_path, name, text))


def test_unsupported_extension(tmp_path):
    with pytest.raises(DataReadError, match="unsupported file type '.xlsx'"):
        read_table(_write(tmp_path, "t.xlsx", "x"))


@pytest.mark.parametrize("kwargs,name", [({"delimiter": ";;"}, "delimiter"),
                                         ({"encoding": "no-such-codec"}, "encoding")])
def test_bad_options(tmp_path, kwargs, name):
    with pytest.raises(ParameterError, match=repr(name)):
        read_table(_write(tmp_path, "t.csv", ROWS), **kwargs)


# -- parsing with a schema --------------------------------------------------------------------
SCHEMA = Schema((
    Column("zip", "categorical", categories=("01000", "75001")),
    Column("code", "categorical", categories=(1, 2, 3)),
    Column("flag", "categorical", categories=(False, True)),
    Column("n", "integer", nullable=True),
    Column("x", "numeric"),
    Column("day", "datetime", nullable=True),
    Column("note", "text"),
))


def test_schema_parses_each_kind_and_keeps_column_order(tmp_path):
    text = ("note,zip,code,flag,n,x,day\n"
            "hi,01000,1,true,5,1.5,2020-01-02\n"
            "yo,75001,3,False,,2,\n")
    df = read_table(_write(tmp_path, "t.csv", text), schema=SCHEMA)
    assert list(df.columns) == ["note", "zip", "code", "flag", "n", "x", "day"]
    assert df["zip"].tolist() == ["01000", "75001"]  # leading zeros kept
    assert df["code"].tolist() == [1, 3] and df["code"].dtype.kind == "i"
    assert df["flag"].tolist() == [True, False]
    assert str(df["n"].dtype) == "Int64" and df["n"].isna().tolist() == [False, True]
    assert df["x"].dtype == np.float64
    assert pd.api.types.is_datetime64_any_dtype(df["day"])
    SCHEMA.validate(df)


def test_schema_keeps_bad_values_for_validate_to_report(tmp_path):
    text = ("note,zip,code,flag,n,x,day\n"
            "hi,01000,1,true,5,abc,2020-01-02\n"
            "yo,99999,7,maybe,2.5,2,not a date\n")
    df = read_table(_write(tmp_path, "t.csv", text), schema=SCHEMA)
    assert df["x"].tolist() == ["abc", "2"]
    with pytest.raises(DataValidationError) as info:
        SCHEMA.validate(df)
    problems = "\n".join(info.value.problems)
    for name in ("'x'", "'zip'", "'code'", "'flag'", "'n'", "'day'"):
        assert name in problems


def test_schema_with_mixed_date_formats(tmp_path):
    df = coerce_to_schema(pd.DataFrame({"day": ["2020-01-02", "03/04/2021", None]}),
                          Schema((Column("day", "datetime", nullable=True),)))
    assert df["day"].dt.year.tolist()[:2] == [2020, 2021]


def test_schema_on_parquet_parses_string_dates(tmp_path):
    raw = pd.DataFrame({"day": ["2020-01-02", "2021-03-04"], "n": [1.0, 2.0]})
    schema = Schema((Column("day", "datetime"), Column("n", "integer")))
    df = read_table(write_table(raw, tmp_path / "t.parquet"), schema=schema)
    assert pd.api.types.is_datetime64_any_dtype(df["day"]) and df["n"].dtype == np.int64
