"""Hubstead's password store: one JSON file of argon2 hashes, root-only.

The hub reads it on every login, so a password set from the shell works at once
without a hub restart. Hashes go through the passlib API (the maintained ``libpass``
distribution); bcrypt hashes from elsewhere still verify and are upgraded to argon2
on the next successful login.
"""

import json
import secrets
import string
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from passlib.context import CryptContext

from hubstead.core import paths
from hubstead.core.errors import HubsteadError
from hubstead.core.files import locked, write_atomic

# argon2id at OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): ~0.03 CPU-s a
# check, so a class of 100 logs in within seconds on two cores. Hashes made with other
# parameters (passlib's default: 64 MiB, 3 passes, 4 lanes: ~0.2 CPU-s) still verify
# and are re-hashed with these at the next successful login.
ARGON2_PARAMETERS = {"memory_cost": 19456, "rounds": 2, "parallelism": 1}
_context = CryptContext(
    schemes=["argon2", "bcrypt"], deprecated="auto",
    **{f"argon2__{name}": value for name, value in ARGON2_PARAMETERS.items()},
)
# bcrypt refuses (raises) on more than 72 bytes; treat such a login as a wrong password.
_BCRYPT_MAX_BYTES = 72
# Short enough for the documented `--admin teacher:S3cret`; students choose their own anyway.
MIN_LENGTH = 6
# Wrong passwords in a row, by (store, name, browser, hash): the checking process's memory.
_FAILURES: dict[tuple[str, str, str | None, str], int] = {}
_FAILURES_LOCK = threading.Lock()
_GENERATED_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "Il1O0o")


class WeakPassword(HubsteadError, ValueError):
    """A password too short to accept."""


def generate() -> str:
    """A random password that is easy to read aloud and type (no look-alike characters)."""
    return "".join(secrets.choice(_GENERATED_ALPHABET) for _ in range(14))


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password too short: use at least {MIN_LENGTH} characters")


@dataclass(frozen=True)
class Lockout:
    """After ``max_failures`` wrong passwords in a row, refuse even the right one for
    ``seconds`` (0 failures: never lock)."""

    max_failures: int = 5
    seconds: int = 600


@dataclass(frozen=True)
class Account:
    name: str
    must_change: bool
    locked_until: float  # epoch seconds; 0: not locked

    @property
    def locked(self) -> bool:
        return self.locked_until > time.time()


class PasswordStore:
    def __init__(self, path: Path = paths.PASSWORD_STORE):
        self.path = Path(path)
        self._lock = self.path.with_name(self.path.name + ".lock")

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def _write(self, entries: dict) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(entries, indent=1, sort_keys=True) + "\n")

    def has(self, name: str) -> bool:
        return name in self._read()

    def names(self) -> list[str]:
        return sorted(self._read())

    def set(self, name: str, password: str, must_change: bool = False) -> None:
        """Set the password (clears failures and any lock); ``must_change``: the user
        must choose a new one at their next login."""
        check_strength(password)
        hashed = _context.hash(password)
        with locked(self._lock):
            entries = self._read()
            entries[name] = {"hash": hashed, "must_change": must_change}
            self._write(entries)

    def replace(self, entries: dict) -> None:
        """Put back a whole store as it was saved (``hubstead restore``)."""
        with locked(self._lock):
            self._write(entries)

    def account(self, name: str) -> Account | None:
        return self.accounts().get(name)

    def accounts(self) -> dict[str, Account]:
        """Every account, from one read of the store."""
        return {name: Account(name, entry.get("must_change", False), entry.get("locked_until", 0))
                for name, entry in self._read().items()}

    def unlock(self, name: str) -> bool:
        """Clear failures and the lock; False if there is no such account."""
        with locked(self._lock):
            entries = self._read()
            if name not in entries:
                return False
            for counter in ("failures", "locked_until", "devices"):
                entries[name].pop(counter, None)
            self._write(entries)
        return True

    def remove(self, name: str) -> None:
        with locked(self._lock):
            entries = self._read()
            if entries.pop(name, None) is not None:
                self._write(entries)

    def verify(self, name: str, password: str, lockout: Lockout | None = None, device: str | None = None) -> bool:
        """True for the right password of an account that is not locked. With
        ``lockout``, each attempt counts as a failure until it proves right, and
        ``max_failures`` of them in a row lock the account. ``device``: a browser this
        user logged in with before has failures and a lock of its own, so strangers
        guessing can lock the account for everyone else but not for its owner.

        Failures are counted in this process's memory (the hub's, which checks every
        login): a wrong password writes nothing, so strangers can't make the machine
        write its disk at will; the store is written when an account becomes locked,
        and on a success that changes it. Every attempt runs one hash check, known
        name or not, locked or not, so the time of an answer tells none of these."""
        if not lockout:
            entry = self._read().get(name)
            if entry is None:
                _context.dummy_verify()
                return False
            return self._check(name, password, entry["hash"], None, False)
        with _FAILURES_LOCK:
            # Counted before the (slow) check: guesses sent all at once can't all be
            # checked before the first of them locks the account.
            entry = self._read().get(name)
            if entry is None:
                refused, stored = True, None
            else:
                stored = entry["hash"]
                key = (str(self.path), name, device, stored)  # a new password starts afresh
                counters = entry.get("devices", {}).get(device, {}) if device else entry
                refused = counters.get("locked_until", 0) > time.time()
                if not refused:
                    _FAILURES[key] = _FAILURES.get(key, 0) + 1
                    if lockout.max_failures and _FAILURES[key] >= lockout.max_failures:
                        del _FAILURES[key]
                        self._lock_account(name, device, time.time() + lockout.seconds)
        if refused or stored is None:
            _context.dummy_verify()  # as long as a real check: the answer's time tells nothing
            return False
        ok = self._check(name, password, stored, device, True)
        if ok:
            with _FAILURES_LOCK:
                _FAILURES.pop(key, None)
        return ok

    def _lock_account(self, name: str, device: str | None, until: float) -> None:
        with locked(self._lock):
            entries = self._read()
            current = entries.get(name)
            if current is None:
                return
            counters = current.setdefault("devices", {}).setdefault(device, {}) if device else current
            counters["locked_until"] = until
            self._write(entries)

    def _check(self, name: str, password: str, stored: str, device: str | None, clear_lock: bool) -> bool:
        """The hash check; on a success, an upgraded hash and (``clear_lock``) an
        expired lock of this browser or account are written, when there is one."""
        if _context.identify(stored) == "bcrypt" and len(password.encode()) > _BCRYPT_MAX_BYTES:
            return False
        ok, new_hash = _context.verify_and_update(password, stored)
        if not ok:
            return False
        with locked(self._lock):
            entries = self._read()
            current = entries.get(name)
            if current is None or current["hash"] != stored:
                return False  # changed meanwhile: take no decision on stale data
            changed = False
            if clear_lock:
                if device:
                    changed = current.get("devices", {}).pop(device, None) is not None
                    if "devices" in current and not current["devices"]:
                        current.pop("devices")
                else:
                    changed = any([current.pop(k, None) is not None for k in ("failures", "locked_until")])
            if new_hash:
                current["hash"], changed = new_hash, True
            if changed:
                self._write(entries)
        return True
