"""The report's evidence section: the real-anchor ablation curve, the temporal holdout, the
tails the synthetic data misses and the schema's rules (rendered from the card's
``evidence``; every figure tagged with its card field like the rest of the report)."""

from __future__ import annotations

from dpsynth.release._svg import line_chart
from dpsynth.release.card import DatasetCard
from dpsynth.release.evidence import EvidenceSection
from dpsynth.release.report import PCT, _e, _fig


def evidence_html(card: DatasetCard) -> str:
    """Section 5b of the report; empty when the card has no evidence."""
    ev = card.evidence
    if ev is None:
        return ""
    return ("<h2>5b. Evidence against real data</h2><div class=internal>"
            f"{_e(ev.not_covered_by_dp)}</div>" + _ablation(ev) + _temporal(ev) + _tails(ev)
            + _rules(ev) + _review(ev) + f"<p class=meta>{_e(ev.rounds_warning)}</p>")


def _ablation(ev: EvidenceSection) -> str:
    a = ev.anchor_ablation
    if a is None:
        return ("<h3>Real-anchor ablation</h3><p>Not run: no target column was given "
                "(<code>--target</code>).</p>")
    mixes = [p for p in a.points if p.share is not None]
    svg = line_chart(
        f"{a.target}: ROC-AUC on {a.n_test} real test rows",
        [f"{p.share:.0%}" for p in mixes],
        {"anchor + synthetic": [p.auc for p in mixes]},
        bands={"anchor + synthetic": ([p.auc_min for p in mixes],
                                      [p.auc_max for p in mixes])},
        references={"synthetic alone": a.synthetic_only_auc, "anchor alone": a.anchor_auc},
        y_label="ROC-AUC")
    rows = "".join(f"<tr><td>{_e(p.label)}</td><td class=n>{p.n_real}</td><td class=n>"
                   f"{p.n_synthetic}</td><td class=n>"
                   f"{_fig(p.auc, f'evidence.anchor_ablation.points.{i}.auc')}</td></tr>"
                   for i, p in enumerate(a.points))
    return (f"<h3>Real-anchor ablation</h3><p>{_e(a.verdict)}. Best share of synthetic rows: "
            f"{_fig(a.best_share, 'evidence.anchor_ablation.best_share', '{:.0%}')}; gain over "
            f"the anchor alone {_fig(a.gain, 'evidence.anchor_ablation.gain', '{:+.3f}')}."
            f"</p><p class=meta>Tested on {_e(a.tested_on)}. The x axis is the number of "
            "synthetic rows added, as a share of the anchor's size; whiskers span the "
            f"repeats.</p><figure>{svg}</figure><table><tr><th>trained on</th><th>real rows"
            f"</th><th>synthetic rows</th><th>ROC-AUC</th></tr>{rows}</table>")


def _temporal(ev: EvidenceSection) -> str:
    t = ev.temporal
    if t is None:
        return ""
    key = "evidence.temporal."
    return (
        f"<h3>Temporal holdout</h3><p>{_e(t.holdout_use)}</p><table><tr><th></th>"
        f"<th>latest period ({_e(t.latest_period)}, {t.n_latest} rows)</th><th>random holdout "
        f"({t.n_random} rows)</th></tr>"
        f"<tr><td>TSTR ROC-AUC</td><td class=n>{_fig(t.tstr_auc_latest, key + 'tstr_auc_latest')}"
        f"</td><td class=n>{_fig(t.tstr_auc_random, key + 'tstr_auc_random')}</td></tr>"
        f"<tr><td>TRTR ROC-AUC</td><td class=n>{_fig(t.trtr_auc_latest, key + 'trtr_auc_latest')}"
        f"</td><td class=n>{_fig(t.trtr_auc_random, key + 'trtr_auc_random')}</td></tr>"
        f"<tr><td>1-way TVD to the synthetic rows</td><td class=n>"
        f"{_fig(t.tvd_1way_latest, key + 'tvd_1way_latest')}</td><td class=n>"
        f"{_fig(t.tvd_1way_random, key + 'tvd_1way_random')}</td></tr></table>"
        f"<p>Regression of TSTR on the latest period: "
        f"{_fig(t.regression, key + 'regression', '{:+.3f}')}.</p>")


def _tails(ev: EvidenceSection) -> str:
    t = ev.tails
    if t is None:
        return ""
    rows = "".join(f"<tr><td>{_e(r['column'])}</td><td>{_e(r['values'])}</td><td class=n>"
                   f"{PCT.format(r['real_share'])}</td><td class=n>"
                   f"{PCT.format(r['synthetic_share'])}</td></tr>"
                   for r in t.under_represented)
    dropped = ", ".join(f"{r['column']} = {r['category']} ({r['real_rows']} rows)"
                        for r in t.dropped_rare_categories) or "none"
    return (f"<h3>Tails the synthetic data under-represents</h3><p>Rare categories (below "
            f"{t.rare_share:.0%} of the training rows) that no synthetic row has: "
            f"{_e(dropped)}; "
            f"{_fig(t.real_rows_in_dropped_rare, 'evidence.tails.real_rows_in_dropped_rare', '{}')}"
            f" real rows in all. {_e(t.note)}</p>"
            + (f"<table><tr><th>column</th><th>values</th><th>real share</th><th>synthetic "
               f"share</th></tr>{rows}</table>" if rows else "<p>No category or tail is "
               f"under-represented (below {t.under_ratio:g} of its real share).</p>"))


def _rules(ev: EvidenceSection) -> str:
    r = ev.rules
    if not r:
        return ""
    rows = "".join(f"<tr><td><code>{_e(x['rule'])}</code></td><td class=n>"
                   f"{_fig(x['synthetic_rate'], f'evidence.rules.checked.{i}.synthetic_rate', PCT)}"
                   f"</td><td class=n>"
                   f"{_fig(x['real_rate'], f'evidence.rules.checked.{i}.real_rate', PCT)}</td>"
                   "</tr>" for i, x in enumerate(r.get("checked", ())))
    return ("<h3>Public rules between columns</h3><p>Share of rows that break each rule the "
            "schema declares, in the synthetic data and in the real training rows.</p>"
            "<table><tr><th>rule</th><th>synthetic</th><th>real</th></tr>" + rows
            + "</table>")


def _review(ev: EvidenceSection) -> str:
    r = ev.review
    if not r:
        return ""
    lo, hi = r["ci"]
    return (f"<h3>Human review</h3><p>{r['n_reviewed']} released rows reviewed by a person; "
            f"{_fig(r['n_implausible'], 'evidence.review.n_implausible', '{}')} marked "
            f"implausible ({_fig(r['share'], 'evidence.review.share', PCT)}, "
            f"{100 * r['confidence']:g}% interval {lo:.1%} to {hi:.1%}).</p>")


__all__ = ["evidence_html"]
