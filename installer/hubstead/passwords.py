"""Hubstead's password store: one JSON file of argon2 hashes, root-only.

The hub reads it on every login, so a password set from the shell works at once
without a hub restart. Hashes go through the passlib API (the maintained ``libpass``
distribution); bcrypt hashes from elsewhere still verify and are upgraded to argon2
on the next successful login.
"""

import json
import secrets
import string
from pathlib import Path

from passlib.context import CryptContext

from . import paths
from .files import locked, write_atomic

_context = CryptContext(schemes=["argon2", "bcrypt"], deprecated="auto")
# bcrypt refuses (raises) on more than 72 bytes; treat such a login as a wrong password.
_BCRYPT_MAX_BYTES = 72
MIN_LENGTH = 8
_GENERATED_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "Il1O0o")


class WeakPassword(ValueError):
    """A password too short to accept."""


def generate() -> str:
    """A random password that is easy to read aloud and type (no look-alike characters)."""
    return "".join(secrets.choice(_GENERATED_ALPHABET) for _ in range(14))


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password too short: use at least {MIN_LENGTH} characters")


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

    def set(self, name: str, password: str) -> None:
        check_strength(password)
        with locked(self._lock):
            entries = self._read()
            entries[name] = {"hash": _context.hash(password)}
            self._write(entries)

    def remove(self, name: str) -> None:
        with locked(self._lock):
            entries = self._read()
            if entries.pop(name, None) is not None:
                self._write(entries)

    def verify(self, name: str, password: str) -> bool:
        entry = self._read().get(name)
        if entry is None:
            # Spend the same time as a real check, so timing doesn't tell who exists.
            _context.dummy_verify()
            return False
        stored = entry["hash"]
        if _context.identify(stored) == "bcrypt" and len(password.encode()) > _BCRYPT_MAX_BYTES:
            return False
        ok, new_hash = _context.verify_and_update(password, stored)
        if ok and new_hash:
            with locked(self._lock):
                entries = self._read()
                if entries.get(name, {}).get("hash") == stored:
                    entries[name]["hash"] = new_hash
                    self._write(entries)
        return ok
