"""The ledger across real processes: a fit killed with SIGKILL, two processes racing.

Each child is a fresh ``python`` process (``subprocess``), so nothing is shared but the file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dpsynth.accounting import Budget, GaussianEvent, PureDPEvent, pld_epsilon
from dpsynth.accounting.ledger import Ledger
from dpsynth.accounting.rdp_filter import filter_epsilon
from dpsynth.errors import BudgetExceededError

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")

FIT_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import pandas as pd
    from dpsynth.accounting import PureDPEvent
    from dpsynth.accounting.ledger import Ledger
    from dpsynth.schema import Column, Schema
    from dpsynth.synthesizers.base import BaseSynthesizer, PlannedSpend

    ledger_path, marker = sys.argv[1], Path(sys.argv[2])

    class Slow(BaseSynthesizer):
        name = "test-slow"
        def _plan_training(self, schema, n_rows, budget, prior_events):
            return [PlannedSpend("train:generator", PureDPEvent(0.5))]
        def _fit(self, data, schema, *, plan, recorder, noise):
            with recorder.spend("train:generator", PureDPEvent(0.5)):
                marker.write_text("training")  # noise may be drawn from here on
                time.sleep(120)

    df = pd.DataFrame({"x": list(range(100))})
    schema = Schema((Column("x", "integer", lower=0, upper=100),))
    recorder = Ledger(ledger_path).recorder("people", actor="killed-fit")
    Slow(epsilon=0.5, delta=1e-4).fit(df, schema, ledger=recorder)
""")

RACE_CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from dpsynth.accounting import GaussianEvent
    from dpsynth.accounting.ledger import Ledger
    from dpsynth.errors import BudgetExceededError

    ledger_path, sigma, me, go = sys.argv[1], float(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    ledger = Ledger(ledger_path)
    Path(go.parent / f"ready-{me}").write_text("")
    while not go.exists():
        time.sleep(0.002)
    try:
        with ledger.spend("people", "train:generator", GaussianEvent(sigma), actor=me):
            pass
    except BudgetExceededError:
        sys.exit(3)
""")


def _child(code: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"child exited early:\n{out}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("child did not get ready in time")
        time.sleep(0.05)


def test_sigkill_during_fit_leaves_the_reservation_counted(tmp_path):
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.register("people", Budget(1.0, 1e-4), fingerprint="sha256:" + "1" * 64, n_rows=100)
    marker = tmp_path / "training"
    proc = _child(FIT_CHILD, str(path), str(marker))
    _wait_for(marker, proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL

    (spend,) = ledger.spends("people")
    assert spend.status == "interrupted"
    assert spend.reservation.actor == "killed-fit"
    status = ledger.status("people")
    assert status.n_interrupted == 1
    assert status.epsilon == pytest.approx(pld_epsilon([PureDPEvent(0.5)], 1e-4))
    assert status.epsilon > 0.49
    # Without the killed reservation 0.6 would fit under the cap of 1; with it, it does not.
    with pytest.raises(BudgetExceededError):
        ledger.check("people", [PureDPEvent(0.6)])
    assert ledger.verify() == []


def test_two_processes_racing_for_the_last_budget_exactly_one_wins(tmp_path):
    path = tmp_path / "ledger.sqlite"
    cap = Budget(1.0, 1e-6)
    ledger = Ledger(path)
    ledger.register("people", cap, fingerprint="sha256:" + "2" * 64, n_rows=10_000)
    first, racer = GaussianEvent(7.0), GaussianEvent(8.0)
    # Each racer fits alone after the first spend; both together would cross the cap (held
    # by PLD and by the adaptive filter).
    assert pld_epsilon([first, racer], cap.delta) <= cap.epsilon
    assert filter_epsilon([first, racer], cap.delta) <= cap.epsilon
    assert filter_epsilon([first, racer, racer], cap.delta) > cap.epsilon
    with ledger.spend("people", "bounds:x", first):
        pass

    go = tmp_path / "go"
    procs = [_child(RACE_CHILD, str(path), "8.0", name, str(go)) for name in ("p1", "p2")]
    for name, proc in zip(("p1", "p2"), procs, strict=True):
        _wait_for(tmp_path / f"ready-{name}", proc)
    go.write_text("")
    codes = sorted(p.wait(timeout=60) for p in procs)
    outputs = [p.stdout.read().decode() if p.stdout else "" for p in procs]
    assert codes == [0, 3], outputs  # one won, the other was refused

    spends = ledger.spends("people")
    assert len(spends) == 2 and all(s.status == "committed" for s in spends)
    assert spends[1].reservation.actor in ("p1", "p2")
    assert ledger.status("people").epsilon <= cap.epsilon
    assert ledger.verify() == []
