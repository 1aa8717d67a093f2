"""The release bundle on disk.

::

    DIR/
      dataset_card.yaml    always: what was done, the budget, the decision and why
      report.html          always: the human report (for the data custodian)
      synthetic.parquet    only when the release ships
      synthetic.csv        only when the release ships
      model/               only when the release ships: manifest.json + model.safetensors,
                           which redraw synthetic.csv exactly (see the card's reproduce.sample)

A rejected release writes no synthetic rows, so that nothing withheld can be shipped by
mistake. Writing into a directory that already holds a bundle needs ``overwrite=True``; the
old bundle's files are then removed first, so a rejected release never sits beside the rows
of an earlier one.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd

from dpsynth.data.io import write_table
from dpsynth.errors import ParameterError
from dpsynth.release.card import CARD_FILE, DatasetCard
from dpsynth.release.gate import Figures
from dpsynth.release.provenance import file_entry, hash_files, sha256_file
from dpsynth.release.report import save_report
from dpsynth.synthesizers import BaseSynthesizer

REPORT_FILE = "report.html"
DATA_FILES = ("synthetic.parquet", "synthetic.csv")
MODEL_DIR = "model"
BUNDLE_ENTRIES = (CARD_FILE, REPORT_FILE, *DATA_FILES, MODEL_DIR)


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse (before any budget is spent) a path that is a file or already holds a bundle."""
    if out.exists() and not out.is_dir():
        raise ParameterError(f"The 'out' parameter of release must be a directory; {out} is a "
                             "file.")
    present = [name for name in BUNDLE_ENTRIES if (out / name).exists()]
    if present and not overwrite:
        raise ParameterError(f"{out} already holds a release bundle ({', '.join(present)}); "
                             "choose another directory or pass overwrite=True (--overwrite).")


def _clear(out: Path) -> None:
    for name in (*BUNDLE_ENTRIES, "review"):  # an old review sheet is not this bundle's
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def write_bundle(out: Path, card: DatasetCard, synthetic: pd.DataFrame | None,
                 model: BaseSynthesizer | None, figures: Figures | None = None, *,
                 overwrite: bool = False,
                 draw: tuple[int, int] | None = None) -> tuple[DatasetCard, dict[str, Path]]:
    """Write the bundle of ``card`` to ``out``: the card, the report (with the plots of
    ``figures``) and, only when the card ships, the ``synthetic`` rows and the fitted
    ``model`` that redraws them. With ``draw = (n_rows, seed)`` the rows written are
    instead drawn from ``model`` in chunks (:meth:`~dpsynth.synthesizers.BaseSynthesizer.
    sample_to`: memory holds one chunk; ``synthetic`` is then the part the gate read).

    Returns the card with its ``synthetic`` section completed (files and their sha256, or
    why the data was withheld), its ``provenance.files`` listing the digest of every file
    written but the card itself, and the paths written.
    """
    check_out_dir(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    paths: dict[str, Path] = {}
    if card.shipped and synthetic is not None and model is not None:
        if draw is None:
            for name in DATA_FILES:
                paths[name.split(".")[-1]] = write_table(synthetic, out / name)
        else:
            paths.update(_draw_files(out, model, *draw))
        model_dir = model.save(out / MODEL_DIR)
        paths["model"] = model_dir
        files = {key: file_entry(out, p) for key, p in paths.items() if p.is_file()}
        files["model_manifest"] = file_entry(out, model_dir / "manifest.json")
        files["model_weights"] = file_entry(out, model_dir / "model.safetensors")
        section = replace(card.synthetic, files=files, withheld=False, withheld_reason=None)
    else:
        section = replace(card.synthetic, files={}, withheld=True, withheld_reason=(
            "The release was rejected: the synthetic rows and the model are not written to "
            "the bundle."))
    card = replace(card, synthetic=section)
    paths["report"] = save_report(card, figures, out / REPORT_FILE)
    if card.provenance is not None:
        written = [out / n for n in BUNDLE_ENTRIES if n != CARD_FILE and (out / n).exists()]
        card = replace(card, provenance=replace(card.provenance,
                                                files=hash_files(out, written)))
    paths["card"] = card.save(out / CARD_FILE)
    return card, paths


def _draw_files(out: Path, model: BaseSynthesizer, n_rows: int,
                seed: int) -> dict[str, Path]:
    """``synthetic.parquet`` drawn in chunks, then ``synthetic.csv`` copied from it a record
    batch at a time (the same rows; memory holds one chunk or one batch)."""
    import pyarrow.parquet as papq

    from dpsynth.data.stream import write_chunks

    parquet = model.sample_to(out / DATA_FILES[0], n_rows, random_state=seed)
    reader = papq.ParquetFile(parquet)
    csv = out / DATA_FILES[1]
    write_chunks((b.to_pandas() for b in reader.iter_batches(batch_size=262_144)), csv)
    return {"parquet": parquet, "csv": csv}


__all__ = ["BUNDLE_ENTRIES", "check_out_dir", "sha256_file", "write_bundle"]
