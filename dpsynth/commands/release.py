"""``dpsynth release``: the audit-gated release of a private table.

Splits off a holdout, fits the generator through the privacy ledger, samples, evaluates,
attacks, applies the release policy and writes the bundle (``dataset_card.yaml``,
``report.html`` and, when it ships, the synthetic data and model). Exit status 0 when the
release ships, 3 when it is rejected (a leak, or fidelity/utility still failing when the
attempts are used up), 2 on usage errors, 1 on other errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from dpsynth.commands._common import (
    EXIT_LEAK,
    EXIT_USAGE,
    Params,
    cli_errors,
    console,
    fail,
    model_choice_hint,
    out,
    parse_params,
    print_table,
)

if TYPE_CHECKING:
    from dpsynth.release import ReleaseResult


def release_command(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Private table: CSV, Parquet, a folder of "
                                         "Parquet files (read whole unless --stream), or "
                                         "JSON lines.",
                                         show_default=False)],
    schema: Annotated[Path, typer.Option(help="Public schema (YAML/JSON) of the table.",
                                         show_default=False)],
    epsilon: Annotated[float, typer.Option(
        help="Privacy budget ε of ONE attempt (> 0). A regenerated attempt spends it again; "
             "the policy caps the attempts (default 2).", show_default=False)],
    dataset: Annotated[str, typer.Option(
        help="Dataset name in the ledger (dpsynth budget register, or give --cap-epsilon to "
             "register it now).", show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the bundle.",
                                          show_default=False)],
    ledger: Annotated[str | None, typer.Option(
        help="Ledger file or SQLAlchemy URL; default $DPSYNTH_LEDGER, else "
             "~/.local/share/dpsynth/ledger.sqlite.")] = None,
    cap_epsilon: Annotated[float | None, typer.Option(
        help="Register --dataset with this hard ε cap if it is not registered yet.")] = None,
    cap_delta: Annotated[float | None, typer.Option(
        help="δ of the cap when registering (default 1/n^1.5).")] = None,
    delta: Annotated[float | None, typer.Option(
        help="δ of each attempt (default: the ledger cap's δ).")] = None,
    target: Annotated[str | None, typer.Option(
        help="Categorical column for the utility check (TSTR vs TRTR ROC-AUC).")] = None,
    positive: Annotated[str | None, typer.Option(
        help="Positive class of --target (default: its last declared category).")] = None,
    secret: Annotated[list[str] | None, typer.Option(
        help="Column attacked by attribute inference (repeatable; default: --target).")] = None,
    policy: Annotated[Path | None, typer.Option(
        help="Release policy YAML (thresholds, max_attempts); default policy if omitted.")
    ] = None,
    synthesizer: Annotated[str | None, typer.Option(
        help="Generator (registered name); default: the default table generator.")] = None,
    param: Params = None,
    holdout_fraction: Annotated[float, typer.Option(
        help="Share of rows held out for the audit and the utility test; never trained on.")
    ] = 0.2,
    n_rows: Annotated[int | None, typer.Option(
        "--n-rows", help="Synthetic rows to draw (default: as many as the training rows).")
    ] = None,
    n_targets: Annotated[int, typer.Option(help="Training records attacked per attack.")
                         ] = 2000,
    seed: Annotated[int | None, typer.Option(
        help="Seed for reproducible runs (tests, research). Not with --secure.")] = None,
    secure: Annotated[bool, typer.Option(
        "--secure/--no-secure", help="DP noise from the OS's cryptographic RNG (releases).")
    ] = False,
    overwrite: Annotated[bool, typer.Option(
        help="Replace a bundle already in --out.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    time_column: Annotated[str | None, typer.Option(
        help="Datetime, year or ordered column: hold out the latest period, train on the "
             "earlier ones (the card compares it with a random holdout).")] = None,
    source_licence: Annotated[str | None, typer.Option(
        help="Licence of the private table, as you declare it (recorded on the card).")
    ] = None,
    source_description: Annotated[str | None, typer.Option(
        help="One-line description of the private table (recorded on the card).")] = None,
    reject_rule_breaks: Annotated[bool, typer.Option(
        help="Drop synthetic rows that break the schema's rules and draw again (no privacy "
             "cost; recorded as a filter on the card).")] = False,
    clip: Annotated[bool, typer.Option(
        help="Clip values outside the declared bounds to them instead of refusing the table "
             "(row-local, no privacy cost; counts per column on the card).")] = False,
    generator_audit_fits: Annotated[int, typer.Option(
        help="First audit the generator white-box with this many fits on each of a "
             "made-up worst-case pair of tables (no budget; mst, aim, dpar, dpvae, dptext); "
             "a violation rejects before anything is spent. 0: no generator audit.")] = 0,
    stream: Annotated[bool, typer.Option(
        "--stream/--no-stream",
        help="Read DATA (Parquet file, folder of Parquet files, CSV) in batches: memory does "
             "not grow with the rows. Needs aim or mst and a schema declaring every domain; "
             "the holdout is chosen by a hash of each row's key and the gate reads samples "
             "of --sample-rows rows.")] = False,
    sample_rows: Annotated[int, typer.Option(
        help="With --stream: training, holdout and synthetic rows the evaluation and the "
             "audit read at most.")] = 100_000,
    public: Annotated[Path | None, typer.Option(
        "--public", help="Rows you declare public (people who agreed to publication; same "
        "schema, never rows of DATA), read without privacy by the generator (dpar only); "
        "their count and fingerprint go on the card.")] = None,
) -> None:
    """Release a private table as DP synthetic data, only if it passes the audit and the
    policy; writes the synthetic data, a dataset card and an HTML report. Exit 0 ship,
    3 reject."""
    with cli_errors():
        from dpsynth.accounting import Budget, default_delta
        from dpsynth.commands._common import progress_bars
        from dpsynth.data.io import read_table
        from dpsynth.release import release
        from dpsynth.release.core import holdout_size
        from dpsynth.schema import Schema

        table_schema = Schema.load(schema)
        public_rows = None if public is None else read_table(public, schema=table_schema)
        if stream and public is not None:
            raise fail("--public needs the table in memory: leave out --stream", EXIT_USAGE)
        if stream:  # read in batches by release itself
            frame: Any = _streamed(data, table_schema, synthesizer)
            n_rows_in = frame.count_rows() if cap_epsilon is not None else 0
        elif data.is_dir():  # a folder of Parquet files, read whole (the audit needs rows)
            from dpsynth.data.stream import StreamedTable

            frame = StreamedTable(data).read_all(table_schema, all_columns=True)
            n_rows_in = len(frame)
        else:
            frame = read_table(data, schema=table_schema)
            n_rows_in = len(frame)
        cap = None
        if cap_epsilon is not None:
            cap = Budget(cap_epsilon, cap_delta if cap_delta is not None
                         else default_delta(n_rows_in))
        elif cap_delta is not None:
            raise fail("--cap-delta needs --cap-epsilon (the cap registers the dataset)",
                       EXIT_USAGE)
        params = parse_params(param or [])
        # the generator fits the rows left after the holdout (fewer with a time column, whose
        # latest period is set aside too: the note's sizes are approximate anyway)
        hint = (model_choice_hint(synthesizer or "", epsilon,
                                  n_rows_in - holdout_size(n_rows_in, holdout_fraction),
                                  params.get("target"), public=public is not None,
                                  predicts=target)
                if n_rows_in else None)  # no count when streamed without a cap
        if hint:
            out.print(hint, highlight=False)
        with progress_bars(quiet) as tick:
            result = release(frame, table_schema, epsilon=epsilon, dataset=dataset,
                             out=out_dir, ledger=ledger, cap=cap, delta=delta,
                             synthesizer=synthesizer,
                             synthesizer_params=params, target=target,
                             positive=_positive(table_schema, target, positive),
                             secrets=secret or None, policy=policy,
                             holdout_fraction=holdout_fraction, n_rows=n_rows,
                             n_targets=n_targets, random_state=seed, secure=secure,
                             overwrite=overwrite, progress=tick, time_column=time_column,
                             source_licence=source_licence,
                             source_description=source_description,
                             invocation=command_line(ctx),
                             reject_rule_breaks=reject_rule_breaks, clip=clip,
                             generator_audit_fits=generator_audit_fits,
                             sample_rows=sample_rows, public=public_rows)
        summary(result, out_dir)
    if not result.shipped:
        raise typer.Exit(EXIT_LEAK)


def _streamed(data: Path, schema: Any, synthesizer: str | None) -> Any:
    """``data`` as a :class:`StreamedTable` for ``--stream``; a usage error when the release
    cannot read it in batches."""
    from dpsynth.data.stream import StreamedTable
    from dpsynth.synthesizers import DEFAULT_TABLE_SYNTHESIZER, SYNTHESIZERS

    name = synthesizer or DEFAULT_TABLE_SYNTHESIZER
    klass = SYNTHESIZERS.get(name)
    problems = []
    if klass is not None and not getattr(klass, "streams", False):
        problems.append(f"the generator {name!r} reads its table whole (use aim or mst)")
    if schema.undeclared():
        problems.append(f"the schema does not declare the domains of "
                        f"{list(schema.undeclared())}")
    if schema.user_key:
        problems.append(f"the schema's user_key {schema.user_key!r} needs every row of a "
                        "user at once")
    if problems:
        raise fail("--stream: " + "; ".join(problems) + " (nothing was read or spent)",
                   EXIT_USAGE)
    return StreamedTable(data)


def command_line(ctx: typer.Context) -> str:
    """The running command as a shell line: ``dpsynth`` with every option given (rebuilt
    from the parsed parameters, so it is the same whichever shell or runner called it)."""
    import shlex

    parts = ["dpsynth", ctx.info_name or "release"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if param.param_type_name == "argument":
            parts.append(shlex.quote(str(value)))
            continue
        if value is None or value == param.default or value == () or not param.opts:
            continue
        opts = param.opts if value is not False else param.secondary_opts or param.opts
        if getattr(param, "is_flag", False) or isinstance(value, bool):
            parts.append(opts[0])
        else:
            for item in value if isinstance(value, (list, tuple)) else [value]:
                parts += [opts[0], shlex.quote(str(item))]
    return " ".join(parts)


def _positive(schema: object, target: str | None, positive: str | None) -> object | None:
    """``--positive`` as the declared category it names (categories may be numbers)."""
    if positive is None or target is None or target not in schema:  # type: ignore[operator]
        return positive
    for category in schema[target].categories or ():  # type: ignore[index]
        if str(category) == positive:
            return category
    return positive


def summary(result: ReleaseResult, out_dir: Path) -> None:
    """Print the decision, the checks and where the bundle is."""
    card = result.card
    colour = "green" if result.shipped else "red"
    table = Table(title=f"Release decision: [bold {colour}]{card.decision.upper()}[/]",
                  title_justify="left")
    table.add_column("check", no_wrap=True)
    for column in ("value", "rule", "result"):
        table.add_column(column)
    for c in card.checks:
        sign = "+" if c.area == "privacy" else ""
        value = "n/a" if c.value is None else f"{c.value:{sign}.4f}"
        result_text = ("[dim]not checked[/]" if c.passed is None else
                       "[green]pass[/]" if c.passed else "[red]FAIL[/]")
        table.add_row(escape(c.name), value, escape(c.rule), result_text)
    print_table(table)
    for reason in card.reasons:
        out.print(f"  - {escape(reason)}")
    p = card.privacy
    n = len(card.attempts)
    out.print(f"Privacy: {n} attempt{'s' if n != 1 else ''} at ε = "
              f"{p.epsilon_per_attempt:g} each; this release spent ε = "
              f"{p.release_epsilon:.3f} (δ = {p.release_delta:.2g}, PLD); dataset "
              f"{card.dataset!r} has {p.dataset_remaining:.3f} of its cap "
              f"{p.dataset_cap.epsilon:g} left.")
    if card.source.public_rows:
        out.print(f"Declared public rows read by the generator without privacy (on the card): "
                  f"{card.source.public_rows['rows']}")
    if result.shipped:
        out.print(f"Synthetic data: {out_dir / 'synthetic.csv'} and "
                  f"{out_dir / 'synthetic.parquet'}")
    else:
        console.print("[bold red]Rejected: no synthetic data was written.[/]")
    out.print(f"Dataset card: {out_dir / 'dataset_card.yaml'}   report: "
              f"{out_dir / 'report.html'}")


def register(app: typer.Typer) -> None:
    """Add ``dpsynth release`` to ``app``."""
    app.command("release")(release_command)
