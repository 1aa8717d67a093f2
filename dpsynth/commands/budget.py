"""``dpsynth budget``: register datasets in the privacy ledger, show spends, verify, report.

Also the ``--ledger`` / ``--dataset`` options and :func:`open_recorder` that ``dpsynth fit``
(and ``release``) use so that every spend lands in the ledger.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from dpsynth.accounting._ledger_math import PrefixComposer
from dpsynth.accounting.budget import Budget, default_delta
from dpsynth.accounting.fingerprint import DataIdentity, identify
from dpsynth.accounting.ledger import Ledger, LedgerRecorder, Status, default_ledger_location
from dpsynth.accounting.report import FORMATS, build_report, render
from dpsynth.commands._common import EXIT_ERROR, cli_errors, console
from dpsynth.data.io import read_table
from dpsynth.errors import param_error
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
) -> None:
    """Register a dataset with its hard privacy cap (creates the ledger if needed)."""
    with cli_errors():
        parsed = Schema.load(schema) if schema is not None else None
        table = read_table(data, schema=parsed)
        cap = Budget(epsilon, delta if delta is not None else default_delta(len(table)))
        book = Ledger(ledger)
        record = book.register_table(name, cap, table, parsed, privacy_unit=privacy_unit,
                                     actor=actor, allow_new_fingerprint=allow_new_fingerprint)
        typer.echo(f"registered {record.name!r}: cap {record.cap}, {record.n_rows} rows, "
                   f"privacy unit {record.privacy_unit}, fingerprint {record.fingerprint} "
                   f"in {book.location}")


def _num(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4g}"


def _status_lines(st: Status) -> list[str]:
    ds = st.dataset
    return [
        f"dataset {ds.name} ({ds.n_rows} rows, privacy unit {ds.privacy_unit}, "
        f"fingerprint {ds.fingerprint[:23]}...)",
        f"  cap        ε = {st.cap.epsilon:.4g}  δ = {st.cap.delta:.3g}",
        f"  spent      ε = {st.epsilon:.4g} (PLD)   RDP {_num(st.rdp_epsilon)} · plain sum "
        f"{_num(st.plain_sum_epsilon)} (comparison only)",
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
        names = [name] if name else [d.name for d in book.datasets()]
        statuses = [book.status(n) for n in names]
        if as_json:
            typer.echo(json.dumps([s.to_dict() for s in statuses], indent=2))
            return
        if not statuses:
            typer.echo(f"no dataset registered in {book.location}")
        for st in statuses:
            typer.echo("\n".join(_status_lines(st)))


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
        totals = PrefixComposer().cumulative([s.event for s in spends], cap.delta)
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
        typer.echo(f"ok: {book.location} verified, anchor {book.anchor()}")


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
