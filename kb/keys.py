"""Scoped API keys: which knowledge bases a key may read, and whether it may ingest
or administer.

Keys live in one JSON file (KB_KEYS_FILE, default DATA_DIR/keys.json), written by
`kb keys create` or `POST /v1/keys` with an admin key. The file holds only a salted
scrypt hash of each key's secret, never the key: a key reads `kb-<id>.<secret>`,
the id finds its record, `hashlib.scrypt` and `hmac.compare_digest` check the
secret. A verified key is remembered (by an HMAC under a per-process secret, not
the key itself) until the file changes, so a question does not pay for scrypt.

KB_SERVICE_API_KEY stays what it was: an admin key over every knowledge base.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock

from kb.core.errors import InvalidRequestError, SettingsError
from kb.core.settings import KB_NAME_PATTERN, KB_NAME_RULE
from kb.store.corpus import now, write_atomic

ALL = "*"  # in a key's `kbs`: every knowledge base
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}  # 16 MiB, ~50 ms: once per key per process
KEY_FORMAT = re.compile(r"^kb-([0-9a-f]{12})\.([A-Za-z0-9_-]{20,100})$")
MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class Access:
    """What a caller may do: read some knowledge bases (None: all), ingest, administer."""

    reads: frozenset[str] | None
    ingest: bool = False
    admin: bool = False
    key_id: str | None = None

    def can_read(self, name: str) -> bool:
        return self.admin or self.reads is None or name in self.reads

    def can_ingest(self, name: str) -> bool:
        return self.admin or (self.ingest and self.can_read(name))

    def readable(self, names: list[str]) -> list[str]:
        return [name for name in names if self.can_read(name)]


ADMIN = Access(reads=None, ingest=True, admin=True, key_id="service")
OPEN = Access(reads=None, key_id=None)  # no keys configured: queries are open
NOBODY = Access(reads=frozenset())


@dataclass(slots=True)
class KeyRecord:
    """One key as stored: its id, scope and the salted hash of its secret."""

    id: str
    name: str
    kbs: list[str]
    ingest: bool
    admin: bool
    salt: str
    hash: str
    created_at: str = field(default_factory=now)

    def access(self) -> Access:
        reads = None if ALL in self.kbs else frozenset(self.kbs)
        return Access(reads=reads, ingest=self.ingest, admin=self.admin, key_id=self.id)

    def public(self) -> dict[str, object]:
        """The record without its salt and hash."""
        return {k: v for k, v in asdict(self).items() if k not in ("salt", "hash")}


def hash_secret(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, **SCRYPT).hex()


def check_scope(kbs: list[str]) -> list[str]:
    if not kbs:
        raise InvalidRequestError("A key needs at least one knowledge base to read ('*': all).")
    for name in kbs:
        if name != ALL and not re.match(KB_NAME_PATTERN, name):
            raise InvalidRequestError(f"Invalid knowledge base name {name!r}: use {KB_NAME_RULE}.")
    return sorted(set(kbs))


class KeyStore:
    """The keys file: create, list, delete, and verify a presented key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._records: dict[str, KeyRecord] = {}
        self._stamp: tuple[int, int] | None = None
        self._verified: dict[bytes, str] = {}
        self._pepper = secrets.token_bytes(32)

    def records(self) -> list[KeyRecord]:
        with self._lock:
            self._refresh()
            return list(self._records.values())

    def any(self) -> bool:
        return bool(self.records())

    def create(
        self, kbs: list[str], *, ingest: bool = False, admin: bool = False, name: str = ""
    ) -> tuple[str, KeyRecord]:
        """A new key (its only plaintext copy, returned here) and its stored record."""
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        record = KeyRecord(
            id=key_id,
            name=name[:100],
            kbs=check_scope(kbs),
            ingest=ingest,
            admin=admin,
            salt=salt.hex(),
            hash=hash_secret(secret, salt),
        )
        with self._writing() as records:
            if len(records) >= MAX_KEYS:
                raise InvalidRequestError(f"The keys file holds {MAX_KEYS} keys; delete some.")
            records[key_id] = record
        return f"kb-{key_id}.{secret}", record

    def delete(self, key_id: str) -> bool:
        with self._writing() as records:
            return records.pop(key_id, None) is not None

    def verify(self, presented: str) -> Access | None:
        """The scope of `presented`, or None if it is not a valid key."""
        match = KEY_FORMAT.match(presented)
        if match is None:
            return None
        memo = hmac.new(self._pepper, presented.encode("utf-8"), "sha256").digest()
        with self._lock:
            self._refresh()
            record = self._records.get(match.group(1))
            if record is None:
                return None
            if self._verified.get(memo) == record.id:
                return record.access()
        computed = hash_secret(match.group(2), bytes.fromhex(record.salt))
        if not hmac.compare_digest(computed, record.hash):
            return None
        with self._lock:
            self._verified[memo] = record.id
        return record.access()

    # -- the file -------------------------------------------------------------------

    def _refresh(self) -> None:
        """Reload when the file changed (another process, `kb keys`); forget verifications."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._records, self._stamp, self._verified = {}, None, {}
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        self._records = _parse(self.path)
        self._stamp = stamp
        self._verified = {}

    def _writing(self) -> _Writing:
        return _Writing(self)


class _Writing:
    """Read-modify-write of the keys file under a file lock, written atomically, 0600."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self.lock = FileLock(str(store.path) + ".lock")

    def __enter__(self) -> dict[str, KeyRecord]:
        self.store.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock.acquire(timeout=10)
        self.records = _parse(self.store.path) if self.store.path.exists() else {}
        return self.records

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                body = {"keys": [asdict(r) for r in self.records.values()]}
                write_atomic(self.store.path, json.dumps(body, indent=2))
                os.chmod(self.store.path, 0o600)
                with self.store._lock:
                    self.store._stamp = None  # reload on next use
        finally:
            self.lock.release()


def _parse(path: Path) -> dict[str, KeyRecord]:
    try:
        data = json.loads(path.read_text("utf-8"))
        records = [KeyRecord(**item) for item in data["keys"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SettingsError(
            f"The keys file {path} cannot be read ({type(exc).__name__}): fix or remove it."
        ) from exc
    return {record.id: record for record in records}
