"""A self-contained HTML report of an audit: verdicts, ROC curves, exposed row ids.

The page has no scripts, no external resources and no data values: records are named by their
row id in the training table only, so the report can travel without leaking what it audits.
ROC curves are drawn as inline SVG.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dpsynth.attacks.result import AttackResult, Rate, RocCurve
from dpsynth.attacks.suite import AuditReport

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em}.muted{color:#666;font-size:.9em}
.verdict{display:inline-block;padding:.3em .8em;border-radius:4px;font-weight:600;color:#fff}
.leak{background:#c0392b}.safe{background:#27ae60}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:1.5em}.chart{border:1px solid #eee;padding:.5em}
code{background:#f6f6f6;padding:0 .2em}
"""
_SIZE, _PAD = 300, 42


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(rate: Rate) -> str:
    return f"{100 * rate.value:.1f}% [{100 * rate.ci[0]:.1f}, {100 * rate.ci[1]:.1f}]"


def _risk(rate: Rate) -> str:
    return f"{rate.value:+.3f} [{rate.ci[0]:+.3f}, {rate.ci[1]:+.3f}]"


def _badge(leak: bool, text: str | None = None) -> str:
    cls = "leak" if leak else "safe"
    return f'<span class="verdict {cls}">{_e(text or ("leak" if leak else "no risk found"))}</span>'


def _scale(value: float, log_x: bool) -> float:
    if not log_x:
        return value
    floor = 1e-3
    return (math.log10(max(value, floor)) - math.log10(floor)) / -math.log10(floor)


def roc_svg(roc: RocCurve, title: str, *, log_x: bool = False) -> str:
    """An ROC curve as an inline SVG element (FPR on a log axis when ``log_x``)."""
    inner = _SIZE - 2 * _PAD

    def xy(fpr: float, tpr: float) -> str:
        x = _PAD + inner * _scale(fpr, log_x)
        y = _SIZE - _PAD - inner * tpr
        return f"{x:.1f},{y:.1f}"

    ticks = [0.001, 0.01, 0.1, 1.0] if log_x else [0.0, 0.25, 0.5, 0.75, 1.0]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_SIZE}" height="{_SIZE}" '
             f'viewBox="0 0 {_SIZE} {_SIZE}" role="img" aria-label="{_e(title)}">',
             f'<rect x="{_PAD}" y="{_PAD}" width="{inner}" height="{inner}" fill="none" '
             'stroke="#999"/>']
    for t in ticks:
        x = _PAD + inner * _scale(t, log_x)
        parts.append(f'<line x1="{x:.1f}" y1="{_SIZE - _PAD}" x2="{x:.1f}" '
                     f'y2="{_SIZE - _PAD + 4}" stroke="#999"/>'
                     f'<text x="{x:.1f}" y="{_SIZE - _PAD + 16}" font-size="10" '
                     f'text-anchor="middle">{t:g}</text>')
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _SIZE - _PAD - inner * t
        parts.append(f'<text x="{_PAD - 6}" y="{y + 3:.1f}" font-size="10" '
                     f'text-anchor="end">{t:g}</text>')
    grid = [i / 50 for i in range(51)] if not log_x else [10 ** (-3 + 3 * i / 50)
                                                          for i in range(51)]
    chance = " ".join(xy(f, f) for f in grid)
    curve = " ".join(xy(f, t) for f, t in zip(roc.fpr, roc.tpr, strict=True))
    parts += [f'<polyline points="{chance}" fill="none" stroke="#bbb" stroke-dasharray="4 3"/>',
              f'<polyline points="{curve}" fill="none" stroke="#2c3e50" stroke-width="2"/>',
              f'<text x="{_SIZE / 2}" y="{_PAD - 22}" font-size="12" text-anchor="middle" '
              f'font-weight="600">{_e(title)}</text>',
              f'<text x="{_SIZE / 2}" y="{_PAD - 8}" font-size="11" text-anchor="middle">'
              f'AUC {roc.auc:.3f} [{roc.auc_ci[0]:.3f}, {roc.auc_ci[1]:.3f}]</text>',
              f'<text x="{_SIZE / 2}" y="{_SIZE - 8}" font-size="11" text-anchor="middle">'
              f'false-positive rate{" (log)" if log_x else ""}</text>',
              f'<text x="12" y="{_SIZE / 2}" font-size="11" text-anchor="middle" '
              f'transform="rotate(-90 12 {_SIZE / 2})">true-positive rate</text>', "</svg>"]
    return "".join(parts)


def _results_table(report: AuditReport) -> str:
    rows = ["<table><tr><th>attack</th><th>threat model</th><th>targets</th>"
            "<th>success on training rows</th><th>success on controls</th>"
            "<th>naive baseline</th><th>risk (attack over control)</th>"
            "<th>p (risk above threshold)</th><th>verdict (after Holm)</th>"
            "<th>seconds</th></tr>"]
    for r, flagged in zip(report.results, report.flags, strict=True):
        note = f'<br><span class="muted">{_e(r.notes)}</span>' if r.notes else ""
        rows.append(
            f"<tr><td><code>{_e(r.attack)}</code>{note}</td>"
            f"<td>{_e(r.threat_model.describe())}</td><td class='num'>{r.n_targets}</td>"
            f"<td class='num'>{_pct(r.success)}</td><td class='num'>{_pct(r.control)}</td>"
            f"<td class='num'>{_pct(r.baseline)}</td><td class='num'>{_risk(r.risk)}</td>"
            f"<td class='num'>{_e(_fmt(r.p_value) if r.p_value is not None else '')}</td>"
            f"<td>{_badge(flagged)}</td><td class='num'>{_e(r.seconds)}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _charts(report: AuditReport) -> str:
    blocks = []
    for r in report.results:
        if r.roc is None:
            continue
        tpr1, tpr01 = r.metrics.get("tpr_at_fpr_1pct"), r.metrics.get("tpr_at_fpr_0.1pct")
        blocks.append(
            f'<div class="chart">{roc_svg(r.roc, r.attack)}{roc_svg(r.roc, r.attack, log_x=True)}'
            f'<div class="muted">TPR at FPR 1%: {_e(_fmt(tpr1))}; at FPR 0.1%: '
            f'{_e(_fmt(tpr01))}</div></div>')
    if not blocks:
        return ""
    return "<h2>ROC curves</h2><div class='charts'>" + "".join(blocks) + "</div>"


def _fmt(value: object) -> str:
    if value is None:
        return "n/a (too few controls)"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _exposed(report: AuditReport) -> str:
    top = report.exposed_row_ids()
    head = ("<h2>Most exposed training records</h2><p class='muted'>Row ids (0-based position "
            "or index label in the training table) exposed by attacks that flagged a leak; "
            "values are never shown.</p>")
    if not top:
        return head + "<p>No record was exposed by an attack that flagged a leak.</p>"
    cells = "".join(f"<tr><td>{_e(rid)}</td><td class='num'>{n}</td></tr>" for rid, n in top)
    per_attack = "".join(
        f"<li><code>{_e(r.attack)}</code>: {_e(', '.join(str(i) for i in r.exposed_row_ids))}"
        f"</li>" for r in report.results if r.leak and r.exposed_row_ids)
    return (head + f"<table><tr><th>row id</th><th>attacks exposing it</th></tr>{cells}"
            f"</table><ul>{per_attack}</ul>")


def _details(results: tuple[AttackResult, ...]) -> str:
    out = ["<h2>Details</h2>"]
    for r in results:
        items = "".join(f"<tr><td>{_e(k)}</td><td class='num'>{_e(_fmt(v))}</td></tr>"
                        for k, v in r.metrics.items())
        out.append(f"<h3><code>{_e(r.attack)}</code></h3><table>{items}</table>")
    return "".join(out)


def _data_summary(data: Mapping[str, object]) -> str:
    columns = data.get("columns", {})
    cols = ", ".join(f"{_e(k)} ({_e(v)})" for k, v in dict(columns).items()) \
        if isinstance(columns, Mapping) else ""
    counts = ", ".join(f"{_e(k[2:])}: {_e(v)}" for k, v in data.items()
                       if k.startswith("n_") and v is not None)
    sampling = data.get("sampling")
    sampled = ""
    if isinstance(sampling, Mapping):
        sampled = (f"<p>Targets: each attack draws up to {_e(sampling.get('n_targets'))} "
                   "training rows at random and as many holdout rows as controls (the "
                   "<em>targets</em> column gives each attack's count; its intervals are for "
                   "that many); the rare-record attack ranks "
                   f"{_e(sampling.get('rare_records_ranked'))} rows of each; the synthetic "
                   "table is searched whole.</p>")
    return (f"<p>Rows - {counts}.</p>{sampled}"
            f"<p class='muted'>Audited columns: {cols}</p>")


_TEXT_MEASURES = (("exact", "exact copies"), ("long_copy", "long shared substring"),
                  ("near_verbatim", "near-verbatim copies"), ("ngram_overlap", "word n-grams"))


def _text_section(data: Mapping[str, Any]) -> str:
    """Copy rates per text column (:func:`~dpsynth.attacks.run_text_audit`), no text shown."""
    found = data.get("text")
    if not isinstance(found, Mapping) or not found:
        return ""
    rows = []
    for column, figures in found.items():
        copies = dict(figures.get("reproduction") or {})
        for key, label in _TEXT_MEASURES:
            rate = dict(copies.get(key) or {})
            rows.append(f"<tr><td>{_e(column)}</td><td>{label}</td>"
                        f"<td class='num'>{_e(_fmt(rate.get('train')))}</td>"
                        f"<td class='num'>{_e(_fmt(rate.get('control')))}</td></tr>")
        pii = dict(figures.get("pii") or {})
        rows.append(f"<tr><td>{_e(column)}</td><td>PII-like strings reproduced</td>"
                    f"<td class='num'>{_e(_fmt(pii.get('rate')))}</td>"
                    f"<td class='num'>{_e(_fmt(pii.get('control_rate')))}</td></tr>")
    return ("<h2>Copies of the training text</h2><p class='muted'>Share of synthetic records "
            "copying a training record, beside the same share for holdout records.</p><table>"
            "<tr><th>column</th><th>measure</th><th>training text</th><th>holdout text</th>"
            "</tr>" + "".join(rows) + "</table>")


def _generator_section(audit: Mapping[str, Any] | None) -> str:
    """The generator audit: accounted against empirical epsilon, per-target AUCs, runs."""
    if not audit:
        return ""
    if audit.get("mode") == "white-box":
        return _white_box_section(audit)
    gen = dict(audit.get("generator") or {})
    violated = bool(audit.get("violated"))
    accounted = audit.get("accounted_epsilon")
    badge = _badge(violated, "epsilon VIOLATED" if violated else "within the accounted epsilon")
    head = (f"<h2>Generator audit {badge}</h2>"
            f"<p>Generator <code>{_e(gen.get('name'))}</code> ({_e(gen.get('kind'))}); "
            f"accounted &epsilon; = {_e(_fmt(accounted) if accounted is not None else 'none')}"
            f", &delta; = {_e(_fmt(audit.get('accounted_delta')))}. Empirical lower bound at "
            f"{_e(_fmt(100 * float(audit.get('confidence', 0))))}% confidence (all tests "
            f"together): &epsilon; &ge; {_e(_fmt(audit.get('epsilon_lower')))} "
            f"(from {_e(audit.get('epsilon_lower_source'))}).</p>")
    if violated:
        head += ("<p><strong>The lower bound exceeds the accounted epsilon: the generator does "
                 "not deliver the privacy it claims (a bug in dpsynth or in the generator "
                 "under test).</strong></p>")
    bounds = "".join(
        f"<tr><td>{_e(b.get('label'))}</td><td>{_e(b.get('method'))}</td>"
        f"<td class='num'>{_e(_fmt(b.get('epsilon')))}</td>"
        f"<td class='num'>{_e(_fmt(b.get('ceiling')))}</td>"
        f"<td>{_e(', '.join(f'{k}={v}' for k, v in dict(b.get('counts', {})).items()))}</td>"
        "</tr>" for b in list(audit.get("bounds") or []))
    aucs = {f"{t.get('kind')}:{t.get('row_id')}": t.get("auc")
            for t in list(audit.get("targets") or [])}
    table = ("<table><tr><th>target</th><th>test</th><th>&epsilon; lower bound</th>"
             "<th>best possible with these runs</th><th>counts</th></tr>" + bounds + "</table>")
    auc_line = ", ".join(f"{_e(k)}: {_e(_fmt(v))}" for k, v in aucs.items())
    mama = dict(audit.get("mama") or {})
    if mama:
        mama_line = ", ".join(f"{_e(t.get('kind'))}:{_e(t.get('row_id'))}: "
                              f"{_e(_fmt(t.get('auc')))}" for t in mama.get("targets", []))
        auc_line = (f"{auc_line}</p><p class='muted'>Per-target AUC of MAMA-MIA (the "
                    f"generator-aware attack on marginal generators, family "
                    f"<code>{_e(mama.get('family'))}</code>; Golob et al. 2024), on the same "
                    f"runs: {mama_line}")
    runs = dict(audit.get("shadow_runs") or {})
    errors = "".join(f"<li>{_e(e)}</li>" for e in runs.get("errors", []))
    return (head + table + f"<p class='muted'>Per-target AUC (Groundhog): {auc_line}</p>"
            f"<p class='muted'>Shadow runs: {_e(runs.get('runs'))} on {_e(runs.get('backend'))}"
            f" ({_e(runs.get('workers'))} workers), {_e(runs.get('runs_retried'))} retried, "
            f"{_e(runs.get('runs_failed'))} failed after a retry.</p>"
            + (f"<ul>{errors}</ul>" if errors else ""))


def _white_box_section(audit: Mapping[str, Any]) -> str:
    """A white-box audit (:mod:`dpsynth.attacks.white_box`): claim, bound, method, power."""
    violated = bool(audit.get("violated"))
    badge = _badge(violated, "epsilon VIOLATED" if violated else "within the accounted epsilon")
    lo, hi = (list(audit.get("epsilon_ci") or [None, None]) + [None, None])[:2]
    params = dict(audit.get("params") or {})
    other = dict(params.get("other") or {})
    dpsgd = "statistic" in params  # dpsynth.attacks.white_box_dpsgd: gradient canary
    figures: list[tuple[str, str]] = [
        ("accounted ε (claimed)", _fmt(audit.get("accounted_epsilon"))),
        ("δ", _fmt(audit.get("delta"))),
        ("ε lower bound (reported)", _fmt(audit.get("epsilon_lower"))),
        ("ε from the GDP fit, one-sided interval", f"[{_fmt(lo)}, {_fmt(hi)}]"),
        ("ε lower bound, Clopper-Pearson", _fmt(audit.get("epsilon_lower_cp")))]
    if dpsgd:
        figures += [
            ("statistic reported (the other: its ε lower bound)",
             f"{params.get('statistic')} ({other.get('statistic')}: "
             f"{_fmt(other.get('epsilon_lower'))})"),
            ("DP-SGD run audited: sampling rate, steps, noise multiplier",
             f"{_fmt(params.get('sample_rate'))}, {_fmt(params.get('steps'))}, "
             f"{_fmt(params.get('noise_multiplier'))}"),
            ("ε this statistic shows on a correct mechanism (best this test can show)",
             _fmt(audit.get("epsilon_planned")))]
    else:
        figures += [
            ("released domains seen (must be 1); ε from the domain",
             f"{_fmt(audit.get('domains_seen', 1))}; "
             f"{_fmt(audit.get('epsilon_lower_domain', 0))}"
             + (" — DOMAIN LEAK" if audit.get("domain_leak") else "")),
            ("ε of the measurements the canary touches (best this test can show)",
             _fmt(audit.get("epsilon_planned")))]
    figures += [
        ("μ fitted (planned)", f"{_fmt(audit.get('mu_hat'))} ({_fmt(audit.get('mu_planned'))})"),
        ("fits on D and on D' (each)", _fmt(audit.get("n_fits"))),
        ("power against a halved noise scale", _fmt(audit.get("power_half_noise"))),
        ("CPU seconds", _fmt(audit.get("cpu_seconds")))]
    rows = "".join(f"<tr><td>{_e(k)}</td><td class='num'>{_e(v)}</td></tr>"
                   for k, v in figures)
    return (f"<h2>White-box generator audit {badge}</h2>"
            f"<p>Synthesizer <code>{_e(audit.get('synthesizer'))}</code>. Method: "
            f"{_e(audit.get('epsilon_lower_source'))}, at "
            f"{_e(_fmt(100 * float(audit.get('confidence', 0))))}% confidence. "
            f"{_e(str(audit.get('power', '')).capitalize())}.</p>"
            f"<table><tr><th>figure</th><th>value</th></tr>{rows}</table>")


def render_html(report: AuditReport) -> str:
    """The whole report as one HTML string."""
    rule = (f"An attack flags a leak when the lower end of the {100 * report.confidence:g}% "
            f"confidence interval of its risk, (attack - control) / (1 - control), is above "
            f"{report.threshold:g} (0 for the copy attacks). The audit flags a leak when Holm's "
            f"step-down rule over the attacks' one-sided p-values, at family level "
            f"{1 - report.confidence:.3g}, keeps such an attack.")
    return "".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>dpsynth privacy audit</title>", f"<style>{_STYLE}</style></head><body>",
        f"<h1>Privacy audit {_badge(report.leak)}</h1>",
        f"<p class='muted'>dpsynth {_e(report.version)} &middot; {_e(report.created)} &middot; "
        f"seed {report.seed} &middot; {report.seconds:.1f} s</p>",
        _data_summary(report.data), _generator_section(report.generator_audit),
        f"<p>{_e(rule)}</p>", _results_table(report),
        _text_section(report.data), _charts(report), _exposed(report),
        _details(report.results),
        "<p class='muted'>This report names records by row id only and shows no data values."
        "</p></body></html>",
    ])


def save_html(report: AuditReport, path: str | Path) -> Path:
    """Write :func:`render_html` to ``path``."""
    path = Path(path)
    path.write_text(render_html(report), encoding="utf-8")
    return path
