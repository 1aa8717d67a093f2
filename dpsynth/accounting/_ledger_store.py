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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from dpsynth.errors import LedgerAccessError, LedgerNotFoundError, ParameterError

logger = logging.getLogger(__name__)

#: Format of new ledgers, stored in ``ledger_meta``: 2 is keyed (HMAC chain, key and witness
#: outside the database); format 1 (plain SHA-256 chain) is still read, never spent on.
LEDGER_FORMAT = "2"
READABLE_FORMATS = ("1", "2")

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


#: Called once when a new ledger is created: the ``ledger_meta`` rows to add besides the format.
NewMeta = Callable[[], Mapping[str, str]]


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
    meta: dict[str, str]

    def transaction(self, *, write: bool) -> contextlib.AbstractContextManager[Txn]:
        """A transaction, exclusive among writers when ``write``; commits on normal exit."""


def _initialise(store: Store, setup: contextlib.AbstractContextManager[Txn],
                new_meta: NewMeta | None) -> dict[str, str]:
    """Create the tables, the head row and (SQLite) the append-only guards, idempotently.

    ``setup`` is a write transaction that does not lock ``ledger_head`` (it may not exist yet).
    Returns the ``ledger_meta`` rows.
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
            meta = {"format": LEDGER_FORMAT, **(new_meta() if new_meta else {})}
            for key, value in meta.items():
                txn.run("INSERT INTO ledger_meta (key, value) VALUES (:k, :v)",
                        {"k": key, "v": value})
        found = dict(txn.rows("SELECT key, value FROM ledger_meta"))
    if found.get("format") not in READABLE_FORMATS:
        raise ParameterError(f"The ledger at {store.location} has format "
                             f"{found.get('format', 'unknown')}; this dpsynth reads formats "
                             f"{', '.join(READABLE_FORMATS)}.")
    return {str(k): str(v) for k, v in found.items()}


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

    def __init__(self, path: str | Path, *, timeout: float = 60.0, create: bool = True,
                 new_meta: NewMeta | None = None, make_parent: bool = False):
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        self.timeout = float(timeout)
        _check_sqlite_path(self.path, create, make_parent)
        try:
            con = self._connect()
            try:
                mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise LedgerAccessError(f"Cannot open the ledger {self.path}: {exc}.") from None
        if str(mode).lower() != "wal":
            logger.warning("SQLite ledger %s runs in journal mode %r, not WAL", self.path, mode)
        self.meta = _initialise(self, self.transaction(write=True), new_meta)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        con = sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        con.execute("PRAGMA synchronous = FULL")  # a committed spend survives a power loss
        return con

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[Txn]:
        try:
            con = self._connect()
        except sqlite3.Error as exc:
            raise LedgerAccessError(f"Cannot open the ledger {self.path}: {exc}.") from None
        try:
            # IMMEDIATE takes the write lock now, so racing writers queue here and each sees
            # the spends committed before it.
            _sqlite_begin(con, write, self.path)
            try:
                yield _SQLiteTxn(con)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            try:
                con.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                con.execute("ROLLBACK")
                raise LedgerAccessError(f"Cannot write the ledger {self.path}: {exc}; nothing "
                                        "was recorded.") from None
        finally:
            con.close()

    def guards_present(self) -> list[str]:
        """Names of the append-only triggers found in the file."""
        with self.transaction(write=False) as txn:
            found = txn.rows("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return sorted(str(r[0]) for r in found if r[0] in SQLITE_GUARDS)


def _check_sqlite_path(path: Path, create: bool, make_parent: bool) -> None:
    """One clear error for a ledger path that cannot be a ledger file."""
    if path.is_dir():
        raise LedgerAccessError(f"The ledger path {path} is a directory; name a file inside it "
                                f"(for example {path / 'ledger.sqlite'}).")
    if path.exists():
        return
    if not create:
        raise LedgerNotFoundError(f"No privacy ledger at {path}. Register a dataset first "
                                  "(dpsynth budget register).")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise LedgerAccessError(f"The ledger path {path} runs through {parent}, which is a "
                                "file, not a folder.")
    path.parent.mkdir(parents=True, exist_ok=True)


def _sqlite_begin(con: sqlite3.Connection, write: bool, path: Path) -> None:
    try:
        if write and path.exists() and not path.stat().st_mode & 0o222:
            # No write permission bit: read-only, even for root (who could write anyway).
            raise sqlite3.OperationalError("the file is read-only")
        con.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    except sqlite3.OperationalError as exc:
        with contextlib.suppress(sqlite3.Error):
            con.execute("ROLLBACK")
        con.close()
        raise LedgerAccessError(f"Cannot write the ledger {path}: {exc}; nothing was "
                                "recorded.") from None


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

    def __init__(self, url: str, *, timeout: float = 60.0, create: bool = True,
                 new_meta: NewMeta | None = None):
        try:
            import sqlalchemy as sa
            from sqlalchemy.pool import NullPool
        except ImportError:
            raise ParameterError(
                f"The ledger URL {url!r} needs SQLAlchemy: pip install 'dpsynth[server]' "
                "(or use a SQLite file path)."
            ) from None
        self.location = url
        engine = sa.create_engine(_with_driver(sa.engine.make_url(url)), poolclass=NullPool)
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
        self._shown = engine.url.render_as_string(hide_password=True)
        with self._errors():
            if not create and not sa.inspect(engine).has_table("ledger_head"):
                raise LedgerNotFoundError(f"No privacy ledger in {self._shown}.")
            self.meta = _initialise(self, self._setup(), new_meta)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        from sqlalchemy.exc import InterfaceError, OperationalError

        try:
            yield
        except (OperationalError, InterfaceError) as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()
            raise LedgerAccessError(f"Cannot use the ledger database {self._shown}: "
                                    f"{reason[0] if reason else type(exc).__name__}; nothing "
                                    "was recorded.") from None

    @contextlib.contextmanager
    def transaction(self, *, write: bool) -> Iterator[Txn]:
        with self._errors(), self.engine.begin() as conn:
            txn = _SATxn(conn)
            if write and not self.is_sqlite:
                txn.rows("SELECT seq FROM ledger_head WHERE id = 1 FOR UPDATE")
            yield txn

    @contextlib.contextmanager
    def _setup(self) -> Iterator[Txn]:
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":  # first openers: one creates tables
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
            yield _SATxn(conn)

    def guards_present(self) -> list[str]:
        if not self.is_sqlite:
            return sorted(SQLITE_GUARDS)  # not used on servers: revoke UPDATE/DELETE instead
        with self.transaction(write=False) as txn:
            found = txn.rows("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return sorted(str(r[0]) for r in found if r[0] in SQLITE_GUARDS)


def _with_driver(url: Any) -> Any:
    """``postgresql://`` means psycopg2 to SQLAlchemy; use psycopg (3) when only it is here."""
    import importlib.util

    if (url.drivername == "postgresql" and importlib.util.find_spec("psycopg2") is None
            and importlib.util.find_spec("psycopg") is not None):
        return url.set(drivername="postgresql+psycopg")
    return url


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


def open_store(location: str | Path, *, timeout: float = 60.0, create: bool = True,
               new_meta: NewMeta | None = None, make_parent: bool = False) -> Store:
    """A :class:`Store` for a file path (SQLite) or a SQLAlchemy URL (``scheme://...``).

    A new SQLite ledger gets its missing parent folders (``make_parent`` is kept for callers).
    """
    text = str(location)
    if "://" in text:
        return SQLAlchemyStore(text, timeout=timeout, create=create, new_meta=new_meta)
    return SQLiteStore(text, timeout=timeout, create=create, new_meta=new_meta,
                       make_parent=make_parent)
