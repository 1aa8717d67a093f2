"""``dpsynth budget``: register datasets in the privacy ledger, show spends, verify, report.

Also the ``--ledger`` / ``--dataset`` options and :func:`open_recorder` that ``dpsynth fit``
(and ``release``) use so that every spend lands in the ledger.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from dpsynth.accounting.analysis import pld_epsilon
from dpsynth.accounting.budget import Budget, default_delta
from dpsynth.accounting.fingerprint import DataIdentity, identify
from dpsynth.accounting.ledger import (
    Ledger,
    LedgerCorruptedError,
    LedgerRecorder,
    Status,
    default_ledger_location,
)
from dpsynth.accounting.report import FORMATS, build_report, render
from dpsynth.commands._common import EXIT_ERROR, cli_errors, console
from dpsynth.errors import ParameterError, param_error
from dpsynth.schema import Schema

if TYPE_CHECKING:
    import pandas as pd

budget_app = typer.Typer(
    help="The privacy ledger: how much budget each dataset has spent, on what, by whom.",
    no_args_is_help=True,
)

LedgerOpt = Annotated[
    str | None,
    typer.Option("--ledger", help="Ledger file, or a SQLAlchemy URL for a shared database. "
                 "Default: $DPSYNTH_LEDGER, else ~/.local/share/dpsynth/ledger.sqlite."),
]
DatasetOpt = Annotated[
    str | None,
    typer.Option("--dataset", help="Registered dataset to spend on (dpsynth budget register)."),
]


def open_recorder(ledger: str | None, dataset: str | None, *, data: DataIdentity | None = None,
                  release_id: str | None = None) -> LedgerRecorder | None:
    """The recorder for ``fit --ledger L --dataset D``; ``None`` when neither is given.

    Pass the identity of the data about to be used (:func:`dpsynth.accounting.fingerprint.
    identify`) so that its spends never land on the budget of another dataset.
    """
    if dataset is None:
        if ledger is not None:
            raise param_error("--dataset", "given with --ledger (the registered dataset to "
                              "spend on)", None)
        return None
    return Ledger(ledger, create=False).recorder(
        dataset, release_id=release_id, fingerprint=data.fingerprint if data else None,
        content_hash=data.content_hash if data else None)


def recorder_for(ledger: str | Path | None, dataset: str | None, frame: pd.DataFrame,
                 schema: Schema) -> LedgerRecorder | None:
    """:func:`open_recorder` for a ``fit``-style command about to train on ``frame``."""
    if ledger is None and dataset is None:
        return None
    return open_recorder(None if ledger is None else str(ledger), dataset,
                         data=identify(frame, schema))


def check_before_spending(out_dir: Path, epsilon: float, ledger: str | Path | None,
                          dataset: str | None) -> None:
    """Everything a ``fit`` with a ledger must get right before it reads data or spends.

    Refuses (one :class:`ParameterError`, exit 2) ``epsilon = inf`` with a ledger (a
    non-private model of registered data would bypass the budget), and an ``--out`` that
    cannot be written: under a file, in a folder that refuses writes, or (with a ledger) over
    a model already saved there.
    """
    problems = []
    with_ledger = ledger is not None or dataset is not None
    if with_ledger and not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon)):
        problems.append(param_error("--epsilon", "a finite epsilon with --ledger/--dataset "
                                    "(epsilon = inf trains without differential privacy, "
                                    "outside the ledger's budget)", epsilon))
    problem = _output_problem(Path(out_dir), clobber_ok=not with_ledger)
    if problem:
        problems.append(param_error("--out", problem, str(out_dir)))
    if problems:
        raise ParameterError("\n".join(str(p) for p in problems))


def _output_problem(out_dir: Path, *, clobber_ok: bool) -> str | None:
    if out_dir.exists() and not out_dir.is_dir():
        return "a directory to save the model in (this is a file)"
    if out_dir.is_dir() and not clobber_ok and (out_dir / "manifest.json").exists():
        return "a directory without a saved model (one is there; choose a new --out)"
    parent = out_dir
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"a directory path ({parent} is a file)"
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError:
        return f"a directory this user can write ({parent} refuses writes)"
    return None


@contextlib.contextmanager
def spend_report(recorder: LedgerRecorder | None) -> Iterator[None]:
    """On a failure after the plan was reserved, say exactly what stays spent, then re-raise."""
    try:
        yield
    except BaseException as exc:
        if recorder is not None and recorder.reserved:
            with contextlib.suppress(Exception):
                recorder.release_unused(f"the run failed: {type(exc).__name__}")
            events = [r.event for r in recorder.reserved if r.event is not None]
            spent = pld_epsilon(events, recorder.cap.delta)
            console.print(f"Spent before the failure: ε = {spent:.4g} on dataset "
                          f"{recorder.dataset!r} ({len(events)} reservation(s) of run "
                          f"{recorder.release_id}, counted against the cap).", markup=False,
                          highlight=False, soft_wrap=True)
        raise


def _open(ledger: str | None) -> Ledger:
    return Ledger(ledger if ledger is not None else default_ledger_location(), create=False)


@budget_app.command("register")
def register_command(
    name: Annotated[str, typer.Argument(help="Name of the dataset in the ledger.")],
    data: Annotated[Path, typer.Option("--data", help="The private table (CSV or Parquet).")],
    epsilon: Annotated[float, typer.Option("--epsilon", help="Hard cap on epsilon.")],
    delta: Annotated[float | None, typer.Option(
        "--delta", help="Cap on delta (default 1/n^1.5, below 1/n).")] = None,
    schema: Annotated[Path | None, typer.Option("--schema", help="Schema YAML/JSON.")] = None,
    privacy_unit: Annotated[str | None, typer.Option(
        "--privacy-unit", help="'row', or 'user:<key column>' (default: the schema's "
        "user_key, else row).")] = None,
    ledger: LedgerOpt = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Who registers.")] = None,
    allow_new_fingerprint: Annotated[bool, typer.Option(
        "--allow-new-fingerprint", help="Register a new version of the data under this name "
        "(keeps the cap and the spends).")] = False,
    different_population: Annotated[bool, typer.Option(
        "--different-population", help="Register rows that overlap a registered dataset as "
        "other people (the overlap is measured and recorded).")] = False,
) -> None:
    """Register a dataset with its hard privacy cap (creates the ledger if needed)."""
    with cli_errors():
        parsed = Schema.load(schema) if schema is not None else None
        if parsed is not None and _streamable(data):
            record, book = _register_streamed(
                name, data, parsed, epsilon, delta, ledger, privacy_unit=privacy_unit,
                actor=actor, allow_new_fingerprint=allow_new_fingerprint,
                different_population=different_population)
        else:
            from dpsynth.data.io import read_table

            table = read_table(data, schema=parsed)
            cap = Budget(epsilon, delta if delta is not None else default_delta(len(table)))
            book = Ledger(ledger)
            record = book.register_table(
                name, cap, table, parsed, privacy_unit=privacy_unit, actor=actor,
                allow_new_fingerprint=allow_new_fingerprint,
                different_population=different_population)
        typer.echo(f"registered {record.name!r}: cap {record.cap}, {record.n_rows} rows, "
                   f"privacy unit {record.privacy_unit}, fingerprint {record.fingerprint} "
                   f"in {book.display_location}")


def _streamable(data: Path) -> bool:
    """A Parquet file, a folder of Parquet files or a CSV: registered batch by batch."""
    name = data.name.lower()
    return data.is_dir() or name.endswith((".parquet", ".pq", ".csv", ".tsv", ".csv.gz",
                                           ".tsv.gz"))


def streamed_identity(table: Any, schema: Schema) -> DataIdentity:
    """The ledger identity of a :class:`~dpsynth.data.stream.StreamedTable`, hashed batch by
    batch (every batch validated): equal to :func:`identify` of the table read whole."""
    from dpsynth.accounting.fingerprint import StreamedIdentity

    identity = StreamedIdentity()
    try:
        for frame in table.batches(schema, all_columns=True):
            identity.add(frame)
        return identity.result(schema)
    finally:
        identity.close()


def _register_streamed(name: str, data: Path, schema: Schema, epsilon: float,
                       delta: float | None, ledger: str | None, **options: Any
                       ) -> tuple[Any, Ledger]:
    """Register a table read in batches (memory does not grow with the rows): the same
    fingerprint, content hash and overlap sketch as the table read whole, so a later
    ``release --stream`` (or an in-memory release of the same rows) finds it."""
    from dpsynth.data.stream import StreamedTable

    table = StreamedTable(data)
    ident = streamed_identity(table, schema)
    cap = Budget(epsilon, delta if delta is not None else default_delta(ident.n_rows))
    book = Ledger(ledger)
    sketch = book.sketch_frames(table.batches(schema, all_columns=True))
    key = schema.user_key
    unit = options.pop("privacy_unit") or (f"user:{key}" if key else "row")
    record = book.register(name, cap, fingerprint=ident.fingerprint, n_rows=ident.n_rows,
                           privacy_unit=unit, schema=schema, content_hash=ident.content_hash,
                           sketch=sketch, **options)
    return record, book


def _num(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4g}"


def _status_lines(st: Status) -> list[str]:
    ds = st.dataset
    return [
        f"dataset {ds.name} ({ds.n_rows} rows, privacy unit {ds.privacy_unit}, "
        f"fingerprint {ds.fingerprint[:23]}...)",
        f"  cap        ε = {st.cap.epsilon:.4g}  δ = {st.cap.delta:.3g}",
        f"  spent      ε = {st.epsilon:.4g} (PLD) – exact if no release was chosen after "
        "seeing another",
        f"             ε = {_num(st.filter_epsilon)} (adaptive Rényi filter, valid however "
        "releases were chosen; the cap holds both)",
        f"             RDP {_num(st.rdp_epsilon)} · plain sum {_num(st.plain_sum_epsilon)} "
        "(comparison only)",
        f"  remaining  ε = {st.remaining:.4g}",
        f"  runs       {st.n_spends} ({st.n_committed} committed, {st.n_aborted} aborted, "
        f"{st.n_interrupted} interrupted; all counted)",
    ]


@budget_app.command("show")
def show_command(
    name: Annotated[str | None, typer.Argument(help="Dataset (default: all).")] = None,
    ledger: LedgerOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Cap, spent and remaining budget per dataset."""
    with cli_errors():
        book = _open(ledger)
        problems = book.verify()
        trusted = not problems
        # verified just above (or known broken): read the figures without verifying again
        names = [name] if name else [d.name for d in book.datasets(verify=False)]
        statuses = [book.status(n, verify=False) for n in names]
        if as_json:
            typer.echo(json.dumps([{**s.to_dict(), "verified": trusted, "problems": problems}
                                   for s in statuses], indent=2))
        else:
            if not trusted:
                why = escape(str(LedgerCorruptedError(book.display_location, problems)))
                console.print(f"[bold red]CORRUPTED:[/] {why} The figures below are what the "
                              "damaged ledger says; it refuses every spend.", markup=True,
                              highlight=False, soft_wrap=True)
            if not statuses:
                typer.echo(f"no dataset registered in {book.display_location}")
            for st in statuses:
                typer.echo("\n".join(_status_lines(st)))
        if not trusted:
            raise typer.Exit(EXIT_ERROR)


@budget_app.command("history")
def history_command(
    name: Annotated[str, typer.Argument(help="Dataset.")],
    ledger: LedgerOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every spend on a dataset: when, what, by whom, its ε, the running total, its status."""
    with cli_errors():
        book = _open(ledger)
        cap = book.dataset(name).cap
        spends = book.spends(name)
        totals = book.cumulative_epsilon([s.event for s in spends], cap.delta)
        rows = [{**s.to_dict(), "cumulative_epsilon": t}
                for s, t in zip(spends, totals, strict=True)]
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        typer.echo(f"{'#':>4}  {'reserved (UTC)':19}  {'status':11}  {'ε alone':>8}  "
                   f"{'total ε':>8}  purpose / mechanism / actor / release")
        for r in rows:
            typer.echo(f"{r['seq']:>4}  {r['reserved_at'][:19]:19}  {r['status']:11}  "
                       f"{r['epsilon_alone']:8.4g}  {r['cumulative_epsilon']:8.4g}  "
                       f"{r['purpose']} / {r['description']} / {r['actor']} / {r['release_id']}")
        if not rows:
            typer.echo(f"nothing spent on {name!r} yet (cap {cap})")


@budget_app.command("verify")
def verify_command(
    ledger: LedgerOpt = None,
    anchor: Annotated[str | None, typer.Option(
        "--anchor", help="'seq:hash' recorded earlier (e.g. from a report) to check too.")] = None,
) -> None:
    """Check the hash chain: exit 1 with one line per problem if the ledger was tampered with."""
    with cli_errors():
        book = _open(ledger)
        problems = book.verify(anchor=anchor)
        if problems:
            for problem in problems:
                console.print(f"[bold red]tampered:[/] {escape(problem)}", markup=True,
                              highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_ERROR)
        typer.echo(f"ok: {book.display_location} verified, anchor {book.anchor()}")


@budget_app.command("report")
def report_command(
    names: Annotated[list[str] | None, typer.Argument(help="Datasets (default: all).")] = None,
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")] = "html",
    out_path: Annotated[Path | None, typer.Option(
        "--out", help="File to write (default: standard output).")] = None,
    ledger: LedgerOpt = None,
) -> None:
    """Compliance report: cap, spent, remaining, every spend, plots and plain-language notes."""
    with cli_errors():
        if fmt not in FORMATS:
            raise param_error("--format", f"one of {list(FORMATS)}", fmt)
        text = render(build_report(_open(ledger), names or None), fmt)
        if out_path is None:
            typer.echo(text, nl=False)
        else:
            out_path.write_text(text, encoding="utf-8")
            console.print(f"wrote {out_path}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``budget`` command group to ``app``."""
    app.add_typer(budget_app, name="budget")
