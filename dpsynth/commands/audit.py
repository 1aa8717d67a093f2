"""``dpsynth audit``: attack a synthetic table and say whether it leaks its training rows.

Writes ``audit.json`` (the results, in the format release gates reuse) and ``audit.html`` (a
self-contained report that names exposed records by row id only) to ``--out``. Exit status 0
when no risk is found, 3 when an attack flags a leak, 1 on errors, 2 on usage errors, so the
command can gate a pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dpsynth.commands._common import (
    EXIT_ERROR,
    EXIT_LEAK,
    EXIT_USAGE,
    cli_errors,
    fail,
    out,
    print_table,
    progress_bars,
)

if TYPE_CHECKING:
    from dpsynth.attacks import AuditReport


def audit(
    train: Annotated[Path, typer.Option(help="The generator's training rows (CSV/Parquet).",
                                        show_default=False)],
    holdout: Annotated[Path, typer.Option(help="Rows of the same population never used for "
                                          "training: the control.", show_default=False)],
    synthetic: Annotated[Path, typer.Option(help="The synthetic rows to audit.",
                                            show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for audit.json and "
                                          "audit.html.", show_default=False)],
    schema: Annotated[Path | None, typer.Option(help="Schema (YAML/JSON) giving column kinds; "
                                                "inferred from the data if omitted.")] = None,
    secret: Annotated[list[str] | None, typer.Option(
        help="Column to attack with attribute inference (repeatable; default: the last "
             "audited column).")] = None,
    reference: Annotated[Path | None, typer.Option(
        help="Extra population rows for DOMIAS (default: half of the holdout).")] = None,
    attack: Annotated[list[str] | None, typer.Option(
        help="Run only this attack (repeatable; default: all).")] = None,
    n_targets: Annotated[int, typer.Option(help="Training records attacked per attack (a "
                                           "random sample on larger tables), and as many "
                                           "controls from the holdout.")] = 2000,
    max_rows: Annotated[int, typer.Option(help="Training rows (and as many holdout rows) the "
                                          "rare-record attack ranks; a random sample beyond "
                                          "it; 0: all.")] = 20_000,
    threshold: Annotated[float, typer.Option(help="Flag a leak when the lower end of the "
                                             "risk's confidence interval exceeds this.")] = 0.05,
    confidence: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible audits.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Audit synthetic data for membership, rare-record, singling-out, linkability and
    attribute-inference leaks; exit 3 when it leaks."""
    with cli_errors():
        from dpsynth.attacks import run_audit
        from dpsynth.data.io import read_table
        from dpsynth.schema import Schema

        table_schema = Schema.load(schema) if schema is not None else None
        frames = {name: read_table(path, schema=table_schema) for name, path in
                  (("train", train), ("holdout", holdout), ("synthetic", synthetic))}
        extra = None if reference is None else read_table(reference, schema=table_schema)
        for name, frame in frames.items():
            _refuse_infinite(frame, {"train": train, "holdout": holdout,
                                     "synthetic": synthetic}[name])
        with progress_bars(quiet) as tick:
            report = run_audit(frames["train"], frames["holdout"], frames["synthetic"],
                               schema=table_schema, reference=extra, secrets=secret or None,
                               attacks=attack or None, n_targets=n_targets,
                               max_rows=max_rows or None,
                               threshold=threshold, confidence=confidence, random_state=seed,
                               progress=tick)
        write_audit(report, out_dir)
    if report.leak:
        raise typer.Exit(EXIT_LEAK)


def _refuse_infinite(frame: object, path: Path) -> None:
    """One line, before any output is written, for a table holding inf or -inf."""
    import numpy as np

    numbers = frame.select_dtypes("number")  # type: ignore[attr-defined]
    counts = {c: int(np.isinf(numbers[c].to_numpy(float)).sum()) for c in numbers.columns}
    bad = {c: n for c, n in counts.items() if n}
    if bad:
        raise fail(f"{path}: infinite values in {bad} (count per column); replace or drop "
                   "them before the audit", EXIT_USAGE)


def _summary(report: AuditReport, out_dir: Path) -> None:
    table = Table(title=f"Audit verdict: {report.verdict}", title_justify="left")
    table.add_column("attack", no_wrap=True)
    for column in ("targets", "attack rate", "control rate", "risk [CI]", "verdict", "s"):
        table.add_column(column)
    for r, flagged in zip(report.results, report.flags, strict=True):
        table.add_row(escape(r.attack), str(r.n_targets), f"{r.success.value:.3f}",
                      f"{r.control.value:.3f}",
                      f"{r.risk.value:+.3f} [{r.risk.ci[0]:+.3f}, {r.risk.ci[1]:+.3f}]",
                      "[red]leak[/]" if flagged else "[green]no risk found[/]", f"{r.seconds}")
    print_table(table)
    out.print(f"Audit took {report.seconds:.1f} s; report in {out_dir / 'audit.json'} and "
              f"{out_dir / 'audit.html'}")


def register(app: typer.Typer) -> None:
    """Add ``dpsynth audit`` to ``app``."""
    app.command("audit")(audit)


def write_audit(report: AuditReport, out_dir: Path,
                summary: Callable[[AuditReport, Path], None] = _summary) -> None:
    """Write ``audit.json`` and ``audit.html`` into ``out_dir``, then print ``summary``."""
    from dpsynth.attacks import save_html

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        report.save_json(out_dir / "audit.json")
        save_html(report, out_dir / "audit.html")
    except OSError as exc:
        raise fail(f"cannot write the report to {out_dir}: {exc}", EXIT_ERROR) from None
    summary(report, out_dir)
