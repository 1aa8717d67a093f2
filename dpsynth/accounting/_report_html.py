"""HTML rendering of the compliance report: one self-contained page (inline CSS and SVG)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from dpsynth._util.html import BASE_CSS as _CSS
from dpsynth._util.svg import STATUS_COLOURS, cumulative_chart, purpose_chart


def _f(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one HTML document; no external resource is referenced."""
    integrity = report["integrity"]
    if integrity["verified"]:
        check = (f'<span class="ok">✔ verified</span>: {integrity["entries"]} entries, hash '
                 f'chain intact. Anchor <code>{escape(integrity["anchor"])}</code> (keep it to '
                 'detect a rewritten chain later).')
    else:
        items = "".join(f"<li>{escape(p)}</li>" for p in integrity["problems"])
        check = f'<span class="bad">✘ integrity check FAILED</span><ul>{items}</ul>'
    body = [
        f"<h1>{escape(report['title'])}</h1>",
        f'<p class="meta">Generated {escape(report["generated_at"])} by dpsynth '
        f'{escape(report["dpsynth_version"])} from the ledger '
        f'<code>{escape(report["ledger"])}</code>.</p>',
        f"<p>Ledger integrity: {check}</p>",
        f'<p class="meta"><b>Accountant:</b> {escape(report["accountant"]["name"])}. '
        f'{escape(report["accountant"]["why"])}</p>',
        f'<p class="meta"><b>Cap enforced by:</b> {escape(report["cap_rule"]["name"])}. '
        f'{escape(report["cap_rule"]["why"])}</p>',
    ]
    if not report["datasets"]:
        body.append("<p>No dataset is registered in this ledger.</p>")
    body.extend(_dataset_html(ds) for ds in report["datasets"])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(report['title'])}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


def _dataset_html(ds: dict[str, Any]) -> str:
    st, cap = ds["status"], ds["cap"]
    used = min(1.0, st["epsilon"] / cap["epsilon"]) if cap["epsilon"] else 1.0
    dc = ds["delta_check"]
    delta_cls = "ok" if dc["ok"] else "bad"
    cards = "".join(
        f'<div class="card"><div class="v">{escape(v)}</div><div class="l">{escape(label)}'
        "</div></div>" for v, label in (
            (_f(cap["epsilon"]), f"cap ε (δ = {_f(cap['delta'], 3)})"),
            (_f(st["epsilon"]), "spent ε (PLD)"),
            (_f(st["filter_epsilon"]), "spent ε (adaptive filter)"),
            (_f(st["remaining"]), "remaining ε"),
            (_f(st["rdp_epsilon"]), "RDP ε (comparison)"),
            (_f(st["plain_sum_epsilon"]), "plain sum ε (comparison)"),
            (str(st["n_spends"]), f"runs ({st['n_interrupted']} interrupted, "
                                  f"{st['n_aborted']} aborted)"),
        ))
    explain = "".join(f"<p>{escape(p)}</p>" for p in ds["explanation"])
    return (
        f"<h2>Dataset {escape(ds['name'])}</h2>"
        f'<div class="cards">{cards}</div>'
        f'<div class="bar" title="{used:.0%} of the cap used"><div style="width:{used * 100:.1f}%">'
        f"</div></div>"
        f'<div class="explain">{explain}</div>'
        f"<p><b>Privacy unit:</b> {escape(ds['privacy_unit'])}. <b>δ vs 1/n:</b> "
        f'<span class="{delta_cls}">δ = {_f(dc["delta"], 3)}, 1/n = {_f(dc["one_over_n"], 3)} '
        f"(δ is {_f(dc['ratio'], 2)} × 1/n)</span>. <b>Rows:</b> {ds['n_rows']}. "
        f"<b>Registered</b> {escape(ds['registered_at'])} by {escape(ds['registered_by'])}. "
        f"<b>Fingerprint</b> <code>{escape(ds['fingerprint'])}</code>"
        f"{_versions_html(ds)}</p>"
        f"{_charts_html(ds)}{_purpose_table(ds)}{_spends_table(ds)}"
    )


def _versions_html(ds: dict[str, Any]) -> str:
    if len(ds["versions"]) < 2:
        return ""
    return f" ({len(ds['versions'])} data versions share this cap)"


def _charts_html(ds: dict[str, Any]) -> str:
    points = [(s, s["cumulative_epsilon"]) for s in ds["spends"]
              if s["cumulative_epsilon"] is not None]
    if not points:
        return "<p>Nothing has been spent on this dataset yet.</p>"
    times = [s["reserved_at"] for s, _ in points]
    curve = cumulative_chart(times, [e for _, e in points], [s["status"] for s, _ in points],
                             ds["cap"]["epsilon"])
    bars = purpose_chart([(p["purpose"], p["epsilon"]) for p in ds["by_purpose"]],
                         ds["cap"]["epsilon"])
    return f"<figure>{curve}</figure><figure>{bars}</figure>"


def _purpose_table(ds: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{escape(p['purpose'])}</td><td class=n>{p['count']}</td>"
        f"<td class=n>{_f(p['epsilon'])}</td><td>{escape(', '.join(p['mechanisms']))}</td></tr>"
        for p in ds["by_purpose"])
    return ("<h3>By purpose</h3><p class=meta>ε of each purpose's runs composed alone; they do "
            "not add up to the total, because composition is tighter than a sum.</p>"
            "<table><tr><th>purpose</th><th>runs</th><th>ε</th><th>mechanisms</th></tr>"
            f"{rows}</table>")


def _spends_table(ds: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td class=n>{s['seq']}</td><td>{escape(s['reserved_at'][:19])}</td>"
        f"<td>{escape(s['purpose'] or '')}</td><td>{escape(s['description'])}</td>"
        f"<td class=n>{_f(s['epsilon_alone'])}</td><td class=n>{_f(s['rdp_epsilon_alone'])}</td>"
        f"<td class=n>{_f(s['cumulative_epsilon'])}</td>"
        f'<td style="color:{STATUS_COLOURS.get(s["status"], "#4a5568")}">'
        f"{escape(s['status'])}{_error(s)}</td><td>{escape(s['actor'])}</td>"
        f"<td>{escape(s['release_id'] or '')}</td><td>{escape(s['dpsynth_version'])}</td></tr>"
        for s in ds["spends"])
    return ("<h3>Every spend</h3><table><tr><th>#</th><th>reserved (UTC)</th><th>purpose</th>"
            "<th>mechanism</th><th>ε alone (PLD)</th><th>ε alone (RDP)</th><th>cumulative ε</th>"
            "<th>status</th><th>actor</th><th>release</th><th>dpsynth</th></tr>"
            f"{rows}</table>")


def _error(spend: dict[str, Any]) -> str:
    return f"<br><small>{escape(spend['error'])}</small>" if spend.get("error") else ""
