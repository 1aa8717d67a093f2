"""Storage behind the privacy ledger: one append-only SQL table and two back-ends.

The ledger's logic (:mod:`dpsynth.accounting.ledger`) speaks plain SQL with ``:name``
parameters through the tiny :class:`Store` / :class:`Txn` interface below, so the default
SQLite file (standard :mod:`sqlite3`) and a server database reached through SQLAlchemy share
every line of it. Writers are serialised: SQLite takes its write lock up front with
``BEGIN IMMEDIATE``; other databases lock the single ``ledger_head`` row (``FOR UPDATE``)
first, so a check and the insert that follows it always run as one atomic step.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from dpsynth.errors import LedgerNotFoundError, ParameterError

logger = logging.getLogger(__name__)

#: Format of the ledger tables; stored in ``ledger_meta`` and checked on open.
LEDGER_FORMAT = "1"

#: Columns of ``ledger_entries`` in the order the row hash reads them.
COLUMNS: tuple[str, ...] = (
    "seq", "dataset", "kind", "ref", "purpose", "mechanism", "event_json", "epsilon", "delta",
    "rdp_epsilon", "actor", "created_at", "dpsynth_version", "release_id", "detail_json",
    "prev_hash", "row_hash",
)

# Portable DDL: DOUBLE PRECISION keeps 64-bit floats on PostgreSQL (REAL is 32-bit there).
_DDL = (
    """CREATE TABLE IF NOT EXISTS ledger_entries (
        seq INTEGER PRIMARY KEY,
        dataset TEXT NOT NULL,
        kind TEXT NOT NULL,
        ref INTEGER,
        purpose TEXT,
        mechanism TEXT,
        event_json TEXT,
        epsilon DOUBLE PRECISION,
        delta DOUBLE PRECISION,
        rdp_epsilon DOUBLE PRECISION,
        actor TEXT NOT NULL,
        created_at TEXT NOT NULL,
        dpsynth_version TEXT NOT NULL,
        release_id TEXT,
        detail_json TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        row_hash TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_entries_dataset ON ledger_entries (dataset, seq)",
    """CREATE TABLE IF NOT EXISTS ledger_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        row_hash TEXT NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

#: SQLite triggers that refuse UPDATE / DELETE on entries (a guard; the hash chain is the proof).
SQLITE_GUARDS = {
    "ledger_entries_no_update": "BEFORE UPDATE ON ledger_entries",
    "ledger_entries_no_delete": "BEFORE DELETE ON ledger_entries",
}

GENESIS_HASH = "0" * 64


class Txn(Protocol):
    """One open transaction."""

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return all its rows as tuples."""

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing."""


class Store(Protocol):
    """A database holding one ledger."""

    location: str
    is_sqlite: bool

    def transaction(self, *, write: bool) -> contextlib.AbstractContextManager[Txn]:
        """A transaction, exclusive among writers when ``write``; commits on normal exit."""


def _initialise(store: Store, setup: contextlib.AbstractContextManager[Txn]) -> None:
    """Create the tables, the head row and (SQLite) the append-only guards, idempotently.

    ``setup`` is a write transaction that does not lock ``ledger_head`` (it may not exist yet).
    """
    with setup as txn:
        for statement in _DDL:
            txn.run(statement)
        if not txn.rows("SELECT seq FROM ledger_head WHERE id = 1"):
            # A new ledger. The guards are created only here: a guard dropped later stays
            # missing, so that verification reports it.
            if store.is_sqlite:
                for name, when in SQLITE_GUARDS.items():
                    txn.run(f"CREATE TRIGGER IF NOT EXISTS {name} {when} BEGIN "
                            "SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END")
            txn.run("INSERT INTO ledger_head (id, seq, row_hash) VALUES (1, 0, :h)",
                    {"h": GENESIS_HASH})
            txn.run("INSERT INTO ledger_meta (key, value) VALUES ('format', :v)",
                    {"v": LEDGER_FORMAT})
        found = txn.rows("SELECT value FROM ledger_meta WHERE key = 'format'")
    if not found or found[0][0] != LEDGER_FORMAT:
        raise ParameterError(f"The ledger at {store.location} has format "
                             f"{found[0][0] if found else 'unknown'}; this dpsynth reads format "
                             f"{LEDGER_FORMAT}.")


# -- SQLite (default) -----------------------------------------------------------------------
class _SQLiteTxn:
    def __init__(self, con: sqlite3.Connection):
        self._con = con

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._con.execute(sql, dict(params or {})).fetchall()]

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._con.execute(sql, dict(params or {}))


class SQLiteStore:
    """A ledger in one SQLite file: WAL journal, FULL sync, ``BEGIN IMMEDIATE`` for writers.

    A connection is opened per transaction, so a ledger object can be shared by threads and
    survives ``fork``; SQLite's own file locks serialise writers across processes.
    """

    is_sqlite = True

    def __init__(self, path: str | Path, *, timeout: float = 60.0, create: bool = True):
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        self.timeout = float(timeout)
        if not self.path.exists():
            if not create:
                raise LedgerNotFoundError(f"No privacy ledger at {self.path}. Register a "
                                          "dataset first (dpsynth budget register).")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._connect()
        try:
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        finally:
            con.close()
        if str(mode).lower() != "wal":
            logger.warning("SQLite ledger %s runs in journal mode %r, not WAL", self.path, mode)
        _initialise(self, self.transaction(write=True))

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        con = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        con.execute("PRAGMA synchronous = FULL")  # a committed spend survives a power loss
        return con

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[Txn]:
        con = self._connect()
        try:
            # IMMEDIATE takes the write lock now, so racing writers queue here and each sees
            # the spends committed before it.
            con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _SQLiteTxn(con)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    def guards_present(self) -> list[str]:
        """Names of the append-only triggers found in the file."""
        with self.transaction(write=False) as txn:
            found = txn.rows("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return sorted(str(r[0]) for r in found if r[0] in SQLITE_GUARDS)


# -- SQLAlchemy (server databases) ----------------------------------------------------------
class _SATxn:
    def __init__(self, conn: Any):
        self._conn = conn

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        from sqlalchemy import text

        return [tuple(r) for r in self._conn.execute(text(sql), dict(params or {})).fetchall()]

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        from sqlalchemy import text

        self._conn.execute(text(sql), dict(params or {}))


class SQLAlchemyStore:
    """A ledger in a database named by a SQLAlchemy URL (``postgresql://...``).

    Needs the optional ``server`` extra (``pip install dpsynth[server]``). Writers lock the
    ``ledger_head`` row first (``SELECT ... FOR UPDATE``); on SQLite URLs ``BEGIN IMMEDIATE``.
    """

    def __init__(self, url: str, *, timeout: float = 60.0, create: bool = True):
        try:
            import sqlalchemy as sa
            from sqlalchemy.pool import NullPool
        except ImportError:
            raise ParameterError(
                f"The ledger URL {url!r} needs SQLAlchemy: pip install 'dpsynth[server]' "
                "(or use a SQLite file path)."
            ) from None
        self.location = url
        engine = sa.create_engine(url, poolclass=NullPool)
        self.is_sqlite = engine.dialect.name == "sqlite"
        if self.is_sqlite:
            database = engine.url.database
            if not database or database == ":memory:":
                raise ParameterError(f"The ledger URL {url!r} names an in-memory database; a "
                                     "ledger must be persistent.")
            if not create and not Path(database).exists():
                raise LedgerNotFoundError(f"No privacy ledger at {url}.")
            _sqlite_hooks(engine, timeout)
        self.engine = engine
        if not create and not sa.inspect(engine).has_table("ledger_head"):
            raise LedgerNotFoundError(f"No privacy ledger in {url}.")
        _initialise(self, self._setup())

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[Txn]:
        with self.engine.begin() as conn:
            txn = _SATxn(conn)
            if write and not self.is_sqlite:
                txn.rows("SELECT seq FROM ledger_head WHERE id = 1 FOR UPDATE")
            yield txn

    @contextlib.contextmanager
    def _setup(self) -> Iterator[Txn]:
        with self.engine.begin() as conn:
            yield _SATxn(conn)

    def guards_present(self) -> list[str]:
        if not self.is_sqlite:
            return sorted(SQLITE_GUARDS)  # not used on servers: revoke UPDATE/DELETE instead
        with self.transaction(write=False) as txn:
            found = txn.rows("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return sorted(str(r[0]) for r in found if r[0] in SQLITE_GUARDS)


def _sqlite_hooks(engine: Any, timeout: float) -> None:
    """Make pysqlite behave like :class:`SQLiteStore`: WAL, busy timeout, BEGIN IMMEDIATE."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def open_store(location: str | Path, *, timeout: float = 60.0, create: bool = True) -> Store:
    """A :class:`Store` for a file path (SQLite) or a SQLAlchemy URL (``scheme://...``)."""
    text = str(location)
    if "://" in text:
        return SQLAlchemyStore(text, timeout=timeout, create=create)
    return SQLiteStore(text, timeout=timeout, create=create)
