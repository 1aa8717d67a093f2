import json

import numpy as np
import pandas as pd
import pytest

from dpsynth.errors import DataValidationError, SchemaError
from dpsynth.schema import Column, Schema, draft_schema


@pytest.fixture
def schema() -> Schema:
    return Schema(columns=(
        Column("id", "identifier"),
        Column("age", "integer", lower=18, upper=90),
        Column("income", "numeric", lower=0.0, upper=1e6, nullable=True),
        Column("colour", "categorical", categories=("red", "green")),
        Column("grade", "ordinal", categories=("low", "mid", "high")),
        Column("joined", "datetime", lower="2000-01-01", upper="2030-01-01"),
        Column("note", "text", nullable=True, max_length=100),
    ))


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [1, 2, 3],
        "age": [20, 35, 60],
        "income": [1000.0, None, 52000.5],
        "colour": ["red", "green", "red"],
        "grade": ["low", "high", "mid"],
        "joined": ["2001-02-03", "2010-05-06", "2020-01-01"],
        "note": ["hello", None, "bye"],
    })


def test_valid_frame_passes(schema, frame):
    schema.validate(frame)


def test_every_problem_is_reported_at_once(schema, frame):
    bad = frame.astype({"age": object, "income": object}).drop(columns=["grade"])
    bad["extra"] = 1
    bad.loc[0, "age"] = "old"
    bad.loc[1, "age"] = 150
    bad.loc[2, "colour"] = "blue"
    bad.loc[0, "joined"] = "not a date"
    bad.loc[1, "colour"] = None
    with pytest.raises(DataValidationError) as info:
        schema.validate(bad)
    text = "\n".join(info.value.problems)
    for expected in ("missing from the data: ['grade']", "not in the schema: ['extra']",
                     "'age' is integer but 1 value(s) are not numbers",
                     "'age' has 1 value(s) outside its declared bounds",
                     "'colour' has 1 value(s) outside its declared categories",
                     "'colour' has 1 missing value(s) but is not nullable",
                     "'joined' is datetime but 1 value(s) cannot be parsed"):
        assert expected in text
    assert len(info.value.problems) == 7


def test_all_null_and_empty(schema, frame):
    bad = frame.copy()
    bad["income"] = np.nan
    assert any("entirely null" in p for p in schema.problems(bad))
    assert schema.problems(frame.iloc[:0]) == ["the table has no rows"]


def test_non_integer_in_integer_column(schema, frame):
    bad = frame.astype({"age": float})
    bad.loc[0, "age"] = 20.5
    assert any("not whole numbers" in p for p in schema.problems(bad))


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip(schema, tmp_path, suffix):
    path = schema.save(tmp_path / f"s{suffix}")
    assert Schema.load(path) == schema


def test_malformed_columns_are_all_reported():
    with pytest.raises(SchemaError) as info:
        Schema.from_dict({"columns": [
            {"name": "a", "kind": "colour"},
            {"name": "b", "kind": "numeric", "lower": 5, "upper": 1},
            {"name": "c", "kind": "categorical", "categories": ["x", "x"]},
            {"name": "d", "kind": "numeric", "bogus": 1},
        ]})
    message = str(info.value)
    assert "kind must be one of" in message and "must be below upper" in message
    assert "duplicates" in message and "unknown keys ['bogus']" in message


def test_duplicate_names_rejected():
    with pytest.raises(SchemaError, match="Duplicate"):
        Schema(columns=(Column("a", "integer"), Column("a", "numeric")))


def test_undeclared_domains(schema):
    s = Schema(columns=(Column("a", "numeric"), Column("b", "categorical"),
                        Column("c", "integer", lower=0, upper=3)))
    assert s.undeclared() == ["a", "b"]
    assert schema.undeclared() == []


def test_draft_is_not_public_and_covers_the_frame(frame):
    draft = draft_schema(frame)
    assert draft.names == list(frame.columns)
    assert not any(c.public for c in draft.columns)
    assert draft["colour"].categories == ("green", "red")
    assert draft["age"].kind == "integer" and draft["age"].lower == 20
    assert draft.declare_public().is_public
    draft.validate(frame.assign(joined=frame["joined"]))


def test_from_sdv_metadata(tmp_path):
    meta = {"tables": {"people": {
        "primary_key": "pid",
        "columns": {
            "pid": {"sdtype": "id"},
            "age": {"sdtype": "numerical", "computer_representation": "Int64"},
            "salary": {"sdtype": "numerical"},
            "city": {"sdtype": "categorical"},
            "email": {"sdtype": "email"},
            "born": {"sdtype": "datetime", "datetime_format": "%Y-%m-%d"},
            "vip": {"sdtype": "boolean"},
        }}}, "METADATA_SPEC_VERSION": "V1"}
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))
    s = Schema.from_sdv_metadata(path)
    kinds = {c.name: c.kind for c in s.columns}
    assert kinds == {"pid": "identifier", "age": "integer", "salary": "numeric",
                     "city": "categorical", "email": "identifier", "born": "datetime",
                     "vip": "categorical"}
    assert set(s.undeclared()) == {"age", "salary", "city", "born"}
    assert s.name == "people"


def test_yaml_11_boolean_words_are_read_as_written(tmp_path):
    """Unquoted ``[no, yes]`` is a list of strings, not ``[False, True]`` (YAML 1.1 trap)."""
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: t\ncolumns:\n"
        "  - {name: smoker, kind: categorical, categories: [no, yes], nullable: no}\n"
        "  - {name: flag, kind: categorical, categories: [true, false], nullable: yes}\n"
        "  - {name: age, kind: integer, lower: 0, upper: 110, public: on}\n"
    )
    loaded = Schema.load(path)
    assert loaded["smoker"].categories == ("no", "yes")
    assert loaded["smoker"].nullable is False
    assert loaded["flag"].categories == (True, False)  # true/false stay booleans
    assert loaded["flag"].nullable is True and loaded["age"].public is True
    loaded.validate(pd.DataFrame({"smoker": ["no", "yes"], "flag": [True, False],
                                  "age": [30, 40]}))
    again = Schema.load(loaded.save(tmp_path / "again.yaml"))
    assert again == loaded
