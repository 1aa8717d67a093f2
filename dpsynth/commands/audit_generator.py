"""``dpsynth audit-generator``: attack a generator itself and bound its epsilon from below.

The generator is a dpsynth synthesizer (``--synthesizer mst --epsilon 1 --schema s.yaml``), an
external command line that reads a CSV and writes one (``--command "tool --in {train} --out
{out} --rows {n} --seed {seed}"``), or a Python function (``--callable pkg.module:fn``). It is
trained many times on rows of ``--population`` (reference rows, never the private table), with
and without target records and canaries. Writes ``audit.json`` and ``audit.html`` to ``--out``
in the format of ``dpsynth audit``, with the same exit statuses: 0 no risk found, 3 a leak
(including an empirical epsilon above the accounted one), 1 error, 2 usage error.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
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
    out,
    parse_params,
    progress_bars,
)
from dpsynth.commands.audit import write_audit

if TYPE_CHECKING:
    from dpsynth.attacks import AuditReport
    from dpsynth.attacks.generators import Generator
    from dpsynth.schema import Schema


def audit_generator(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for audit.json and "
                                          "audit.html.", show_default=False)],
    population: Annotated[Path | None, typer.Option(
        help="Reference rows from the population (CSV/Parquet); shadow datasets are drawn "
             "from them. Required unless --white-box.", show_default=False)] = None,
    white_box: Annotated[bool, typer.Option(
        "--white-box", help="Audit a marginal synthesizer (mst, aim) on its noisy "
        "measurements, or a DP-SGD one (dpvae, dptext) on its noisy updates with a gradient "
        "canary, on a worst-case pair of tables: a tight epsilon lower bound.")] = False,
    fits: Annotated[int, typer.Option(help="--white-box: fits on each of the two "
                                      "neighbouring tables (DP-SGD: 1000 for a tight bound, "
                                      "about 40 CPU s per 1000 dpvae fits).")] = 300,
    numeric_column: Annotated[bool, typer.Option(
        "--numeric-column", help="--white-box, marginal synthesizers: add a numeric column "
        "whose canary value sits at the declared bound, to catch bounds read from the "
        "data.")] = False,
    synthesizer: Annotated[str | None, typer.Option(
        help="Audit this dpsynth synthesizer (mst, aim, dpvae...).")] = None,
    command: Annotated[str | None, typer.Option(
        help="Audit an external command with placeholders {train} {out} {n} {seed}.")] = None,
    callable_: Annotated[str | None, typer.Option(
        "--callable", help="Audit a Python function 'module:function' called as "
        "fn(train, n_rows, seed) -> DataFrame.")] = None,
    schema: Annotated[Path | None, typer.Option(help="Schema (YAML/JSON); required with "
                                                "--synthesizer.")] = None,
    epsilon: Annotated[float | None, typer.Option(
        help="The synthesizer's epsilon, or the epsilon an external generator claims "
             "(default: none claimed).")] = None,
    delta: Annotated[float, typer.Option(help="The delta of the claim (kept small: the "
                                         "one-run audit needs delta << 1/canaries).")] = 1e-5,
    param: Params = None,
    timeout: Annotated[float, typer.Option(help="Seconds one --command run may take.")] = 3600,
    n_rows: Annotated[int | None, typer.Option(help="Rows per shadow training set "
                                               "(default: min(1000, population/2)).")] = None,
    n_synthetic: Annotated[int | None, typer.Option(help="Synthetic rows per run (default: "
                                                    "--n-rows).")] = None,
    vulnerable: Annotated[int, typer.Option(help="Most vulnerable records attacked.")] = 5,
    random_targets: Annotated[int, typer.Option("--random", help="Random records attacked, "
                                                "for contrast.")] = 5,
    canaries: Annotated[int, typer.Option(help="Crafted canaries attacked in the shadow "
                                          "runs.")] = 1,
    shadow_train: Annotated[int, typer.Option(help="Shadow runs training the "
                                              "classifiers.")] = 100,
    shadow_test: Annotated[int, typer.Option(help="Fresh shadow runs testing them.")] = 100,
    one_run_canaries: Annotated[int, typer.Option(help="Canaries of the one-run audit "
                                                  "(0 skips it).")] = 200,
    family: Annotated[str | None, typer.Option(
        help="Also run the generator-aware MAMA-MIA attack assuming this marginal-generator "
             "family (mst, aim; 'none' to skip). Default: on for --synthesizer mst/aim.")
    ] = None,
    threshold: Annotated[float, typer.Option(help="Flag a leak when the lower end of the "
                                             "risk's confidence interval exceeds this.")] = 0.05,
    confidence: Annotated[float, typer.Option(help="Confidence of the intervals and of the "
                                              "epsilon lower bound.")] = 0.95,
    seed: Annotated[int | None, typer.Option(help="Master seed; the same results on any "
                                             "backend.")] = None,
    jobs: Annotated[int | None, typer.Option(help="Local worker processes (default: all "
                                             "CPUs).")] = None,
    ray_address: Annotated[str | None, typer.Option(help="Run the shadow runs on this Ray "
                                                    "cluster ('auto', host:port, ray://...).")
                           ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Audit a generator with shadow models and canaries; exit 3 when it leaks or its
    empirical epsilon exceeds the accounted one."""
    if white_box:
        _white_box(synthesizer, epsilon, delta, param or [], fits, confidence, seed, out_dir,
                   numeric_column, _WhiteBoxRun(jobs, ray_address, quiet))
        return
    with cli_errors():
        if population is None:
            raise fail("--population is required (unless --white-box)", EXIT_USAGE)
        from dpsynth.attacks.generator_audit import ShadowPlan
        from dpsynth.attacks.generator_audit import audit_generator as run
        from dpsynth.data.io import read_table
        from dpsynth.schema import Schema

        table_schema = Schema.load(schema) if schema is not None else None
        generator = _generator(synthesizer, command, callable_, table_schema, epsilon, delta,
                               param or [], timeout)
        frame = read_table(population, schema=table_schema)
        plan = ShadowPlan(n_rows, n_synthetic, vulnerable, random_targets, canaries,
                          shadow_train, shadow_test, one_run_canaries)
        with progress_bars(quiet) as tick:
            report = run(generator, frame, schema=table_schema, plan=plan, threshold=threshold,
                         confidence=confidence, random_state=seed, n_jobs=jobs,
                         ray_address=ray_address, progress=tick, family=family)
        write_audit(report, out_dir, _summary)
    if report.leak:
        raise typer.Exit(EXIT_LEAK)


@dataclass(frozen=True)
class _WhiteBoxRun:
    """Where the white-box fits run: local processes or Ray, with or without a bar."""

    jobs: int | None = None
    ray_address: str | None = None
    quiet: bool = False


def _white_box(synthesizer: str | None, epsilon: float | None, delta: float,
               params: list[str], fits: int, confidence: float, seed: int | None,
               out_dir: Path, numeric: bool = False, run: _WhiteBoxRun = _WhiteBoxRun()
               ) -> None:
    """``--white-box``: :func:`dpsynth.attacks.white_box.white_box_audit`; exit 3 on a
    violation."""
    with cli_errors():
        import datetime as _dt

        from dpsynth.attacks import AuditReport
        from dpsynth.attacks.white_box import white_box_audit
        from dpsynth.attacks.white_box_dpsgd import dpsgd_white_box_audit, is_dpsgd_synthesizer

        if synthesizer is None or epsilon is None:
            raise fail("--white-box needs --synthesizer and --epsilon", EXIT_USAGE)
        seed = 0 if seed is None else seed
        with progress_bars(run.quiet) as tick:
            if is_dpsgd_synthesizer(synthesizer):
                if numeric:
                    raise fail("--numeric-column applies to the marginal synthesizers only",
                               EXIT_USAGE)
                audit = dpsgd_white_box_audit(
                    synthesizer, epsilon=epsilon, delta=delta, n_fits=fits,
                    confidence=confidence, random_state=seed, params=parse_params(params))
            else:
                label = f"white-box fits of {synthesizer} (chunks of 100)"
                audit = white_box_audit(
                    synthesizer, epsilon=epsilon, delta=delta, n_fits=fits,
                    confidence=confidence, random_state=seed, params=parse_params(params),
                    numeric=numeric, n_jobs=run.jobs, ray_address=run.ray_address,
                    progress=None if tick is None else (lambda d, t: tick(label, d, t)))
        report = AuditReport((), 0.0, confidence, seed, {}, audit.cpu_seconds,
                             _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                             generator_audit=audit.to_dict())
        write_audit(report, out_dir, _white_box_summary)
    if report.leak:
        raise typer.Exit(EXIT_LEAK)


def _white_box_summary(report: AuditReport, out_dir: Path) -> None:
    audit = dict(report.generator_audit or {})
    lo, hi = audit["epsilon_ci"]
    statistic = dict(audit.get("params") or {}).get("statistic")
    best = (f"a correct mechanism shows ε ≈ {audit['epsilon_planned']:.3f} on the "
            f"{statistic} statistic" if statistic else "the measurements the canary touches "
            f"carry ε = {audit['epsilon_planned']:.3f}")
    out.print(f"White-box audit of {escape(str(audit['synthesizer']))}: claimed ε = "
              f"{audit['accounted_epsilon']:g}; ε ≥ {audit['epsilon_lower']:.3f} at "
              f"{100 * report.confidence:g}% confidence (GDP fit [{lo:.3f}, {hi:.3f}], "
              f"Clopper-Pearson {audit['epsilon_lower_cp']:.3f}); {best}; {audit['power']}.")
    if audit.get("domain_leak"):
        console.print("[bold red]PRIVACY VIOLATION:[/] the released domain differs with and "
                      "without the canary: a bound or category is read from the data unpaid.",
                      highlight=False)
    elif report.violated:
        console.print("[bold red]PRIVACY VIOLATION:[/] the lower bound exceeds the claimed ε.",
                      highlight=False)
    out.print(f"{audit['n_fits']} fits per table, {audit['cpu_seconds']:.1f} CPU s; report in "
              f"{out_dir / 'audit.json'} and {out_dir / 'audit.html'}")


def _generator(synthesizer: str | None, command: str | None, callable_: str | None,
               schema: Schema | None, epsilon: float | None, delta: float,
               params: list[str], timeout: float) -> Generator:
    from dpsynth.attacks.generators import CallableGenerator, CommandGenerator, DpsynthGenerator

    chosen = [n for n, v in (("--synthesizer", synthesizer), ("--command", command),
                             ("--callable", callable_)) if v]
    if len(chosen) != 1:
        raise fail("give exactly one generator: --synthesizer, --command or --callable "
                   f"(got {chosen or 'none'})", EXIT_USAGE)
    if params and not synthesizer:
        raise fail("--param applies to --synthesizer only", EXIT_USAGE)
    if synthesizer:
        if schema is None:
            raise fail("--synthesizer needs --schema (the public domain it is fitted on)",
                       EXIT_USAGE)
        generator = DpsynthGenerator(synthesizer, schema,
                                     epsilon=1.0 if epsilon is None else epsilon,
                                     delta=delta, params=parse_params(params))
        generator.check()
        return generator
    if command:
        return CommandGenerator(command, epsilon=epsilon, delta=delta, timeout=timeout,
                                schema=schema)
    assert callable_ is not None
    return CallableGenerator(_load_callable(callable_), name=callable_, epsilon=epsilon,
                             delta=delta)


def _load_callable(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise fail(f"--callable must be 'module:function'; got {spec!r}", EXIT_USAGE)
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # modules in the working directory, as `python -m` finds them
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise fail(f"cannot load --callable {spec!r}: {exc}", EXIT_USAGE) from None
    if not callable(fn):
        raise fail(f"--callable {spec!r} is not callable", EXIT_USAGE)
    return fn


def _summary(report: AuditReport, out_dir: Path) -> None:
    table = Table(title=f"Generator audit verdict: {report.verdict}", title_justify="left")
    for column in ("attack", "targets", "AUC", "TPR", "FPR", "risk [CI]", "ε lower", "verdict"):
        table.add_column(column)
    for r in report.results:
        table.add_row(escape(r.attack), str(r.metrics.get("n_target_records", r.n_targets)),
                      _num(r.metrics.get("auc")),
                      f"{r.success.value:.3f}", f"{r.control.value:.3f}",
                      f"{r.risk.value:+.3f} [{r.risk.ci[0]:+.3f}, {r.risk.ci[1]:+.3f}]",
                      _num(r.metrics.get("epsilon_lower")),
                      "[red]leak[/]" if r.leak else "[green]no risk found[/]")
    out.print(table)
    audit = report.generator_audit or {}
    accounted = audit.get("accounted_epsilon")
    claim = "none claimed" if accounted is None else f"{accounted:g}"
    out.print(f"Empirical ε lower bound {audit.get('epsilon_lower', 0):.3f} at "
              f"{100 * report.confidence:g}% confidence (from {audit.get('epsilon_lower_source')})"
              f"; accounted ε: {claim}.")
    runs = audit.get("shadow_runs", {})
    if runs.get("runs_failed"):
        console.print(f"[bold yellow]{runs['runs_failed']} shadow run(s) failed after a retry "
                      "and were left out:[/]", highlight=False)
        for error in runs.get("errors", []):
            console.print(f"  {escape(error)}", highlight=False)
    if report.violated:
        console.print(f"[bold red]PRIVACY VIOLATION:[/] the empirical lower bound "
                      f"ε ≥ {audit.get('epsilon_lower', 0):.3f} exceeds the accounted "
                      f"ε = {claim}: the generator does not deliver the privacy it claims.",
                      highlight=False)
    out.print(f"Audit took {report.seconds:.1f} s ({runs.get('runs')} shadow runs on "
              f"{runs.get('backend')}, {runs.get('workers')} workers); report in "
              f"{out_dir / 'audit.json'} and {out_dir / 'audit.html'}")


def _num(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"


def register(app: typer.Typer) -> None:
    """Add ``dpsynth audit-generator`` to ``app``."""
    app.command("audit-generator")(audit_generator)
