"""Shared CLI conventions: one-line errors on stderr, exit statuses, progress bars.

Exit statuses (all commands): 0 success / no risk found, 1 error, 2 usage error (bad input,
bad parameter), 3 the audit found a leak or the release policy rejected the data.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from dpsynth._util.progress import StageProgressFn
from dpsynth.errors import (
    BudgetExceededError,
    DataReadError,
    DataValidationError,
    DpsynthError,
    ParameterError,
    PrivacyError,
    SchemaError,
)

if TYPE_CHECKING:
    from dpsynth.synthesizers.base import BaseSynthesizer

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_LEAK = 3

console = Console(stderr=True, soft_wrap=True)

# Options several commands share.
Delta = Annotated[
    float | None, typer.Option(help="δ of the (ε, δ) guarantee; default 1/n^1.5 (< 1/n).")
]
Seed = Annotated[int | None, typer.Option(
    help="Seed for reproducible runs (tests, research). Do not use for real releases.")]
Secure = Annotated[bool, typer.Option(
    "--secure/--no-secure", help="Draw DP noise from the OS's cryptographic RNG (releases).")]
Params = Annotated[list[str] | None, typer.Option(
    "--param", help="Synthesizer parameter key=value (JSON value), repeatable.")]
out = Console(soft_wrap=True)

_USAGE_ERRORS = (DataReadError, DataValidationError, ParameterError, SchemaError, FileNotFoundError)


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``message`` as one line (plus detail lines for validation) and return an Exit."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def parse_params(items: list[str]) -> dict[str, Any]:
    """``--param key=value`` options as a dict (a value is read as JSON when it parses, a JSON
    list becomes a tuple, anything else stays a string)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"--param must be key=value; got {item!r}", EXIT_USAGE)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        params[key.strip()] = tuple(value) if isinstance(value, list) else value
    return params


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Turn dpsynth exceptions into one-line messages and exit statuses (no tracebacks)."""
    try:
        yield
    except typer.Exit:
        raise
    except BudgetExceededError as exc:
        raise fail(str(exc), EXIT_ERROR) from None
    except PrivacyError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except _USAGE_ERRORS as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    except DpsynthError as exc:
        raise fail(str(exc), EXIT_ERROR) from None
    except KeyboardInterrupt:
        raise fail("interrupted", EXIT_ERROR) from None


@contextlib.contextmanager
def progress_bars(quiet: bool) -> Iterator[StageProgressFn | None]:
    """Rich progress bars on stderr, one per stage (attack, shadow runs...), as a
    ``progress(stage, done, total)`` callback; None when ``quiet``."""
    if quiet:
        yield None
        return
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    bars = Progress(TextColumn("{task.description:<36}"), BarColumn(),
                    TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                    console=console)
    tasks: dict[str, TaskID] = {}

    def tick(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(escape(stage), total=1.0)
        bars.update(tasks[stage], completed=done / max(total, 1))

    with bars:
        yield tick


def print_table(table: object) -> None:
    """Print a rich table on stdout, full width when stdout is not a terminal (a pipe or a
    file gets every figure, not cells cut to the 80 columns rich assumes there)."""
    if out.is_terminal:
        out.print(table)
    else:
        Console(file=out.file, width=max(out.width, 200), soft_wrap=True).print(table)


def model_choice_hint(name: str, epsilon: float, n_rows: int,
                      target: str | None = None, public: bool = False,
                      predicts: str | None = None) -> str | None:
    """A one-line hint when ``docs/benchmarks.md`` says another table model did better.

    ``dpar`` trailed ``aim`` on TSTR on every table benchmarked below about 10,000 rows at
    epsilon = 1 and 20,000 at epsilon = 4 (Adult cut to 2,000-20,000 rows, wage, CreditCard,
    SwissLabor); between the two the threshold is interpolated on a log scale, and above 4 it
    stays at 20,000 (not measured further). With a ``target`` (dpar's target head) its TSTR
    came level with aim's on the small tables, but aim's 3-way TVD stayed lower, and the
    note says that instead. With declared ``public`` rows it does not suggest a target (dpar
    refuses the two together). ``predicts``: the column a release's utility check predicts
    (``release --target``); when dpar is not told a target, the note names that column, and
    it is given at any size, since the target head raised dpar's TSTR on every table
    benchmarked. ``dpvae`` is kept as a reference only. Uses the row count, epsilon and the
    column names alone (all public to the plan), so it costs no privacy; ``n_rows`` is the
    rows the generator fits on.
    """
    if name == "dpvae":
        return ("Note: dpvae learns little about how columns relate and is kept as a "
                "reference; aim (the default) or dpar give better tables (docs/benchmarks.md).")
    if name != "dpar" or not math.isfinite(epsilon):
        return None
    column = predicts or "COLUMN"
    name_it = not target and not public
    position = min(max(math.log(epsilon) / math.log(4.0), 0.0), 1.0)
    threshold = 10_000 * 2.0 ** position
    if n_rows >= threshold:
        if name_it and predicts:
            return (f"Note: dpar can model {predicts} apart from the other columns "
                    f"(--param target={predicts}, 30 % of ε alone): that raised dpar's TSTR on "
                    "every table dpsynth has benchmarked (docs/benchmarks.md).")
        return None
    sizes = ("at that size (below about 10,000 rows at ε = 1, 20,000 at ε = 4; "
             "docs/benchmarks.md)")
    if target:
        return (f"Note: at {n_rows:,} rows and ε = {epsilon:g}, the target head brought "
                "dpar's TSTR level with aim's on the tables dpsynth has benchmarked, but aim's "
                f"marginals (3-way TVD) stayed closer to the data on every table {sizes}.")
    advice = ("Consider --synthesizer aim unless you need dpar's conditional sampling or "
              "declared public rows")
    if name_it:
        advice += f", or name the column you will predict (--param target={column})"
    return (f"Note: at {n_rows:,} rows and ε = {epsilon:g}, aim gave higher TSTR than "
            f"dpar on every table dpsynth has benchmarked {sizes}. {advice}.")


def print_chosen(synth: BaseSynthesizer, given: Mapping[str, Any] | None = None) -> None:
    """One line with the settings given by ``--param`` and one with those the fit chose for
    its automatic parameters, each only when there are some."""
    if given:
        params = synth.get_params()
        shown = ", ".join(f"{k}={params.get(k, v)!r}" for k, v in given.items())
        out.print(f"Settings given: {shown}", highlight=False)
    chose = ", ".join(f"{k}={v!r}" for k, v in synth.automatic_params().items())
    if chose:
        out.print(f"Settings the fit chose: {chose}", highlight=False)
