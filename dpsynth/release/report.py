"""The release report: one self-contained HTML page (inline CSS and SVG, no script, nothing
fetched) that explains the decision to someone who has never used dpsynth.

It is rendered from the :class:`~dpsynth.release.card.DatasetCard` (every figure it prints
comes from the card and carries ``data-key``/``data-value`` attributes naming the card field,
so a test can check that the two agree) plus the plot data of
:class:`~dpsynth.release.gate.Figures`. It shows statistics of the private data that epsilon
does not cover (real marginals and associations, attack rates), so it is for the data
custodian; the synthetic data and the card are what gets published.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from dpsynth._util.html import BASE_CSS as _BASE_CSS
from dpsynth._util.svg import purpose_chart
from dpsynth.attacks.report import roc_svg
from dpsynth.release._svg import association_heatmap, budget_bar, legend, marginal_chart
from dpsynth.release.card import DatasetCard
from dpsynth.release.card_sections import AuditSection, EvaluationSection
from dpsynth.release.gate import Figures

_CSS = _BASE_CSS + """
.decision{display:inline-block;padding:.35rem 1rem;border-radius:6px;color:#fff;font-weight:700;
font-size:1.3rem;letter-spacing:.05em;vertical-align:middle}
.ship{background:#2f855a}.reject{background:#c53030}.regenerate{background:#b7791f}
.refused{background:#718096}
.internal{background:#fffaf0;border-left:4px solid #dd6b20;padding:.5rem 1rem;margin:1rem 0;
font-size:.9rem}.headline{font-size:1.1rem}.pass{color:#276749;font-weight:600}
.fail{color:#c53030;font-weight:600}.skip{color:#718096}
.grid{display:flex;flex-wrap:wrap;gap:.6rem}.grid svg{border:1px solid #edf2f7}
pre{background:#f7fafc;padding:.6rem;white-space:pre-wrap;font-size:.8rem}
"""


PCT = "{:.1%}"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _fig(value: Any, key: str, fmt: str = "{:.3f}") -> str:
    """A card value, printed with ``fmt`` and tagged with the card field ``key`` it comes
    from (``data-key``/``data-value``), or *n/a*."""
    if value is None:
        return '<span class="skip">n/a</span>'
    return (f'<span data-key="{_e(key)}" data-value="{_e(repr(value))}">'
            f'{_e(fmt.format(value))}</span>')


def render_report(card: DatasetCard, figures: Figures | None = None) -> str:
    """The report of ``card`` as one HTML document."""
    figures = figures or Figures()
    body = [_header(card), _checks(card), _budget(card), _generator_audit(card),
            _audit(card.audit, figures),
            _fidelity(card.evaluation, figures), _utility(card.evaluation), _evidence(card),
            _attempts(card),
            _coverage(card), _provenance(card)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>dpsynth release {_e(card.dataset)}: {_e(card.decision)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def save_report(card: DatasetCard, figures: Figures | None, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render_report(card, figures), encoding="utf-8")
    return path


# -- sections --------------------------------------------------------------------------------
def _headline(card: DatasetCard) -> str:
    if card.decision == "ship":
        return ("Ship: the synthetic data passed every check of the release policy. No attack "
                "told the training records apart from records it never saw better than the "
                "policy allows, and the data keeps the statistics and predictive signal it "
                "requires.")
    privacy_failed = any(c.area == "privacy" and c.passed is False for c in card.checks)
    if privacy_failed:
        return ("Reject: an attack found that this synthetic data gives away information about "
                "the people it was trained on (it does better on them than on the holdout). "
                "The data is withheld; find the cause (a data-derived schema, a generator bug, "
                "or an epsilon too large for the table) before spending budget again.")
    return ("Reject: the synthetic data is private by the audit's measure but does not meet the "
            "policy's fidelity or utility thresholds in any allowed attempt. The data is "
            "withheld; a larger epsilon, a larger table or another generator may help.")


def _header(card: DatasetCard) -> str:
    reasons = "".join(f"<li>{_e(r)}</li>" for r in card.reasons)
    p, fidelity = card.privacy, card.evaluation.fidelity or {}
    utility = card.evaluation.utility
    cards = "".join(f'<div class="card"><div class="v">{v}</div><div class="l">{_e(label)}'
                    "</div></div>" for v, label in (
                        (_fig(p.release_epsilon, "privacy.release_epsilon"),
                         "ε spent by this release (PLD)"),
                        (_fig(p.release_delta, "privacy.release_delta", "{:.2g}"), "δ"),
                        (f"{len(card.attempts)} / "
                         f"{_fig(card.policy.max_attempts, 'policy.max_attempts', '{}')}",
                         "attempts used / allowed"),
                        (_e(card.audit.verdict or "n/a"), "audit verdict"),
                        (_fig(fidelity.get("tvd_2way"), "evaluation.fidelity.tvd_2way"),
                         "2-way TVD (0 = identical)"),
                        (_fig(None if utility is None else utility.ratio,
                              "evaluation.utility.ratio"), "utility TSTR / TRTR")))
    return (f"<h1>Synthetic data release: {_e(card.dataset)} "
            f'<span class="decision {_e(card.decision)}" data-key="decision" '
            f'data-value="{_e(repr(card.decision))}">{_e(card.decision.upper())}</span></h1>'
            f'<p class="meta">Release <code>{_e(card.release_id)}</code> · {_e(card.created)} '
            f'· generator <b>{_e(card.generator.name)}</b> · dpsynth '
            f'{_e(card.generator.dpsynth_version)}</p>'
            f'<p class="headline">{_e(_headline(card))}</p><ul>{reasons}</ul>'
            f'<div class="cards">{cards}</div>'
            '<div class="internal"><b>For the data custodian.</b> This page shows statistics of '
            "the private data that ε does not cover (real marginals and associations, attack "
            "success rates). Publish the synthetic data and <code>dataset_card.yaml</code>; "
            "share this report only with people allowed to see aggregates of the private "
            "data.</div>")


def _result(passed: bool | None) -> str:
    if passed is None:
        return '<span class="skip">not checked</span>'
    return '<span class="pass">pass</span>' if passed else '<span class="fail">FAIL</span>'


def _checks(card: DatasetCard) -> str:
    rows = "".join(
        f"<tr><td>{_e(c.area)}</td><td><code>{_e(c.name)}</code></td><td class=n>"
        f"{_fig(c.value, f'checks.{i}.value', '{:+.4f}' if c.area == 'privacy' else '{:.4f}')}"
        f"</td><td>{_e(c.rule)}</td><td>{_result(c.passed)}</td></tr>"
        for i, c in enumerate(card.checks))
    return ("<h2>1. Why: the policy's checks</h2><p class=meta>Each attack's value is the lower "
            "end of the confidence interval of its risk, (attack success − control success) / "
            "(1 − control success): how much better the attack does on training records than "
            "on holdout records it never saw.</p><table><tr><th>area</th><th>check</th>"
            f"<th>value</th><th>rule</th><th>result</th></tr>{rows}</table>")


def _budget(card: DatasetCard) -> str:
    p = card.privacy
    cap = p.dataset_cap.epsilon
    bar = budget_bar(cap, p.dataset_epsilon_before, p.dataset_epsilon_after)
    items = [(f"attempt {a.number}: {a.outcome}", a.epsilon or 0.0) for a in card.attempts]
    items.append(("whole release (composed)", p.release_epsilon))
    return (
        "<h2>2. Privacy budget</h2>"
        f"<p>Each attempt was budgeted ε = "
        f"{_fig(p.epsilon_per_attempt, 'privacy.epsilon_per_attempt', '{:g}')} "
        f"(δ = {_fig(p.delta_per_attempt, 'privacy.delta_per_attempt', '{:.2g}')}); the "
        f"ledger composed the release's {_fig(p.n_spends, 'privacy.n_spends', '{}')} "
        f"spend{'' if p.n_spends == 1 else 's'} "
        f"to ε = {_fig(p.release_epsilon, 'privacy.release_epsilon')} "
        f"({_e(p.accountant)}; Rényi DP would say "
        f"{_fig(p.release_rdp_epsilon, 'privacy.release_rdp_epsilon')}). The dataset has now "
        f"spent {_fig(p.dataset_epsilon_after, 'privacy.dataset_epsilon_after')} of its cap "
        f"{_fig(cap, 'privacy.dataset_cap.epsilon', '{:g}')}; "
        f"{_fig(p.dataset_remaining, 'privacy.dataset_remaining')} is "
        f"left. Privacy unit: {_e(p.privacy_unit)}. Randomness: "
        f"{_e(p.randomness)}.</p>"
        f"<figure>{bar}</figure><figure>{purpose_chart(items, cap)}</figure>")


def _rate(rate: Mapping[str, Any], key: str, pct: bool = True) -> str:
    fmt = "{:.1%}" if pct else "{:+.3f}"
    lo, hi = rate["ci"]
    return (f"{_fig(rate['value'], key + '.value', fmt)} [{_fig(lo, key + '.ci.0', fmt)}, "
            f"{_fig(hi, key + '.ci.1', fmt)}]")


def _attack_rows(audit: AuditSection) -> str:
    rows = []
    for i, a in enumerate(audit.attacks):
        key = f"audit.attacks.{i}"
        rows.append(
            f"<tr><td><code>{_e(a.attack)}</code><br><span class=meta>{_e(a.threat_model)}"
            f"</span></td><td class=n>{_fig(a.n_targets, key + '.n_targets', '{}')}</td>"
            f"<td class=n>{_rate(a.success, key + '.success')}</td>"
            f"<td class=n>{_rate(a.control, key + '.control')}</td>"
            f"<td class=n>{_rate(a.baseline, key + '.baseline')}</td>"
            f"<td class=n>{_rate(a.risk, key + '.risk', pct=False)}</td>"
            f"<td>{_result(a.verdict != 'leak')}</td></tr>")
    return "".join(rows)


def _audit(audit: AuditSection, figures: Figures) -> str:
    charts = "".join(f"<div>{roc_svg(roc, label)}</div>" for label, roc in figures.roc)
    text = _text_audit(audit)
    if not audit.attacks and not text:
        return "<h2>3. Attack audit</h2><p>No attempt was audited.</p>"
    if not audit.attacks:
        return f"<h2>3. Attack audit: {_e(audit.verdict)}</h2>{text}"
    return (
        f"<h2>3. Attack audit: {_e(audit.verdict)}</h2>"
        f"<p>Each attack was run on training records and, identically, on holdout records the "
        f"generator never saw ({_fig(audit.n_holdout, 'audit.n_holdout', '{}')} controls). "
        f"Intervals are {_fig(audit.confidence, 'audit.confidence', '{:.0%}')} confidence "
        f"intervals; an attack fails the release when the lower end of its risk interval is "
        f"above {_fig(audit.threshold, 'audit.threshold', '{:g}')}.</p><table><tr>"
        "<th>attack</th><th>targets</th><th>success on training rows</th><th>success on "
        "holdout rows</th><th>naive baseline</th><th>risk [CI]</th><th>result</th></tr>"
        + _attack_rows(audit) + "</table>"
        + (f"<h3>ROC curves of the membership attacks</h3><p class=meta>An attack that cannot "
           f"tell members from non-members follows the dashed diagonal (AUC 0.5).</p>"
           f"<div class=grid>{charts}</div>" if charts else "") + text)


_MEASURES = (("exact", "exact copies"), ("long_copy", "long shared substring"),
             ("near_verbatim", "near-verbatim copies"))


def _text_audit(audit: AuditSection) -> str:
    rows = []
    for name, found in (audit.text or {}).items():
        base = f"audit.text.{name}"
        for measure, label in _MEASURES:
            copy = found.get("reproduction", {}).get(measure, {})
            key = f"{base}.reproduction.{measure}"
            rows.append(f"<tr><td>{_e(name)}</td><td>{label}</td>"
                        f"<td class=n>{_fig(copy.get('train'), key + '.train', PCT)}</td>"
                        f"<td class=n>{_fig(copy.get('control'), key + '.control', PCT)}</td>"
                        "</tr>")
        pii = found.get("pii", {})
        rows.append(f"<tr><td>{_e(name)}</td><td>PII of the text reproduced</td>"
                    f"<td class=n>{_fig(pii.get('rate'), base + '.pii.rate', PCT)}</td>"
                    f"<td class=n>{_fig(pii.get('control_rate'), base + '.pii.control_rate', PCT)}"
                    "</td></tr>")
    if not rows:
        return ""
    return ("<h3>Copies of the private text</h3><p>Share of synthetic records that copy a "
            "training record, against the same share for holdout records the model never saw "
            "(text everybody writes is copied from both alike).</p><table><tr><th>column</th>"
            "<th>measure</th><th>training text</th><th>holdout text</th></tr>"
            + "".join(rows) + "</table>")


def _fidelity(evaluation: EvaluationSection, figures: Figures) -> str:
    fidelity = evaluation.fidelity
    if fidelity is None:
        return "<h2>4. Fidelity</h2><p>Not evaluated.</p>"
    charts = "".join(marginal_chart(m.column, m.labels, m.real, m.synthetic, m.tvd)
                     for m in figures.marginals)
    heat = ""
    if len(figures.association_columns) >= 2:
        svg = association_heatmap(figures.association_columns, figures.association_real,
                                  figures.association_synthetic)
        heat = ("<h3>Association difference</h3><p class=meta>How much the synthetic data "
                "changes the strength of each pairwise relationship; red cells are "
                f"relationships it distorts.</p><figure>{svg}</figure>")
    ways = [f"{n}-way {_fig(fidelity[f'tvd_{n}way'], f'evaluation.fidelity.tvd_{n}way')}"
            for n in (1, 2, 3) if fidelity.get(f"tvd_{n}way") is not None]
    association = _fig(fidelity.get("association_difference"),
                       "evaluation.fidelity.association_difference")
    return (
        "<h2>4. Fidelity: do the synthetic rows look like the real ones?</h2>"
        f"<p>Average total-variation distance between real (training) and synthetic "
        f"marginals, on the schema's domain: {', '.join(ways)} (0 = identical, 1 = "
        f"disjoint). Mean change in pairwise association (Cramér's V): {association}.</p>"
        f"<h3>Real versus synthetic marginals</h3>{legend()}<div class=grid>{charts}</div>"
        + heat)


def _utility(evaluation: EvaluationSection) -> str:
    u = evaluation.utility
    if u is None:
        return ("<h2>5. Utility</h2><p>Not evaluated: no target column was given "
                "(<code>--target</code>).</p>")
    return (
        "<h2>5. Utility: can the synthetic data train a model?</h2>"
        f"<p>A gradient-boosted classifier predicting <code>{_e(u.target)}</code> = "
        f"{_e(u.positive)}, tested on the holdout: trained on the synthetic data it reaches "
        f"ROC-AUC {_fig(u.tstr_auc, 'evaluation.utility.tstr_auc')} (TSTR), trained on the "
        f"real training rows {_fig(u.trtr_auc, 'evaluation.utility.trtr_auc')} (TRTR); "
        f"ratio {_fig(u.ratio, 'evaluation.utility.ratio')}.</p>")


def _generator_audit(card: DatasetCard) -> str:
    """The white-box audit of the generator's mechanism, when one ran."""
    audit = card.generator_audit
    if audit is None:
        return ""
    lo, hi = audit.epsilon_ci
    verdict = ("<b>violated</b>: the mechanism leaks more than it claims"
               if audit.violated else "within the claimed ε")
    return (f"<h3>White-box audit of the generator</h3><p>{_e(audit.synthesizer)} at claimed "
            f"ε = {audit.claimed_epsilon:g} (δ = {audit.delta:g}): ε ≥ "
            f"{_fig(audit.epsilon_lower, 'generator_audit.epsilon_lower')} at "
            f"{100 * audit.confidence:g}% confidence (GDP-fit interval [{lo:.3f}, {hi:.3f}]), "
            f"{verdict}. Method: {_e(audit.method)}; {audit.n_fits} fits on each of two "
            f"made-up neighbouring tables, {audit.cpu_seconds:.1f} CPU s, no private data. "
            f"Power: {_e(audit.power)}.</p>")


def _evidence(card: DatasetCard) -> str:
    from dpsynth.release.report_evidence import evidence_html

    return evidence_html(card)


def _attempts(card: DatasetCard) -> str:
    rows = []
    for i, a in enumerate(card.attempts):
        spends = "<br>".join(f"{_e(s.purpose)}: {_e(s.mechanism)}" for s in a.spends)
        rows.append(f"<tr><td class=n>{a.number}</td><td><span class='decision {_e(a.outcome)}' "
                    f"style='font-size:.8rem'>{_e(a.outcome)}</span></td>"
                    f"<td class=n>{_fig(a.epsilon, f'attempts.{i}.epsilon')}</td><td>{spends}</td>"
                    f"<td>{'<br>'.join(_e(r) for r in a.reasons)}</td></tr>")
    return ("<h2>6. Attempts</h2><p class=meta>Every attempt is a new fit that spends its own "
            "budget through the ledger; none is retried silently.</p><table><tr><th>#</th>"
            "<th>outcome</th><th>ε (PLD)</th><th>spends</th><th>reasons</th></tr>"
            + "".join(rows) + "</table>")


def _coverage(card: DatasetCard) -> str:
    public = card.source.public_rows
    items = [*card.privacy.not_covered_by_dp, card.source.holdout_use, *card.notes,
             (f"{public['rows']} rows declared public by the data holder were read by the "
              "generator without privacy; nothing is guaranteed about them") if public else ""]
    lis = "".join(f"<li>{_e(i)}</li>" for i in items if i)
    return ("<h2>7. What the guarantee covers</h2><p>The synthetic data (and the released model) "
            "are (ε, δ)-differentially private with respect to the private table: whatever "
            "anyone learns from them, their odds of telling whether one person was in the "
            f"table change by at most a factor e^ε.</p><ul>{lis}</ul>")


def _provenance(card: DatasetCard) -> str:
    syn, src, rep = card.synthetic, card.source, card.reproduce
    file_rows = "".join(f"<tr><td><code>{_e(v.path)}</code></td><td><code>"
                        f"{_e(v.sha256)}</code></td></tr>" for v in syn.files.values())
    withheld = syn.withheld_reason if syn.withheld else ""
    cols = "".join(f"<tr><td>{_e(c['name'])}</td><td>{_e(c['kind'])}</td>"
                   f"<td>{_e(_domain(c))}</td></tr>" for c in card.schema.get("columns", []))
    ptext = ", ".join(f"{k}={v!r}" for k, v in (card.generator.params or {}).items())
    chose = ", ".join(f"{k}={v!r}" for k, v in card.generator.automatic().items())
    return (
        "<h2>8. Provenance and reproduction</h2>"
        f"<p><b>Source</b> {_e(src.dataset)}: {_fig(src.n_rows, 'source.n_rows', '{}')} rows "
        f"({_fig(src.n_train, 'source.n_train', '{}')} for training, "
        f"{_fig(src.n_holdout, 'source.n_holdout', '{}')} held out); "
        f"fingerprint <code>{_e(src.fingerprint)}</code>."
        + (f" The generator also read {src.public_rows['rows']} rows the data holder declared "
           f"public (fingerprint <code>{_e(src.public_rows['fingerprint'])}</code>), without "
           "privacy; the guarantee covers the private table alone." if src.public_rows else "")
        + "</p>"
        f"<p><b>Generator</b> {_e(card.generator.name)} ({_e(ptext)})."
        + (f" The fit chose its automatic settings as: {_e(chose)}." if chose else "")
        + (f" Its defaults were chosen on {_e(card.generator.defaults_tuned_on)}."
           if card.generator.defaults_tuned_on else "") + "</p>"
        f"<p><b>Synthetic rows</b> {_fig(syn.n_rows, 'synthetic.n_rows', '{}')}, synthetic "
        f"share {_fig(syn.synthetic_share, 'synthetic.synthetic_share', '{:.0%}')}. "
        f"{_e(withheld or '')}</p>"
        + (f"<table><tr><th>file</th><th>sha256</th></tr>{file_rows}</table>"
           if file_rows else "")
        + _made_by(card)
        + f"<h3>Schema</h3><table><tr><th>column</th><th>kind</th><th>domain</th></tr>{cols}"
        "</table><h3>Reproduce</h3><pre>" + _e(rep.sample or "") + "\n\n"
        + _e(rep.rerun or "") + "</pre>")


def _made_by(card: DatasetCard) -> str:
    prov = card.provenance
    if prov is None:
        return ""
    deps = ", ".join(f"{k} {v}" for k, v in prov.dependencies.items())
    declared = "".join(f"<p><b>{label}</b> {_e(value)} (as declared by the data custodian)"
                       "</p>" for label, value in (("Licence", prov.source_licence),
                                                   ("Description", prov.source_description))
                       if value)
    return (f"<h3>Made by</h3><p>dpsynth {_e(prov.dpsynth_version)} on Python "
            f"{_e(prov.python)}; {_e(deps)}.</p><p><b>Randomness</b> {_e(prov.randomness)}"
            f"</p>{declared}<pre>{_e(prov.invocation)}</pre><p class=meta>Every other file "
            "of the bundle is listed with its sha256 in the card's <code>provenance.files"
            "</code>; <code>dpsynth card verify</code> checks them and the ledger.</p>")


def _domain(column: Mapping[str, Any]) -> str:
    if column.get("categories") is not None:
        cats = [str(c) for c in column["categories"]]
        return ", ".join(cats[:8]) + (f" … ({len(cats)} values)" if len(cats) > 8 else "")
    if column.get("lower") is not None:
        return f"[{column['lower']}, {column['upper']}]"
    return ""


__all__ = ["render_report", "save_report"]
