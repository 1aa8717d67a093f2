"""The ``dpsynth`` command line: a thin layer over the Python API.

Exit statuses: 0 success, 1 error, 2 bad input or usage, 3 leak found / release rejected.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from dpsynth._version import __version__
from dpsynth.commands import register_all
from dpsynth.commands._common import (
    EXIT_LEAK,
    EXIT_USAGE,
    Delta,
    Params,
    Secure,
    Seed,
    cli_errors,
    console,
    fail,
    model_choice_hint,
    out,
    parse_params,
    print_chosen,
)

PRIVACY_HELP = (
    "\n\ndpsynth makes synthetic data with differential privacy (DP). Two numbers set how "
    "private it is:"
    "\n\nε (epsilon), the privacy budget: whatever anyone learns from the output, their odds of "
    "telling whether one given person's record was used change by at most a factor e^ε. "
    "Smaller is more private and less accurate: ε = 1 is strong protection, ε = 10 weak."
    "\n\nδ (delta): the small probability that the ε guarantee fails. It must be far below 1/n "
    "for a table of n rows (otherwise publishing one random row would be allowed); by default "
    "dpsynth uses 1/n^1.5."
    "\n\nEvery spend is computed by a privacy-loss-distribution (PLD) accountant and, with "
    "--ledger, recorded per dataset so that the total across releases never passes its cap."
)

app = typer.Typer(
    name="dpsynth", help="Private synthetic data with a privacy ledger and an attack audit."
    + PRIVACY_HELP, no_args_is_help=True, add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)
schema_app = typer.Typer(help="Draft, validate and convert table schemas.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")

logger = logging.getLogger("dpsynth")

Epsilon = Annotated[float, typer.Option(help="Privacy budget ε (> 0). Smaller is more private.")]


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(message)s")


def _version(value: bool) -> None:
    if value:
        out.print(f"dpsynth {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log the budget plan and "
                                          "progress details.")] = False,
) -> None:
    _setup_logging(verbose)


# -- helpers --------------------------------------------------------------------------------
def _load_schema(path: Path) -> Any:
    from dpsynth.schema import Schema

    return Schema.load(path)


def _default_synthesizer() -> str:
    from dpsynth.synthesizers import DEFAULT_TABLE_SYNTHESIZER

    return DEFAULT_TABLE_SYNTHESIZER


def _make_synthesizer(name: str, *, epsilon: float, delta: float | None, seed: int | None,
                      secure: bool, extra: dict[str, Any],
                      given: dict[str, Any] | None = None) -> Any:
    """The synthesizer ``name``: ``extra`` holds the command's own options (dropped where
    ``name`` does not take them), ``given`` the user's ``--param`` values (every key must be
    one of its parameters, and not one with an option of its own)."""
    from dpsynth.synthesizers import SYNTHESIZERS, create

    if name not in SYNTHESIZERS:
        raise fail(f"unknown synthesizer {name!r}; choose one of {sorted(SYNTHESIZERS)}",
                   EXIT_USAGE)
    accepted = SYNTHESIZERS[name].parameter_names()
    params = {k: v for k, v in extra.items() if k in accepted and v is not None}
    for key, value in (given or {}).items():
        if key in _OPTION_PARAMS:
            raise fail(f"--param {key}: use {_OPTION_PARAMS[key]}", EXIT_USAGE)
        if key not in accepted:
            raise fail(f"--param {key}: {name} has no parameter {key!r}; it takes "
                       f"{', '.join(sorted(set(accepted) - set(_OPTION_PARAMS)))}", EXIT_USAGE)
        params[key] = value
    return create(name, epsilon=epsilon, delta=delta, random_state=seed, secure_mode=secure,
                  **params)


#: Synthesizer parameters the commands set through options of their own.
_OPTION_PARAMS = {"epsilon": "--epsilon", "delta": "--delta", "random_state": "--seed",
                  "secure_mode": "--secure", "epochs": "--epochs", "progress": "the command"}


def _show_plan(synth: Any, schema: Any, n_rows: int, recorder: Any) -> None:
    """Print the budget split before any data is touched."""
    if math.isnan(synth.epsilon):
        raise fail("--epsilon must be a number > 0 (inf: no privacy); got nan", EXIT_USAGE)
    if not synth.is_private:
        console.print("[bold yellow]ε = ∞: this run has NO differential privacy.[/]")
        return
    plan = synth.plan_budget(schema, n_rows, ledger=recorder)
    out.print(plan.summary(), highlight=False)


def _print_privacy(synth: Any) -> None:
    p = synth.privacy_
    if p is None:
        console.print("[bold yellow]No differential privacy (ε = ∞): reference run only.[/]")
        return
    rdp = "n/a" if math.isnan(p.rdp_epsilon) else f"{p.rdp_epsilon:.3f}"
    out.print(f"Privacy spent: ε = {p.epsilon:.3f} (target {p.target_epsilon:g}), "
              f"δ = {p.delta:.2g}, accountant PLD (RDP would say ε = {rdp})")


# -- fit / sample ---------------------------------------------------------------------------
@app.command(help="Fit a DP synthesizer on a private table and save it (no pickle)."
             + PRIVACY_HELP)
def fit(
    data: Annotated[Path, typer.Argument(
        help="Private table: CSV, Parquet, a folder of Parquet files, or JSON lines. aim/mst "
        "read Parquet and CSV in batches (bounded memory) when the schema declares every "
        "domain and no ledger is used.")],
    schema: Annotated[Path, typer.Option(help="Public schema (YAML/JSON) of the table.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to save the model in.")],
    epsilon: Epsilon = 1.0,
    delta: Delta = None,
    synthesizer: Annotated[str | None, typer.Option(
        help="Generator: default for tables, or a registered name (dpvae, aim, mst...).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (DP-SGD generators).")] = None,
    ledger: Annotated[Path | None, typer.Option(
        help="Privacy ledger (SQLite file or SQLAlchemy URL); default $DPSYNTH_LEDGER, else "
        "~/.local/share/dpsynth/ledger.sqlite.")] = None,
    dataset: Annotated[str | None, typer.Option(
        help="Dataset registered in the ledger (dpsynth budget register); every spend of "
        "this fit is recorded there and refused past its cap.")] = None,
    seed: Seed = None,
    secure: Secure = False,
    delimiter: Annotated[str | None, typer.Option(help="CSV delimiter (else sniffed).")] = None,
    encoding: Annotated[str | None, typer.Option(help="File encoding (utf-8 if omitted).")] = None,
    clip: Annotated[bool, typer.Option(
        "--clip", help="Clip values outside the declared public bounds to them (row-local, no "
        "privacy cost; counts per column shown and saved with the model), instead of "
        "refusing them.")] = False,
    public: Annotated[Path | None, typer.Option(
        "--public", help="Rows you declare public (people who agreed to publication; same "
        "schema, never rows of the private table), read without privacy to help the model "
        "(dpar only). The guarantee covers the private table alone.")] = None,
    param: Params = None,
) -> None:
    with cli_errors():
        from dpsynth.commands.budget import (
            check_before_spending,
            open_recorder,
            recorder_for,
            spend_report,
            streamed_identity,
        )
        from dpsynth.data.io import read_table
        from dpsynth.data.stream import StreamedTable

        check_before_spending(out_dir, epsilon, ledger, dataset)
        table_schema = _load_schema(schema)
        name = synthesizer or _default_synthesizer()
        given = parse_params(param or [])
        synth = _make_synthesizer(name, epsilon=epsilon, delta=delta, seed=seed, secure=secure,
                                  extra={"epochs": epochs, "progress": True}, given=given)
        if public is not None and not synth.accepts_public:
            raise fail(f"--public: {name} does not read declared public rows (dpar does)",
                       EXIT_USAGE)
        public_rows = None if public is None else read_table(
            public, schema=table_schema, delimiter=delimiter, encoding=encoding)
        stream = None if clip or public is not None else _streamed_input(
            data, synth, table_schema, ledger, dataset, delimiter, encoding)
        if stream is not None:  # read in batches: memory does not grow with the rows
            n_rows, frame_or_stream = stream.count_rows(), stream
            recorder = None if ledger is None and dataset is None else open_recorder(
                None if ledger is None else str(ledger), dataset,
                data=streamed_identity(stream, table_schema))
        else:
            frame = StreamedTable(data).read_all(table_schema, all_columns=True) \
                if data.is_dir() else \
                read_table(data, schema=table_schema, delimiter=delimiter, encoding=encoding)
            n_rows, frame_or_stream = len(frame), frame
            recorder = recorder_for(ledger, dataset, frame, table_schema)
        _show_plan(synth, table_schema, n_rows, recorder)
        hint = model_choice_hint(name, synth.epsilon, n_rows, given.get("target"),
                                 public=public is not None)
        if hint:
            out.print(hint, highlight=False)
        start = time.perf_counter()
        with spend_report(recorder):
            synth.fit(frame_or_stream, table_schema, ledger=recorder, clip=clip,
                      public=public_rows)
            synth.save(out_dir)
        if synth.public_rows_:
            out.print(f"Declared public rows read without privacy: {synth.public_rows_['rows']} "
                      f"({synth.public_rows_['fingerprint'][:19]}...); saved with the model")
        if clip:
            out.print(f"Clipped to the declared bounds (no privacy cost), values per column: "
                      f"{synth.clipped_ or 'none'}")
        out.print(f"Fitted {name} on {synth.n_rows_} rows in "
                  f"{time.perf_counter() - start:.1f} s; model saved to {out_dir}")
        print_chosen(synth, given)
        _print_privacy(synth)


def _streamed_input(data: Path, synth: Any, schema: Any, ledger: Path | None,
                    dataset: str | None, delimiter: str | None, encoding: str | None) -> Any:
    """A :class:`StreamedTable` when ``data`` can be read in batches by ``synth``, else None.

    Streamed: a Parquet file, a folder of Parquet files or a plain CSV, when the synthesizer
    streams and its schema has no user key. With a ledger, one more pass hashes the table's
    identity batch by batch (the same fingerprint as the table read whole). Undeclared
    domains are discovered with DP from the stream.
    Otherwise the table is read whole.
    """
    from dpsynth.data.stream import StreamedTable

    if not data.exists():
        return None  # read_table says what is wrong
    name = data.name.lower()
    plain_csv = name.endswith((".csv", ".csv.gz")) and delimiter in (None, ",") \
        and encoding in (None, "utf-8", "utf-8-sig")
    if not (synth.streams and (data.is_dir() or name.endswith((".parquet", ".pq"))
                               or plain_csv)):
        return None
    if schema.user_key:
        return None
    return StreamedTable(data)


@app.command()
def sample(
    model: Annotated[Path, typer.Argument(help="Directory of a saved model.")],
    n_rows: Annotated[int, typer.Option("--n-rows", "-n", help="Number of rows to draw.")],
    out_file: Annotated[Path, typer.Option("--out", help="Output file (.csv or .parquet).")],
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible sampling.")] = None,
) -> None:
    """Draw synthetic rows from a saved model (no privacy cost: post-processing)."""
    with cli_errors():
        from dpsynth.data.io import write_table
        from dpsynth.synthesizers import BaseSynthesizer

        if n_rows <= 0:
            raise fail(f"--n-rows must be a positive integer; got {n_rows}", EXIT_USAGE)
        synth = BaseSynthesizer.load(model)
        if out_file.name.lower().endswith((".parquet", ".pq", ".csv", ".tsv")):
            synth.sample_to(out_file, n_rows, random_state=seed)  # in chunks: bounded memory
        else:
            write_table(synth.sample(n_rows, random_state=seed), out_file)
        out.print(f"Wrote {n_rows} synthetic rows to {out_file}")


# -- schema ---------------------------------------------------------------------------------
@schema_app.command("draft")
def schema_draft(
    data: Annotated[Path, typer.Argument(help="Table to draft a schema from.")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the draft (YAML/JSON).")],
    max_categories: Annotated[int, typer.Option(help="Up to this many distinct values a "
                                                "column is treated as categorical.")] = 50,
) -> None:
    """Draft a schema FROM THE PRIVATE DATA for you to review (marked not public)."""
    with cli_errors():
        from dpsynth.data.io import read_table
        from dpsynth.schema import draft_schema

        frame = read_table(data)
        draft = draft_schema(frame, max_categories=max_categories)
        draft.save(out_file)
        console.print(
            "[bold red]WARNING: this draft was read from the private data. Its bounds and "
            "category lists are NOT public: they can reveal individuals (the oldest person's "
            "age, a rare category).[/]\n"
            "Review every column: replace data-derived values with public knowledge (code "
            "lists, documented ranges), or delete them to have dpsynth discover them with DP. "
            "Then set `public: true`. Until then, fitting on it is refused."
        )
        out.print(f"Draft schema written to {out_file} ({len(draft.columns)} columns)")


@schema_app.command("validate")
def schema_validate(
    data: Annotated[Path, typer.Argument(help="Table to check.")],
    schema: Annotated[Path, typer.Option(help="Schema (YAML/JSON) to check it against.")],
) -> None:
    """Check a table against a schema and list every problem at once."""
    with cli_errors():
        from dpsynth.data.io import read_table

        table_schema = _load_schema(schema)
        frame = read_table(data, schema=table_schema)
        table_schema.validate(frame)
        undeclared = table_schema.undeclared()
        not_public = [c for c in table_schema.not_public() if c not in undeclared]
        out.print(f"OK: {len(frame)} rows match the schema ({len(table_schema.columns)} columns).")
        if undeclared:
            out.print(f"Undeclared domains (will be discovered with DP, spending ε): {undeclared}")
        if not_public:
            console.print(f"[yellow]Not declared public yet: {not_public}[/]")


@schema_app.command("from-sdv")
def schema_from_sdv(
    metadata: Annotated[Path, typer.Argument(help="SDV metadata JSON file.")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the schema.")],
    table: Annotated[str | None, typer.Option(help="Table name (multi-table metadata).")] = None,
) -> None:
    """Convert SDV metadata into a dpsynth schema (domains still to declare)."""
    with cli_errors():
        from dpsynth.schema import Schema

        converted = Schema.from_sdv_metadata(metadata, table=table)
        converted.save(out_file)
        out.print(f"Schema written to {out_file}; declare the domains of "
                  f"{converted.undeclared()} or let dpsynth discover them with DP.")


# -- demo -----------------------------------------------------------------------------------
@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path(
        "dpsynth-demo"),
    epsilon: Epsilon = 1.0,
    synthesizer: Annotated[str | None, typer.Option(help="Generator to use.")] = None,
    seed: Seed = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Release the bundled real table (3,000 CPS wage records) through the whole gate.

    Holdout split, DP fit through a ledger, evaluation, attacks, release policy: the bundle
    (synthetic.csv, dataset_card.yaml, report.html) goes to --out.
    """
    with cli_errors():
        from dpsynth.commands._common import progress_bars
        from dpsynth.commands.release import summary
        from dpsynth.release.demo import run_demo

        with progress_bars(quiet) as tick:
            result = run_demo(out_dir, epsilon, seed, synthesizer=synthesizer, progress=tick)
        summary(result, out_dir)
    if not result.shipped:
        raise typer.Exit(EXIT_LEAK)


register_all(app)


def main() -> None:
    # Torch's OpenMP workers spin while waiting by default, which stalls a busy 2-core machine
    # (measured: a 4 s fit took 60 s). Only the command line sets this; the library does not.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    app()


if __name__ == "__main__":
    main()
