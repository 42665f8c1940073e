"""
API keys: which tenant a bearer key belongs to.

Keys are never stored, only their SHA-256 digests. A keys file is JSON lines,
``{"tenant": "acme", "sha256": "<64 hex digits>"}``; the environment variable
``PRELOAD_API_KEYS`` holds the same as ``tenant:digest`` pairs separated by commas.
``preload keys new --tenant acme --keys keys.jsonl`` makes a key, prints it once and
appends its digest; ``preload keys revoke`` takes keys out of the file (rewritten
atomically). A server re-reads its keys file when it changes
(``server.keys_reload_s``, :mod:`._keys_watch`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .._errors import InputError
from .._files import replacing
from .._sessions import json_line

__all__ = [
    "NAME_PATTERN",
    "KeyRing",
    "append_key",
    "digest",
    "key_entries",
    "new_key",
    "revoke_keys",
]

#: What a tenant name and a session id may be: what fits in a URL path and a Redis key
#: as it is.
NAME_PATTERN = r"^[A-Za-z0-9._~-]{1,128}$"

_NAME = re.compile(NAME_PATTERN)
_DIGEST = re.compile(r"^[0-9a-f]{64}$")

logger = logging.getLogger(__name__)

#: The largest keys file read, in bytes.
MAX_KEYS_FILE_BYTES = 10_000_000


def digest(key: str) -> str:
    """
    The SHA-256 digest of a key, in hex: what a keys file stores.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """
    A new random API key (256 bits, URL-safe).
    """
    return "pk_" + secrets.token_urlsafe(32)


class KeyRing:
    """
    The tenants of the keys a server accepts.

    Args:
        digests: Each key's SHA-256 digest (hex) and its tenant.

    Raises:
        ValueError: A digest is not 64 hex digits, or a tenant name is not
            :data:`NAME_PATTERN`.
    """

    def __init__(self, digests: Mapping[str, str]) -> None:
        for hexdigest, tenant in digests.items():
            _check_digest(hexdigest)
            _check_tenant(tenant)
        self._tenants = dict(digests)

    @property
    def tenants(self) -> list[str]:
        """
        The tenants, sorted.
        """
        return sorted(set(self._tenants.values()))

    def __len__(self) -> int:
        """
        The number of keys.
        """
        return len(self._tenants)

    def tenant_of(self, key: str) -> str | None:
        """
        The tenant of a presented key, or None.
        """
        # A lookup by digest: what an attacker can time is the digest of their guess.
        return self._tenants.get(digest(key))

    @classmethod
    def from_file(cls, path: str | Path) -> KeyRing:
        """
        Read a keys file.

        Raises:
            InputError: The file is missing, too large, or a line is not a key entry
                (the message names the line).
        """
        path = Path(path)
        digests = dict(key_entries(path))
        if not digests:
            raise InputError(path, None, "holds no key; add one with 'preload keys new'")
        return cls(digests)

    @classmethod
    def from_env(cls, value: str) -> KeyRing:
        """
        Keys from ``PRELOAD_API_KEYS``: ``tenant:sha256`` pairs separated by commas.

        Raises:
            ValueError: A pair is malformed (the message names it by position).
        """
        digests: dict[str, str] = {}
        for i, pair in enumerate(p.strip() for p in value.split(",")):
            if not pair:
                continue
            tenant, sep, hexdigest = pair.partition(":")
            if not sep:
                raise ValueError(f"PRELOAD_API_KEYS pair {i + 1}: expected tenant:sha256")
            try:
                _check_tenant(tenant)
                _check_digest(hexdigest)
            except ValueError as exc:
                raise ValueError(f"PRELOAD_API_KEYS pair {i + 1}: {exc}") from None
            digests[hexdigest] = tenant
        if not digests:
            raise ValueError("PRELOAD_API_KEYS holds no key")
        return cls(digests)


def append_key(path: str | Path, tenant: str) -> str:
    """
    Make a key for ``tenant``, append its digest to the keys file, and return it. A
    change of the file that is under way (another ``preload keys new`` or ``revoke``)
    is waited for.
    """
    _check_tenant(tenant)
    key = new_key()
    with _locked(Path(path), "a") as handle:
        handle.write(json.dumps({"tenant": tenant, "sha256": digest(key)}) + "\n")
    return key


def revoke_keys(path: str | Path, *, tenant: str | None = None, sha256: str | None = None) -> int:
    """
    Take out of the keys file every key of ``tenant``, or the key whose digest is
    ``sha256`` (one of the two): the file is rewritten atomically, with its mode, so
    that a server reading it meanwhile reads the old file or the new one whole, under
    the lock :func:`append_key` takes too (neither loses the other's change). The
    number of keys taken out.

    Raises:
        InputError: The file cannot be read or written, or a line is not a key entry.
        ValueError: Both or neither of ``tenant`` and ``sha256`` are given, no key
            matches, or none would be left (a server does not start on a file without
            keys: add the new key first, then revoke the old one).
    """
    if (tenant is None) == (sha256 is None):
        raise ValueError("revoke by tenant or by sha256: give one of the two")
    path = Path(path)
    try:
        with _locked(path, "r"):
            return _rewrite_without(path, tenant, sha256)
    except OSError as exc:  # opening the file to lock it
        raise InputError(path, None, f"cannot read: {exc.strerror or exc}") from None


def _rewrite_without(path: Path, tenant: str | None, sha256: str | None) -> int:
    """
    :func:`revoke_keys`'s work, under the file's lock.
    """
    entries = key_entries(path)
    kept = [(h, t) for h, t in entries if t != tenant and h != sha256]
    revoked = len(entries) - len(kept)
    if not revoked:
        named = f"tenant {tenant!r}" if tenant is not None else f"sha256 {sha256!r}"
        raise ValueError(f"{path}: no key of {named}")
    if not kept:
        raise ValueError(
            f"{path}: revoking would leave no key, and a server does not start without "
            "one; add the new key first ('preload keys new'), then revoke"
        )
    text = "".join(json.dumps({"tenant": t, "sha256": h}) + "\n" for h, t in kept)
    try:
        with replacing(path, keep_mode=True) as handle:
            handle.write(text)
    except OSError as exc:
        raise InputError(path, None, f"cannot write: {exc.strerror or exc}") from None
    return revoked


@contextmanager
def _locked(path: Path, mode: str) -> Iterator[IO[str]]:
    """
    The keys file opened in ``mode``, under an exclusive lock (``flock``) that every
    change of :func:`append_key` and :func:`revoke_keys` takes, so that two at once
    lose neither. A revocation replaces the file: a change that waited for it opens the
    file that is there once the lock is its own.
    """
    while True:
        handle = path.open(mode, encoding="utf-8")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                _waiting(path)
                fcntl.flock(handle, fcntl.LOCK_EX)
            if os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino:
                yield handle
                return
        finally:
            handle.close()  # and the lock with it


def _waiting(path: Path) -> None:
    """
    Said when a change of the keys file waits for another's lock.
    """
    logger.info("keys file %s: waiting for another change of it to end", path)


def key_entries(path: str | Path) -> list[tuple[str, str]]:
    """
    The keys file's entries in order, as (digest, tenant).

    Raises:
        InputError: The file is missing, too large, or a line is not a key entry (the
            message names the line).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_KEYS_FILE_BYTES:
            raise InputError(path, None, f"{size:,} bytes, above {MAX_KEYS_FILE_BYTES:,}")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(path, None, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(path, None, "not UTF-8 text") from None
    entries: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = json_line(path, number, line)
        if not isinstance(row, dict) or set(row) != {"tenant", "sha256"}:
            raise InputError(
                path, number, 'expected {"tenant": "...", "sha256": "<64 hex digits>"}'
            )
        try:
            _check_tenant(row["tenant"])
            _check_digest(row["sha256"])
        except ValueError as exc:
            raise InputError(path, number, str(exc)) from None
        entries.append((row["sha256"], row["tenant"]))
    return entries


def _check_tenant(tenant: object) -> None:
    if not isinstance(tenant, str) or not _NAME.match(tenant):
        raise ValueError(
            f"tenant {tenant!r} must be 1 to 128 letters, digits or . _ ~ - characters"
        )


def _check_digest(hexdigest: object) -> None:
    if not isinstance(hexdigest, str) or not _DIGEST.match(hexdigest):
        raise ValueError(
            "sha256 must be the key's SHA-256 digest as 64 lowercase hex digits "
            "(never the key itself)"
        )
