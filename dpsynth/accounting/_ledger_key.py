"""The ledger's secret key and its witness, both kept outside the database.

The key (32 random bytes, hex, in a file created with mode 0600) keys the hash chain
(HMAC-SHA256): without it nobody can write a row, or recompute the chain after an edit, that
verifies. The witness is a small file holding the highest ``(seq, row_hash)`` this key has seen
committed, with a MAC: a database rolled back to an older copy, or cut short, ends before the
witness and is detected on open. See ``docs/ledger-threat-model.md``.

Locations: ``$DPSYNTH_LEDGER_KEY`` names the key file; otherwise a SQLite ledger ``L`` keeps
``L.key`` beside it, and a server ledger keeps ``$XDG_DATA_HOME/dpsynth/keys/<hash of the URL
without its password>.key``. The witness is the key path with ``.witness`` instead of ``.key``
(``$DPSYNTH_LEDGER_WITNESS`` overrides it).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dpsynth.errors import ParameterError, WitnessError

try:  # POSIX advisory locks; elsewhere the witness update is best effort.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def hide_password(location: str) -> str:
    """``location`` with the password of a URL masked (paths are returned as they are)."""
    return _url_without_password(location) if "://" in location else location


def _url_without_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - any unparsable URL: hash it as written
        return url


def key_path_for(location: str) -> Path:
    """Where the key of the ledger at ``location`` lives."""
    env = os.environ.get("DPSYNTH_LEDGER_KEY")
    if env:
        return Path(env).expanduser()
    if location.startswith("sqlite:///"):  # the same file as a path: the same key
        location = location[len("sqlite:///"):]
    if "://" not in location:
        return Path(location).expanduser().with_name(Path(location).name + ".key")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    digest = hashlib.sha256(_url_without_password(location).encode()).hexdigest()[:24]
    return Path(base) / "dpsynth" / "keys" / f"{digest}.key"


def witness_path_for(key_path: Path) -> Path:
    env = os.environ.get("DPSYNTH_LEDGER_WITNESS")
    return Path(env).expanduser() if env else key_path.with_suffix(".witness")


def create_key(path: Path) -> bytes:
    """Write a fresh random key to ``path`` (mode 0600, never overwriting); return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return key


def read_key(path: Path, location: str) -> bytes:
    """The key at ``path``; one clear error if it is missing or malformed."""
    try:
        text = path.read_text(encoding="ascii").strip()
        return bytes.fromhex(text)
    except FileNotFoundError:
        raise ParameterError(
            f"The ledger {location} is keyed but its key file {path} is missing. Restore it "
            "from your backup, or point $DPSYNTH_LEDGER_KEY at it.") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ParameterError(f"Cannot read the ledger key {path}: {exc}") from None


def key_id(key: bytes) -> str:
    """A public identifier of the key (stored in the database to match key and ledger)."""
    return hashlib.sha256(b"dpsynth-ledger-key-id" + key).hexdigest()[:16]


@dataclass(frozen=True)
class Witness:
    """The highest committed ``(seq, row_hash)`` of one ledger, MAC'd with its key."""

    ledger_id: str
    seq: int
    row_hash: str

    def mac(self, key: bytes) -> str:
        msg = f"{self.ledger_id}:{self.seq}:{self.row_hash}".encode()
        return hmac.new(key, msg, hashlib.sha256).hexdigest()


class WitnessFile:
    """The witness of one ledger, on disk; only ever moves forward."""

    def __init__(self, path: Path, key: bytes, ledger_id: str):
        self.path = path
        self._key = key
        self._ledger_id = ledger_id

    def read(self) -> Witness | None:
        """The witness, ``None`` if there is none yet; raises if it is forged or unreadable."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise WitnessError(f"the witness file {self.path} is unreadable ({exc})") from None
        try:
            witness = Witness(str(data["ledger_id"]), int(data["seq"]), str(data["row_hash"]))
            mac = str(data["mac"])
        except (KeyError, TypeError, ValueError):
            raise WitnessError(f"the witness file {self.path} is malformed") from None
        if witness.ledger_id != self._ledger_id:
            raise WitnessError(f"the witness file {self.path} belongs to another ledger")
        if not hmac.compare_digest(mac, witness.mac(self._key)):
            raise WitnessError(f"the witness file {self.path} was forged (its MAC is wrong)")
        return witness

    def advance(self, seq: int, row_hash: str) -> None:
        """Record ``(seq, row_hash)`` unless the witness is already at or past ``seq``."""
        with self._locked():
            current = None
            with contextlib.suppress(WitnessError):
                current = self.read()
            if current is not None and current.seq >= seq:
                return
            witness = Witness(self._ledger_id, int(seq), str(row_hash))
            body = json.dumps({"ledger_id": witness.ledger_id, "seq": witness.seq,
                               "row_hash": witness.row_hash, "mac": witness.mac(self._key)})
            tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT,
                     0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


