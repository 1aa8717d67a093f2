"""What each entry point imports: the torch-free parts of dpsynth must stay torch-free.

The design keeps torch out of accounting, attacks, evaluate and data (an auditor uses them on
any tool's output), and the commands that only read a ledger or print help should not pay
torch's import either. Each check runs in a fresh interpreter, since this test process may
have imported torch already.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

_ASSERT_NO_TORCH = (
    "heavy = sorted(m for m in ('torch', 'opacus', 'transformers') if m in sys.modules)\n"
    "assert not heavy, f'imported {heavy}'\n"
)


def _python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def _no_torch_after(statements: str, cwd: Path | None = None) -> None:
    done = _python(f"import sys\n{statements}\n{_ASSERT_NO_TORCH}", cwd)
    assert done.returncode == 0, done.stderr[-3000:]


def _cli(*args: str) -> str:
    """Run the ``dpsynth`` entry point with ``args``; exit status 0 or an error."""
    return ("from dpsynth.cli import main\n"
            f"sys.argv = ['dpsynth', *{list(args)!r}]\n"
            "try:\n"
            "    main()\n"
            "except SystemExit as exc:\n"
            "    assert exc.code in (0, None), f'exit status {exc.code}'\n")


def test_the_check_sees_torch():
    done = _python(f"import sys, torch\n{_ASSERT_NO_TORCH}")
    assert done.returncode != 0 and "imported ['torch']" in done.stderr


def test_accounting_attacks_evaluate_data_import_no_torch():
    _no_torch_after("import dpsynth, dpsynth.accounting, dpsynth.attacks, dpsynth.evaluate, "
                    "dpsynth.data, dpsynth.datasets, dpsynth.schema, dpsynth.errors")


def test_attack_suite_and_ledger_report_import_no_torch():
    _no_torch_after("import dpsynth.attacks.suite, dpsynth.attacks.generator_audit, "
                    "dpsynth.accounting.report, dpsynth.accounting.ledger")


def test_ledger_and_help_do_not_load_the_accountant_library():
    # dp_accounting (with scipy.signal) is loaded on the first composition, not at import.
    _no_torch_after("import dpsynth.accounting, dpsynth.accounting.ledger\n"
                    + _cli("--help")
                    + "assert 'dp_accounting' not in sys.modules, 'dp_accounting imported'")


def test_release_imports_no_torch():
    _no_torch_after("import dpsynth.release, dpsynth.attacks, dpsynth.accounting, "
                    "dpsynth.evaluate")


def test_synthesizers_registry_imports_no_torch():
    _no_torch_after("import dpsynth.synthesizers")


@pytest.mark.parametrize("args", [["--help"], ["audit", "--help"], ["budget", "--help"],
                                  ["fit", "--help"]])
def test_cli_help_imports_no_torch(args):
    _no_torch_after(_cli(*args))


def test_budget_commands_import_no_torch(tmp_path):
    rng = np.random.default_rng(0)
    pd.DataFrame({"age": rng.integers(18, 90, 200), "sex": rng.choice(["F", "M"], 200)}).to_csv(
        tmp_path / "people.csv", index=False)
    ledger = str(tmp_path / "ledger.sqlite")
    _no_torch_after(_cli("budget", "register", "people", "--data", "people.csv", "--epsilon",
                         "1", "--delta", "1e-9", "--ledger", ledger), cwd=tmp_path)
    _no_torch_after(_cli("budget", "show", "people", "--ledger", ledger), cwd=tmp_path)
    _no_torch_after(_cli("budget", "report", "--ledger", ledger, "--out", "report.html"),
                    cwd=tmp_path)
