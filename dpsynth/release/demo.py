"""The demo release: the bundled ``wage`` table (3,000 CPS records) through the whole gate.

``dpsynth demo`` calls :func:`run_demo`. The demo keeps its own privacy ledger inside the
output directory and starts it afresh on every run (the table is public, so nothing real is
spent); a real release keeps one ledger per dataset for good.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dpsynth._util.progress import StageProgressFn
from dpsynth.accounting import Budget
from dpsynth.release.core import ReleaseResult, release

logger = logging.getLogger(__name__)

DEMO_DATASET = "wage-demo"
DEMO_TARGET = "health_ins"
DEMO_LEDGER = "ledger.sqlite"
#: The demo's cap: room for every attempt the default policy allows, and a later release.
DEMO_CAP = Budget(3.0, 1e-5)


def run_demo(out_dir: str | Path = "dpsynth-demo", epsilon: float = 1.0,
             seed: int | None = None, *, synthesizer: str | None = None,
             progress: StageProgressFn | None = None) -> ReleaseResult:
    """Release the bundled ``wage`` table into ``out_dir`` (bundle plus a demo ledger).

    The utility check predicts ``health_ins`` (whether the worker has health insurance);
    every other setting is the default release's.
    """
    from dpsynth.datasets import load_dataset

    out = Path(out_dir)
    for suffix in ("", "-wal", "-shm", "-journal"):
        stale = out / f"{DEMO_LEDGER}{suffix}"
        if stale.exists():
            logger.info("starting the demo ledger afresh: removing %s", stale)
            stale.unlink()
    rows, schema = load_dataset("wage")
    cap = Budget(max(DEMO_CAP.epsilon, 3 * epsilon), DEMO_CAP.delta)
    return release(rows, schema, epsilon=epsilon, dataset=DEMO_DATASET, out=out,
                   ledger=out / DEMO_LEDGER, cap=cap, synthesizer=synthesizer,
                   target=DEMO_TARGET, random_state=seed, overwrite=True, progress=progress)


__all__ = ["DEMO_DATASET", "DEMO_TARGET", "run_demo"]
