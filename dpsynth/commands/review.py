"""``dpsynth review export`` / ``dpsynth review import``: the human review of released rows
(:mod:`dpsynth.release.review`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dpsynth.commands._common import EXIT_LEAK, cli_errors, console, out

review_app = typer.Typer(help="Human review of released synthetic rows.",
                         no_args_is_help=True)


@review_app.command("export")
def export_command(
    bundle: Annotated[Path, typer.Argument(help="Release bundle directory.",
                                           show_default=False)],
    n: Annotated[int, typer.Option("--n", help="Rows to review.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
) -> None:
    """Write a random sample of the released rows with a review sheet (CSV and HTML)."""
    with cli_errors():
        from dpsynth.release.review import export_review

        path = export_review(bundle, n, seed)
    out.print(f"Review sheet: {path} (mark the implausible column yes/no, then run "
              f"dpsynth review import {bundle})", highlight=False)


@review_app.command("import")
def import_command(
    bundle: Annotated[Path, typer.Argument(help="Release bundle directory.",
                                           show_default=False)],
    sheet: Annotated[Path | None, typer.Option(
        help="Filled review sheet (default: BUNDLE/review/review.csv).")] = None,
) -> None:
    """Record the reviewed share of implausible rows, with its interval, on the card."""
    with cli_errors():
        from dpsynth.release.review import import_review

        card = import_review(bundle, sheet)
    review = card.evidence.review if card.evidence is not None else None
    assert review is not None
    share = "n/a" if review["share"] is None else f"{review['share']:.1%}"
    lo, hi = review["ci"]
    out.print(f"Reviewed {review['n_reviewed']} rows: {review['n_implausible']} implausible "
              f"({share}, {100 * review['confidence']:g}% interval {lo:.1%}-{hi:.1%}); "
              "recorded on the dataset card.", highlight=False)
    if review.get("passed") is False:
        console.print(f"[bold red]review failed:[/] the upper end {hi:.1%} exceeds the "
                      f"policy's review.max_implausible_share {review['max_implausible_share']:g}"
                      "; do not ship this bundle.", highlight=False)
        raise typer.Exit(EXIT_LEAK)


def register(app: typer.Typer) -> None:
    """Add ``dpsynth review`` to ``app``."""
    app.add_typer(review_app, name="review")
