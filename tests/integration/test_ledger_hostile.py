"""The ledger tried as a hostile user would (issue 14): every way around it is refused or found.

Real ``dpsynth`` processes, the ``sqlite3`` command line or plain SQL for tampering, a copied-
back file for a rollback. The parts that apply to a server run on SQLite and on a real
PostgreSQL server (``.ci/run`` starts one; see ``_pg.py``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _pg import fresh_database, run_sql, throwaway_server

from dpsynth.accounting import Budget, GaussianEvent, PureDPEvent
from dpsynth.accounting._ledger_chain import compute_row_hash
from dpsynth.accounting.analysis import pld_epsilon
from dpsynth.accounting.ledger import Ledger, LedgerCorruptedError
from dpsynth.accounting.rdp_filter import filter_epsilon
from dpsynth.accounting.session import Spend
from dpsynth.datasets import load_dataset
from dpsynth.errors import BudgetExceededError, ParameterError

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and signals")
FP = "sha256:" + "e" * 64


@pytest.fixture(scope="session")
def pg_base():
    url = os.environ.get("DPSYNTH_TEST_PG_URL")
    if url:
        yield url
        return
    with throwaway_server() as started:
        if started is None:
            if os.environ.get("CI") == "true":
                pytest.fail("CI=true but no PostgreSQL: .ci/run must export DPSYNTH_TEST_PG_URL")
            pytest.skip("no PostgreSQL server (initdb not found)")
        yield started


@pytest.fixture(autouse=True)
def _isolated_keys(tmp_path, monkeypatch):
    # Server ledgers keep their key and witness under $XDG_DATA_HOME: one per test.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("DPSYNTH_LEDGER_KEY", raising=False)
    monkeypatch.delenv("DPSYNTH_LEDGER_WITNESS", raising=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    return fresh_database(request.getfixturevalue("pg_base"))


@pytest.fixture(scope="module")
def wage(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wage")
    rows, schema = load_dataset("wage")
    rows.to_csv(folder / "wage.csv", index=False)
    schema.save(folder / "wage.yaml")
    return folder / "wage.csv", folder / "wage.yaml", rows


def dpsynth(*args: object, env: dict[str, str] | None = None,
            wait: bool = True) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    cmd = [sys.executable, "-c", "from dpsynth.cli import main; main()", *map(str, args)]
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    if not wait:
        return subprocess.Popen(cmd, env=full_env, cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return subprocess.run(cmd, env=full_env, cwd=ROOT, text=True, capture_output=True,
                          timeout=300)


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def register(ledger: str, wage, cap: float = 2.0, name: str = "w") -> Ledger:
    """Register the wage table as ``dpsynth budget register`` does (in-process: faster)."""
    from dpsynth.accounting.budget import default_delta
    from dpsynth.data.io import read_table
    from dpsynth.schema import Schema

    data_path, schema_path, _ = wage
    schema = Schema.load(schema_path)
    rows = read_table(data_path, schema=schema)  # as the CLI reads it: the same fingerprint
    book = Ledger(ledger)
    book.register_table(name, Budget(cap, default_delta(len(rows))), rows, schema)
    return book


def spend_some(book: Ledger) -> None:
    with book.spend("w", "train:generator", GaussianEvent(5.0)):
        pass


def fit(ledger: str, wage, out: Path, epsilon: float = 1.0, **kw: object):
    data, schema, _ = wage
    return dpsynth("fit", data, "--schema", schema, "--epsilon", epsilon, "--synthesizer",
                   "mst", "--out", out, "--ledger", ledger, "--dataset", "w", "--seed", "0",
                   **kw)


def sqlite3_cli(path: str, sql: str) -> None:
    shutil.which("sqlite3") or pytest.fail("the sqlite3 command line is missing (.ci/run "
                                           "installs it)")
    subprocess.run(["sqlite3", path, sql], check=True, capture_output=True)


# -- 1. no path around the ledger; 2. nothing spent on a bad output path ------------------
def test_epsilon_inf_with_a_ledger_is_refused_before_training(tmp_path, wage):
    ledger = str(tmp_path / "l.sqlite")
    register(ledger, wage)
    result = fit(ledger, wage, tmp_path / "m", epsilon="inf")
    assert result.returncode == 2 and len(lines(result)) == 1, lines(result)
    assert "epsilon" in result.stderr.lower() and not (tmp_path / "m").exists()
    assert Ledger(ledger).status("w").n_spends == 0


@pytest.mark.parametrize("where", ["under-a-file", "read-only"])
def test_a_bad_output_path_fails_before_the_first_spend(tmp_path, wage, where):
    ledger = str(tmp_path / "l.sqlite")
    register(ledger, wage)
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "model"
    if where == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        (tmp_path / "ro").mkdir(mode=0o555)
        out = tmp_path / "ro" / "model"
    result = fit(ledger, wage, out)
    assert result.returncode == 2 and len(lines(result)) == 1, lines(result)
    assert Ledger(ledger).status("w").n_spends == 0


def test_an_existing_model_is_not_clobbered_with_a_ledger(tmp_path, wage):
    ledger = str(tmp_path / "l.sqlite")
    register(ledger, wage)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text("{}")  # a model saved earlier
    spent = Ledger(ledger).status("w").n_spends
    again = fit(ledger, wage, tmp_path / "m", epsilon=0.1)
    assert again.returncode == 2 and "saved model" in again.stderr
    assert Ledger(ledger).status("w").n_spends == spent


# -- 3. a corrupted ledger refuses to spend; 4. truncation, rewrite and rollback ----------
def test_deleted_spends_make_the_ledger_refuse_and_show_corruption(tmp_path, wage):
    ledger = str(tmp_path / "l.sqlite")
    spend_some(register(ledger, wage))
    sqlite3_cli(ledger, "DROP TRIGGER ledger_entries_no_delete; "
                        "DELETE FROM ledger_entries WHERE kind != 'register';")
    show = dpsynth("budget", "show", "--ledger", ledger)
    assert show.returncode == 1 and "CORRUPTED" in show.stdout + show.stderr
    again = fit(ledger, wage, tmp_path / "m2")
    assert again.returncode == 1 and len(lines(again)) == 1, lines(again)
    assert "corrupted" in again.stderr and "entr" in again.stderr  # names the broken row
    assert not (tmp_path / "m2").exists()


def test_rollback_to_an_older_copy_is_detected(tmp_path, wage):
    ledger = str(tmp_path / "l.sqlite")
    book = register(ledger, wage)
    shutil.copy(ledger, tmp_path / "before.sqlite")
    spend_some(book)
    for suffix in ("-wal", "-shm"):
        Path(ledger + suffix).unlink(missing_ok=True)
    shutil.copy(tmp_path / "before.sqlite", ledger)  # the simplest way to regain budget
    assert dpsynth("budget", "verify", "--ledger", ledger).returncode == 1
    again = fit(ledger, wage, tmp_path / "m2")
    assert again.returncode == 1 and "older copy" in again.stderr, lines(again)


def _tamper_tail(book: Ledger, location: str, kind: str) -> None:
    *_, before, last = book.entries()
    if kind == "truncate":
        statements = [f"DELETE FROM ledger_entries WHERE seq = {last.seq}",
                      f"UPDATE ledger_head SET seq = {before.seq}, row_hash = "
                      f"'{before.row_hash}'"]
    else:  # rewrite the last row with the project's own (un-keyed) row hash
        fields = {**last.fields(), "detail_json": "{}"}
        digest = compute_row_hash(last.prev_hash, fields)
        statements = [f"UPDATE ledger_entries SET detail_json = '{{}}', row_hash = '{digest}' "
                      f"WHERE seq = {last.seq}",
                      f"UPDATE ledger_head SET row_hash = '{digest}'"]
    if "://" in location:
        run_sql(location, *statements)
    else:
        sqlite3_cli(location, "DROP TRIGGER ledger_entries_no_delete; "
                              "DROP TRIGGER ledger_entries_no_update; " + "; ".join(statements))


@pytest.mark.parametrize("kind", ["truncate", "rewrite"])
def test_truncation_and_rewrite_are_detected_on_open(location, kind):
    book = Ledger(location)
    book.register("d", Budget(2.0, 1e-6), fingerprint=FP, n_rows=5000)
    with book.spend("d", "a", GaussianEvent(8.0)):
        pass
    _tamper_tail(book, location, kind)
    assert book.verify()
    with pytest.raises(LedgerCorruptedError):
        book.status("d")
    with pytest.raises(LedgerCorruptedError):
        Ledger(location).reserve_plan("d", [Spend("b", GaussianEvent(50.0))])


def test_rollback_of_a_server_database_is_detected(pg_base):
    location = fresh_database(pg_base)
    book = Ledger(location)
    book.register("d", Budget(2.0, 1e-6), fingerprint=FP, n_rows=5000)
    with book.spend("d", "a", GaussianEvent(8.0)):
        pass
    # Restoring yesterday's dump: the spend rows disappear, the head goes back.
    run_sql(location, "DELETE FROM ledger_entries WHERE seq > 1",
            "UPDATE ledger_head SET seq = 1, row_hash = (SELECT row_hash FROM ledger_entries "
            "WHERE seq = 1)")
    assert any("witness saw" in p for p in book.verify())


# -- 5. check everything, then reserve everything -----------------------------------------
def _admitted(plan, cap: Budget, n: int) -> int:
    """How many of ``n`` copies of ``plan`` the ledger's rule admits one after another."""
    for k in range(1, n + 1):
        events = plan * k
        figure = pld_epsilon(events, cap.delta)
        if k > 1:  # the first plan by PLD alone; then the adaptive filter too
            figure = max(figure, filter_epsilon(events, cap.delta))
        if figure > cap.epsilon + 1e-9:
            return k - 1
    return n


def test_six_concurrent_fits_on_a_cap_of_two(tmp_path, wage):
    ledger = str(tmp_path / "l.sqlite")
    register(ledger, wage)
    cap = Ledger(ledger).dataset("w").cap
    from dpsynth.synthesizers import create

    plan = create("mst", epsilon=1.0, delta=cap.delta).plan_budget(
        load_dataset("wage")[1], len(wage[2]))
    events = list(plan.events)
    expected = _admitted(events, cap, 6)
    procs = [fit(ledger, wage, tmp_path / f"m{i}", wait=False) for i in range(6)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert codes.count(0) == expected and expected >= 1, (expected, codes, outputs)
    for code, out in zip(codes, outputs, strict=True):
        if code != 0:
            assert code == 1 and "Nothing was spent" in out, out
    spends = Ledger(ledger).spends("w")
    assert len(spends) == expected * len(events)  # whole plans only, none half-reserved
    assert {s.status for s in spends} == {"committed"}


def _race_child(location: str, go: Path, me: str) -> subprocess.Popen[str]:
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from dpsynth.accounting import GaussianEvent
        from dpsynth.accounting.ledger import Ledger
        from dpsynth.accounting.session import Spend
        from dpsynth.errors import BudgetExceededError
        book = Ledger({location!r})
        Path({str(go.parent / ('ready-' + me))!r}).write_text("")
        while not Path({str(go)!r}).exists():
            time.sleep(0.002)
        try:
            book.reserve_plan("d", [Spend("a", GaussianEvent(14.0)),
                                    Spend("b", GaussianEvent(14.0))], actor={me!r})
        except BudgetExceededError:
            sys.exit(3)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_eight_processes_race_for_the_last_budget(location, tmp_path):
    cap = Budget(1.0, 1e-6)
    book = Ledger(location)
    book.register("d", cap, fingerprint=FP, n_rows=100_000)
    plan = [GaussianEvent(14.0)] * 2
    expected = _admitted(plan, cap, 8)
    assert 2 <= expected <= 4  # several win, several lose
    go = tmp_path / "go"
    procs = [_race_child(location, go, f"p{i}") for i in range(8)]
    deadline = time.time() + 120
    while sum((tmp_path / f"ready-p{i}").exists() for i in range(8)) < 8:
        assert time.time() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.05)
    go.write_text("")
    codes = [p.wait(timeout=120) for p in procs]
    assert codes.count(0) == expected and codes.count(3) == 8 - expected, (
        codes, [p.stdout.read() for p in procs if p.stdout])
    assert len(book.spends("d")) == 2 * expected
    assert book.verify() == []


def test_sigkill_after_reserving_leaves_the_plan_counted(location, tmp_path):
    book = Ledger(location)
    book.register("d", Budget(2.0, 1e-6), fingerprint=FP, n_rows=5000)
    marker = tmp_path / "reserved"
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from dpsynth.accounting import GaussianEvent
        from dpsynth.accounting.ledger import Ledger
        rec = Ledger({location!r}).recorder("d", actor="killed")
        from dpsynth.accounting.session import Spend
        rec.reserve_plan([Spend("a", GaussianEvent(9.0)), Spend("b", GaussianEvent(9.0))])
        with rec.spend("a", GaussianEvent(9.0)):
            Path({str(marker)!r}).write_text("")
            time.sleep(120)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.time() + 120
    while not marker.exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    status = book.status("d")
    assert status.n_spends == 2 and status.n_interrupted == 2
    assert status.epsilon == pytest.approx(pld_epsilon([GaussianEvent(9.0)] * 2, 1e-6))
    assert book.verify() == []


def test_a_refused_plan_reserves_nothing(location):
    book = Ledger(location)
    book.register("d", Budget(1.0, 1e-6), fingerprint=FP, n_rows=5000)
    with pytest.raises(BudgetExceededError, match="Nothing was spent"):
        book.reserve_plan("d", [Spend("a", GaussianEvent(8.0)), Spend("b", PureDPEvent(0.9))])
    assert book.spends("d") == ()


# -- filter: the same answers on both databases ---------------------------------------------
def test_the_filter_gives_the_same_answers(location, tmp_path):
    cap = Budget(1.5, 1e-6)
    book = Ledger(location)
    book.register("d", cap, fingerprint=FP, n_rows=100_000)
    reference = Ledger(tmp_path / "reference.sqlite")
    reference.register("d", cap, fingerprint=FP, n_rows=100_000)
    for sigma in (8.0, 9.0, 10.0, 11.0):
        outcomes = []
        for ledger in (book, reference):
            try:
                ledger.reserve_plan("d", [Spend("a", GaussianEvent(sigma))])
                outcomes.append("admitted")
            except BudgetExceededError:
                outcomes.append("refused")
        assert outcomes[0] == outcomes[1]
    assert book.status("d").filter_epsilon == pytest.approx(
        reference.status("d").filter_epsilon)
    assert "refused" in outcomes or book.status("d").filter_epsilon <= cap.epsilon


# -- 6. one population, one budget ----------------------------------------------------------
def test_a_reshuffled_copy_minus_rows_gets_no_second_budget(tmp_path, wage):
    ledger = str(tmp_path / "l.sqlite")
    register(ledger, wage)
    _, schema, rows = wage
    near = rows.sample(frac=1.0, random_state=1).iloc[:-3]  # shuffled, three rows dropped
    near.to_csv(tmp_path / "near.csv", index=False)
    refused = dpsynth("budget", "register", "w2", "--data", tmp_path / "near.csv", "--schema",
                      schema, "--epsilon", 2, "--ledger", ledger)
    assert refused.returncode == 2 and "already registered" in refused.stderr
    assert len(lines(refused)) == 1, lines(refused)
    declared = dpsynth("budget", "register", "w2", "--data", tmp_path / "near.csv", "--schema",
                       schema, "--epsilon", 2, "--ledger", ledger, "--different-population")
    assert declared.returncode == 0
    (entry,) = [e for e in Ledger(ledger).entries("w2") if e.kind == "register"]
    assert entry.detail["overlap"]["dataset"] == "w"
    assert entry.detail["overlap"]["shared_fraction"] > 0.9


def test_a_disjoint_table_is_its_own_population(tmp_path, wage):
    _, _, rows = wage
    book = Ledger(tmp_path / "l.sqlite")
    book.register_table("a", Budget(1.0, 1e-5), rows.iloc[:1500])
    record = book.register_table("b", Budget(1.0, 1e-5), rows.iloc[1500:])
    assert record.name == "b"


# -- 8. bad input: one line, the right exit status, nothing half-written --------------------
def test_a_directory_as_ledger(tmp_path, wage):
    data, schema, _ = wage
    result = dpsynth("budget", "register", "w", "--data", data, "--schema", schema,
                     "--epsilon", 1, "--ledger", tmp_path)
    assert result.returncode == 2 and len(lines(result)) == 1 and "directory" in result.stderr
    again = fit(str(tmp_path), wage, tmp_path / "m")
    assert again.returncode == 2 and len(lines(again)) == 1, lines(again)


def test_a_missing_ledger_folder_for_fit(tmp_path, wage):
    result = fit(str(tmp_path / "nowhere" / "l.sqlite"), wage, tmp_path / "m")
    assert result.returncode == 2 and len(lines(result)) == 1, lines(result)
    assert not (tmp_path / "nowhere").exists()


def test_a_read_only_ledger_file(tmp_path, wage):
    ledger = str(tmp_path / "l.sqlite")
    register(ledger, wage)
    os.chmod(ledger, 0o444)
    result = fit(ledger, wage, tmp_path / "m")
    assert result.returncode == 2 and len(lines(result)) == 1, lines(result)
    assert "read-only" in result.stderr and not (tmp_path / "m").exists()
    os.chmod(ledger, 0o644)
    assert Ledger(ledger).status("w").n_spends == 0


def test_a_wrong_password_and_a_server_that_is_down(pg_base, tmp_path, wage):
    from sqlalchemy.engine import make_url

    good = make_url(fresh_database(pg_base))
    assert good.password, "the test server must use password authentication"
    wrong = good.set(password="wrong").render_as_string(hide_password=False)
    data, schema, _ = wage
    for url in (wrong, "postgresql+psycopg://postgres:x@127.0.0.1:1/none"):
        result = dpsynth("budget", "register", "w", "--data", data, "--schema", schema,
                         "--epsilon", 1, "--ledger", url)
        assert result.returncode == 2 and len(lines(result)) == 1, lines(result)
        assert "Cannot use the ledger database" in result.stderr
        assert "wrong@" not in result.stderr  # the password is never printed
    assert not list((tmp_path / "xdg").glob("dpsynth/keys/*.witness"))


def test_a_legacy_unkeyed_ledger_is_read_but_not_spent_on(tmp_path):
    book = Ledger(tmp_path / "l.sqlite")
    book.register("d", Budget(1.0, 1e-6), fingerprint=FP, n_rows=5000)
    sqlite3_cli(str(tmp_path / "l.sqlite"), "UPDATE ledger_meta SET value = '1' WHERE "
                                            "key = 'format'")
    old = Ledger(tmp_path / "l.sqlite")
    assert old.keyed is False
    with pytest.raises(ParameterError, match="format 1"):
        old.reserve_plan("d", [Spend("a", GaussianEvent(9.0))])


def test_a_team_shares_a_server_ledger_with_one_key(pg_base, tmp_path, monkeypatch):
    location = fresh_database(pg_base)
    monkeypatch.setenv("DPSYNTH_LEDGER_KEY", str(tmp_path / "team.key"))
    monkeypatch.setenv("DPSYNTH_LEDGER_WITNESS", str(tmp_path / "alice.witness"))
    alice = Ledger(location)
    alice.register("d", Budget(2.0, 1e-6), fingerprint=FP, n_rows=5000)
    with alice.spend("d", "a", GaussianEvent(9.0)):
        pass
    monkeypatch.setenv("DPSYNTH_LEDGER_WITNESS", str(tmp_path / "bob.witness"))
    bob = Ledger(location)  # another machine: same key, its own witness from now on
    assert bob.verify() == [] and bob.status("d").n_spends == 1
    with bob.spend("d", "b", GaussianEvent(9.0)):
        pass
    assert alice.status("d").n_spends == 2
    monkeypatch.delenv("DPSYNTH_LEDGER_KEY")
    with pytest.raises(ParameterError, match="key file"):
        Ledger(location)  # without the key nobody writes to it
