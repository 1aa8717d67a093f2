"""``dpsynth card verify``: check a release bundle against its dataset card.

Recomputes the sha256 of every file the card lists and composes again the ledger entries it
names. Exit 0 and ``verified`` when everything matches; exit 1 with one line per problem
otherwise; exit 2 when the bundle has no readable card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dpsynth.commands._common import EXIT_ERROR, EXIT_USAGE, cli_errors, console, fail, out

card_app = typer.Typer(help="Check release bundles against their dataset cards.",
                       no_args_is_help=True)


@card_app.command("verify")
def verify_command(
    bundle: Annotated[Path, typer.Argument(help="Release bundle directory (or its card).",
                                           show_default=False)],
    ledger: Annotated[str | None, typer.Option(
        help="Ledger to check the card's ε against (default: the one named on the card).")
    ] = None,
) -> None:
    """Recompute the bundle's file hashes and check the card's ε against the ledger; exit 1
    on any mismatch (one line each)."""
    from dpsynth.errors import ModelFormatError
    from dpsynth.release.provenance import verify_bundle

    with cli_errors():
        root = bundle.parent if bundle.is_file() else bundle
        try:
            problems = verify_bundle(root, ledger)
        except ModelFormatError as exc:
            raise fail(f"{root}: {exc}", EXIT_USAGE) from None
    if problems:
        for line in problems:
            console.print(f"[bold red]mismatch:[/] {escape(line)}", highlight=False)
        raise typer.Exit(EXIT_ERROR)
    out.print(f"verified: {escape(str(root))}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``dpsynth card`` to ``app``."""
    app.add_typer(card_app, name="card")
