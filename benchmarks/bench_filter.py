"""What the adaptive Rényi filter costs against non-adaptive PLD: releases admitted under a cap.

One command reproduces the table in ``docs/benchmarks.md`` (section "Adaptive cap: Rényi
filter vs PLD")::

    python benchmarks/bench_filter.py

Each history is a sequence of releases planned by dpsynth's own synthesizers on the wage
table's schema (3,000 rows, delta = 1e-6): every release is its whole plan of events. For each
cap, the releases are admitted in order while the cap holds, once by PLD composition of every
event so far (valid only if no release was chosen after seeing another) and once by the ledger's
rule (PLD *and*, from the second release on, the Rényi-DP filter, valid under fully adaptive
composition). Two kinds of cap:
the PLD epsilon of the whole history (PLD then admits every release by construction) and round
caps. Reads no data; takes a few seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dpsynth.accounting.analysis import pld_epsilon
from dpsynth.accounting.events import Event
from dpsynth.accounting.rdp_filter import filter_epsilon
from dpsynth.datasets import load_dataset
from dpsynth.synthesizers import create

DELTA = 1e-6
HISTORIES = {
    "ten AIM releases at ε=0.3": [("aim", 0.3)] * 10,
    "three DP-SGD (dpvae) fits at ε=1": [("dpvae", 1.0)] * 3,
    "mix: AIM 0.3, MST 1, DP-SGD 1, AIM 0.3 ×3, MST 0.5": [
        ("aim", 0.3), ("mst", 1.0), ("dpvae", 1.0), ("aim", 0.3), ("aim", 0.3), ("aim", 0.3),
        ("mst", 0.5)],
}
ROUND_CAPS = (1.0, 2.0, 3.0, 5.0)


def plan_events(name: str, epsilon: float) -> list[Event]:
    """The events of one release of ``name`` at ``epsilon`` on the wage schema."""
    rows, schema = load_dataset("wage")
    synth = create(name, epsilon=epsilon, delta=DELTA)
    return list(synth.plan_budget(schema, len(rows)).events)


def admitted(releases: list[list[Event]], cap: float, *, adaptive: bool) -> int:
    """How many releases, in order, fit under ``cap``."""
    events: list[Event] = []
    for count, release in enumerate(releases):
        trial = [*events, *release]
        figure = pld_epsilon(trial, DELTA)
        if adaptive and count > 0:  # the ledger admits the first release by PLD alone
            figure = max(figure, filter_epsilon(trial, DELTA))
        if figure > cap + 1e-9:
            return count
        events = trial
    return len(releases)


def run() -> list[dict[str, object]]:
    cache: dict[tuple[str, float], list[Event]] = {}
    out: list[dict[str, object]] = []
    for label, history in HISTORIES.items():
        releases = [cache.setdefault(r, plan_events(*r)) for r in history]
        whole = pld_epsilon([e for r in releases for e in r], DELTA)
        for cap in (round(whole, 4), *ROUND_CAPS):
            pld_n = admitted(releases, cap, adaptive=False)
            filt_n = admitted(releases, cap, adaptive=True)
            out.append({"history": label, "cap": cap, "pld": pld_n, "filter": filt_n,
                        "share": filt_n / pld_n if pld_n else None})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" /
                        "filter.json")
    args = parser.parse_args()
    rows = run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    print("| history | cap ε | PLD admits | filter admits | share |")
    print("|---|---|---|---|---|")
    for r in rows:
        share = "–" if r["share"] is None else f"{r['share']:.0%}"
        print(f"| {r['history']} | {r['cap']:g} | {r['pld']} | {r['filter']} | {share} |")
    pld_total = sum(int(r["pld"]) for r in rows)  # type: ignore[call-overload]
    filt_total = sum(int(r["filter"]) for r in rows)  # type: ignore[call-overload]
    print(f"\nAll caps together: the filter admits {filt_total} of the {pld_total} releases PLD "
          f"admits ({filt_total / pld_total:.0%}).")


if __name__ == "__main__":
    main()
