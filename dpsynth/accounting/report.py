"""The compliance report: how much privacy budget each dataset has spent, on what, by whom.

:func:`build_report` reads a :class:`~dpsynth.accounting.ledger.Ledger` into one plain,
JSON-ready dictionary; :func:`render` turns it into JSON, Markdown or a self-contained HTML page
(inline CSS and SVG charts, nothing fetched). Per dataset it gives the cap, the epsilon spent
(PLD; RDP and the plain sum beside it), what is left, every spend with its status, epsilon
over time, a breakdown by purpose, the privacy unit, delta against ``1/n``, and a plain-language
explanation of what the epsilon means for a person in the data.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dpsynth._util.jsonable import json_default
from dpsynth._version import __version__
from dpsynth.accounting._ledger_math import PrefixComposer
from dpsynth.accounting.analysis import ACCOUNTANT
from dpsynth.accounting.ledger import Ledger, SpendEntry, Status
from dpsynth.accounting.rdp_filter import FILTER_NAME
from dpsynth.errors import param_error

FORMATS = ("html", "json", "md")
#: At most this many points on the cumulative curve (each one is a PLD composition).
MAX_CURVE_POINTS = 120

ACCOUNTANT_WHY = (
    "The total ε composes every recorded mechanism with the privacy loss distribution (PLD) "
    "accountant of Google's dp-accounting library (Koskela, Jälkö and Honkela, AISTATS 2020; "
    "Doroshenko et al., PETS 2022) with pessimistic discretisation: the figure is a guaranteed "
    "upper bound on the true ε and is tight, within about 10⁻⁴ per mechanism. The Rényi-DP "
    "accountant (Mironov, CSF 2017) is shown beside it: also a valid upper bound, but looser, "
    "so it is for comparison only. The plain sum (basic composition: each run's ε added up, δ "
    "split between the runs) is the loosest figure and shows what tight composition saves. The "
    "Gaussian-DP (GDP) approximation is never used, because it can under-report ε."
)

FILTER_WHY = (
    "PLD is exact inside one release, whose plan is fixed before the data is read. Across "
    "releases the next one is chosen after seeing the earlier ones (fully adaptive "
    "composition), where a PLD total is not a valid guarantee in general (Whitehouse et al., "
    "ICML 2023). The cap is therefore enforced by a Rényi-DP privacy filter, valid under full "
    "adaptivity (Feldman and Zrnic, NeurIPS 2021; Lécuyer 2021), over a fixed set of orders "
    "with a union bound over them; its figure is shown beside the PLD total, and the cap must "
    "hold by both."
)


def build_report(ledger: Ledger, datasets: Sequence[str] | None = None) -> dict[str, Any]:
    """The report as a JSON-ready dict (every dataset in the ledger when ``datasets`` is None)."""
    problems = ledger.verify()
    trusted = not problems  # a corrupted ledger is still shown, marked as such
    names = list(datasets) if datasets else [d.name for d in ledger.datasets(verify=trusted)]
    return {
        "title": "dpsynth privacy budget report",
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "dpsynth_version": __version__,
        "ledger": ledger.display_location,
        "integrity": {"verified": not problems, "problems": problems,
                      "anchor": ledger.anchor(), "entries": ledger.head()[0]},
        "accountant": {"name": ACCOUNTANT, "why": ACCOUNTANT_WHY},
        "cap_rule": {"name": FILTER_NAME, "why": FILTER_WHY},
        "datasets": [_dataset_section(ledger, name, trusted) for name in names],
    }


def _dataset_section(ledger: Ledger, name: str, trusted: bool = True) -> dict[str, Any]:
    status = ledger.status(name, verify=trusted)
    spends = ledger.spends(name, verify=trusted)
    record, cap = status.dataset, status.cap
    rows = [s.to_dict() for s in spends]
    for row, eps in zip(rows, _curve(spends, cap.delta), strict=True):
        row["cumulative_epsilon"] = eps
    one_over_n = 1.0 / record.n_rows
    return {
        **record.to_dict(),
        "status": status.to_dict(),
        "privacy_unit_text": unit_text(record.privacy_unit),
        "delta_check": {"delta": cap.delta, "one_over_n": one_over_n,
                        "ratio": cap.delta / one_over_n, "ok": cap.delta < one_over_n},
        "spends": rows,
        "by_purpose": _by_purpose(spends, cap.delta),
        "explanation": explain(status),
    }


def _curve(spends: Sequence[SpendEntry], delta: float) -> list[float | None]:
    """Composed epsilon after each spend (thinned to MAX_CURVE_POINTS compositions)."""
    every = max(1, math.ceil(len(spends) / MAX_CURVE_POINTS))
    values = PrefixComposer().cumulative([s.event for s in spends], delta, every=every)
    out: list[float | None] = [None] * len(spends)
    marks = [i for i in range(len(spends)) if (i + 1) % every == 0 or i + 1 == len(spends)]
    for i, value in zip(marks, values, strict=True):
        out[i] = value
    return out


def _by_purpose(spends: Sequence[SpendEntry], delta: float) -> list[dict[str, Any]]:
    groups: dict[str, list[SpendEntry]] = {}
    for s in spends:
        groups.setdefault(s.purpose, []).append(s)
    composer = PrefixComposer(maxsize=1)
    out = [{"purpose": p, "count": len(g),
            "epsilon": composer.epsilon([s.event for s in g], delta),
            "mechanisms": sorted({s.reservation.mechanism or "" for s in g})}
           for p, g in groups.items()]
    return sorted(out, key=lambda d: -d["epsilon"])


def unit_text(unit: str) -> str:
    """What the privacy unit protects, in plain words."""
    if unit == "row":
        return ("The unit of privacy is one row: the guarantee covers each row of the table. "
                "A person who appears in k rows is protected as a group, with an ε up to about "
                "k times larger.")
    key = unit.partition(":")[2]
    who = f"all rows that share the same {key!r}" if key else "all rows of one user"
    return (f"The unit of privacy is one user ({who}): the guarantee covers everything a "
            "person contributed, however many rows that is.")


def explain(status: Status) -> list[str]:
    """Plain-language paragraphs for someone who is not a privacy specialist."""
    cap, eps = status.cap, status.epsilon
    factor = math.exp(eps)
    sure = factor / (1.0 + factor)
    out = [
        f"So far {status.n_spends} mechanism run(s) have used ε = {eps:.3g} of this dataset's "
        f"hard cap of ε = {cap.epsilon:.3g} (at δ = {cap.delta:.3g}); ε = {status.remaining:.3g} "
        "is left. A run that would cross the cap is refused before it touches the data.",
        f"What this means for a person in the data: everything released from this dataset so "
        f"far, taken together, is almost as likely whether or not that person's data was used. "
        f"No outcome becomes more than e^ε ≈ {factor:.3g} times more (or less) likely, except "
        f"with a probability of at most δ = {cap.delta:.3g}. So an attacker who sees all of it, "
        f"whatever else they know, can grow their odds of guessing whether a given person is "
        f"in the data by at most a factor of e^ε ≈ {factor:.3g}: someone who started at "
        f"50:50 ends up at most {sure:.0%} sure. Smaller ε is stronger protection; ε around 1 or "
        "below is usually considered strong, and the factor e^ε grows fast (about 20 at ε = 3 "
        "and 22,000 at ε = 10).",
        unit_text(status.dataset.privacy_unit),
        f"δ = {cap.delta:.3g} is {cap.delta * status.dataset.n_rows:.2g} × 1/n for "
        f"n = {status.dataset.n_rows} rows. δ must be far below 1/n: otherwise a mechanism that "
        "publishes a few records in full could still claim the guarantee.",
    ]
    failed = status.n_aborted + status.n_interrupted
    if failed:
        out.append(f"{failed} run(s) failed or were interrupted. They are counted in full: "
                   "noise may already have been drawn and results seen.")
    out.append(f"The cap is enforced by a Rényi-DP filter, which certifies ε = "
               f"{_fmt(status.filter_epsilon)} for everything so far; PLD (ε = {eps:.3g}) "
               "is exact only if no release was chosen after seeing an earlier one, while the "
               "filter stays valid when each release is chosen adaptively, at the price of a "
               "somewhat larger figure. The cap must hold by both.")
    out.append("How the total is computed: PLD accountant (tight); RDP "
               f"({_fmt(status.rdp_epsilon)}) and the plain sum "
               f"({_fmt(status.plain_sum_epsilon)}) are shown beside it for comparison.")
    if math.isnan(status.rdp_epsilon):
        out[-1] += (" RDP is n/a here: it cannot express a mechanism proven (ε, δ)-DP "
                    "directly, such as the thresholded histogram that releases category names.")
    return out


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}"


# -- rendering ------------------------------------------------------------------------------
def render(report: dict[str, Any], fmt: str) -> str:
    """The report as ``json``, ``md`` (Markdown) or ``html`` (self-contained) text."""
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False, default=json_default) + "\n"
    if fmt == "md":
        return render_markdown(report)
    if fmt == "html":
        from dpsynth.accounting._report_html import render_html

        return render_html(report)
    raise param_error("format", f"one of {list(FORMATS)}", fmt, "render")


def write_report(ledger: Ledger, path: str | Path, fmt: str | None = None,
                 datasets: Sequence[str] | None = None) -> Path:
    """Build and write the report; ``fmt`` defaults to the file's suffix."""
    path = Path(path)
    fmt = fmt or {".htm": "html", ".markdown": "md"}.get(path.suffix, path.suffix.lstrip("."))
    if fmt not in FORMATS:
        raise param_error("format", f"one of {list(FORMATS)}", fmt, "write_report")
    text = render(build_report(ledger, datasets), fmt)
    path.write_text(text, encoding="utf-8")
    return path


def render_markdown(report: dict[str, Any]) -> str:
    """Markdown: summary, explanation and tables (the charts are in the HTML report)."""
    integrity = report["integrity"]
    lines = [f"# {report['title']}", "",
             f"Generated {report['generated_at']} by dpsynth {report['dpsynth_version']} from "
             f"`{report['ledger']}`.", "",
             "Ledger integrity: " + ("verified" if integrity["verified"] else
                                     "**FAILED** – " + "; ".join(integrity["problems"]))
             + f" ({integrity['entries']} entries, anchor `{integrity['anchor']}`).", "",
             f"Accountant: {report['accountant']['name']}. {report['accountant']['why']}", "",
             f"Cap enforced by: {report['cap_rule']['name']}. {report['cap_rule']['why']}", ""]
    for ds in report["datasets"]:
        lines.extend(_markdown_dataset(ds))
    return "\n".join(lines) + "\n"


def _markdown_dataset(ds: dict[str, Any]) -> list[str]:
    st, cap = ds["status"], ds["cap"]
    out = [f"## Dataset `{ds['name']}`", "",
           "| cap ε | δ | spent ε (PLD) | remaining ε | RDP ε | plain sum ε | runs |",
           "|---|---|---|---|---|---|---|",
           f"| {cap['epsilon']:.4g} | {cap['delta']:.3g} | {st['epsilon']:.4g} | "
           f"{st['remaining']:.4g} | {_fmt(st['rdp_epsilon'])} | "
           f"{_fmt(st['plain_sum_epsilon'])} | {st['n_spends']} ({st['n_committed']} committed, "
           f"{st['n_aborted']} aborted, {st['n_interrupted']} interrupted) |", "",
           f"Fingerprint `{ds['fingerprint']}`, {ds['n_rows']} rows, registered "
           f"{ds['registered_at']} by {ds['registered_by']}. Privacy unit: "
           f"{ds['privacy_unit']}. δ vs 1/n: {ds['delta_check']['ratio']:.2g} × 1/n.", ""]
    out.extend(p + "\n" for p in ds["explanation"])
    out += ["### By purpose", "", "| purpose | runs | ε (composed alone) | mechanisms |",
            "|---|---|---|---|"]
    out += [f"| {_md(p['purpose'])} | {p['count']} | {p['epsilon']:.4g} | "
            f"{_md(', '.join(p['mechanisms']))} |" for p in ds["by_purpose"]]
    out += ["", "### Every spend", "",
            "| # | reserved (UTC) | purpose | mechanism | ε alone | cumulative ε | status | "
            "actor | release |", "|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {s['seq']} | {s['reserved_at']} | {_md(s['purpose'])} | "
            f"{_md(s['description'])} | {s['epsilon_alone']:.4g} | "
            f"{_fmt(s['cumulative_epsilon'])} | {s['status']} | {_md(s['actor'])} | "
            f"{_md(s['release_id'] or '')} |" for s in ds["spends"]]
    return out + [""]


def _md(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")
