"""``dpsynth evaluate rounds``: tails and diversity when a generator is refitted on its own
output, against accumulating real data with synthetic (:mod:`dpsynth.release.rounds`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dpsynth.commands._common import cli_errors, console, out

evaluate_app = typer.Typer(help="Evaluations beyond a single release.", no_args_is_help=True)


@evaluate_app.command("rounds")
def rounds_command(
    data: Annotated[Path, typer.Argument(help="Real table (CSV, Parquet or JSON lines).",
                                         show_default=False)],
    schema: Annotated[Path, typer.Option(help="Public schema of the table.",
                                         show_default=False)],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for rounds.csv and "
                                          "rounds.html.", show_default=False)],
    rounds: Annotated[int, typer.Option(help="Generations after the first fit.")] = 5,
    epsilon: Annotated[float, typer.Option(help="ε of each fit.")] = 1.0,
    synthesizer: Annotated[str | None, typer.Option(
        help="Generator (registered name); default mst, or dptext for a text corpus and "
        "dptext-table for a table with a text column.", show_default=False)] = None,
    param: Annotated[list[str] | None, typer.Option(
        help="Generator parameter key=value (JSON value), repeatable: say epochs=1 or "
        "text_params='{\"epochs\": 1}'.")] = None,
    text_embeddings: Annotated[bool, typer.Option(
        help="With text columns: MAUVE and embedding coverage per round (needs the text "
        "extra; a sentence-embedding pass per round).")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the study.")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Refit a generator on its own output for several rounds (and, beside it, on a real
    anchor plus every round's output); writes the per-round measures and their figure. With
    text columns, also self-BLEU, distinct-2, MAUVE and embedding coverage of the text. The
    first fit and every accumulate fit read the real rows: a research study, not a release."""
    with cli_errors():
        from dpsynth.commands._common import parse_params, progress_bars
        from dpsynth.data.io import read_table
        from dpsynth.release.rounds import evaluate_rounds, rounds_html
        from dpsynth.schema import Schema

        table_schema = Schema.load(schema)
        frame = read_table(data, schema=table_schema)
        with progress_bars(quiet) as tick:
            result = evaluate_rounds(frame, table_schema, rounds=rounds, epsilon=epsilon,
                                     synthesizer=synthesizer,
                                     synthesizer_params=parse_params(param or []),
                                     text_embeddings=text_embeddings, random_state=seed,
                                     progress=tick)
        out_dir.mkdir(parents=True, exist_ok=True)
        result.frame().to_csv(out_dir / "rounds.csv", index=False)
        (out_dir / "rounds.html").write_text(rounds_html(result), encoding="utf-8")
    out.print(result.frame().round(3).to_string(index=False), highlight=False)
    if result.text_reference:
        ref = result.text_reference
        out.print(f"Real text: self-BLEU {ref['self_bleu']:.3f}, distinct-2 "
                  f"{ref['distinct_2']:.3f} (MAUVE and coverage are measured against it).",
                  highlight=False)
    console.print(f"[yellow]warning:[/] {escape(result.warning())}", highlight=False)
    console.print(f"[dim]{result.fits_on_real} fits read the real rows at ε = {epsilon:g} "
                  "each; not a release.[/]", highlight=False)
    out.print(f"Figures: {out_dir / 'rounds.html'}")


def register(app: typer.Typer) -> None:
    """Add ``dpsynth evaluate`` to ``app``."""
    app.add_typer(evaluate_app, name="evaluate")
