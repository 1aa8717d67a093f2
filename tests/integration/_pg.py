"""A throwaway PostgreSQL server for the ledger tests (``initdb`` + ``pg_ctl``), or CI's.

``.ci/run`` starts one and exports ``DPSYNTH_TEST_PG_URL``; without it a developer's run starts
its own when ``initdb`` is on the PATH (or in ``/usr/lib/postgresql/*/bin``). Under CI
(``CI=true``) a missing server is a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

PASSWORD = "dpsynth-test"


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextlib.contextmanager
def throwaway_server() -> Iterator[str | None]:
    """Start a server in a temporary folder; yield its base URL (``None`` if impossible)."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="dpsynth-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    (root / "pw").write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(root / "pw", "postgres")
    port = _free_port()
    data = root / "data"
    subprocess.run(_as_owner([initdb, "-D", str(data), "-U", "postgres", "-A", "scram-sha-256",
                              f"--pwfile={root / 'pw'}"]), check=True, capture_output=True)
    subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                              f"-p {port} -k {root} -c listen_addresses=127.0.0.1"]
                             + ["start"]), check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_owner([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(base_url: str) -> str:
    """Create an empty database on the server of ``base_url``; return its URL."""
    import sqlalchemy as sa

    name = f"ledger_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    finally:
        engine.dispose()
    return base_url.rsplit("/", 1)[0] + f"/{name}"


def run_sql(url: str, *statements: str) -> None:
    """Run statements on the database of ``url`` directly (tampering behind dpsynth)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
