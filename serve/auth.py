"""API keys and roles.

A key is a random token (``pk_`` + 43 URL-safe characters, 256 bits) handed to a person or a system
once; the server keeps only its SHA-256 (a fast hash is enough for a random 256-bit secret: there
is nothing to guess from it) and compares hashes in constant time. Each key carries roles:

- ``operator``: ``/v1/suggest``, ``/v1/suggest/batch``, ``/v1/taxonomy``, ``WebSocket /v1/live``,
  ``POST /v1/feedback``;
- ``analyst``: ``GET /v1/stats``, ``GET /v1/model``;
- ``admin``: everything, ``GET /v1/feedback/export`` and model management included.

Keys come from a JSON file (``PODSKAZKA_API_KEYS_FILE``) and/or the environment
(``PODSKAZKA_API_KEYS``, the same list as JSON), both ``{"id", "sha256", "roles"}`` entries:
``podskazka keys add --file FILE --id NAME --role operator`` writes one and prints the key once.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from model.errors import ConfigError
from serve.deps import Service, ServiceDep

if TYPE_CHECKING:
    from serve.settings import Settings

ROLES = ("operator", "analyst", "admin")
KEY_PREFIX = "pk_"
_HEX = set("0123456789abcdef")


def new_key() -> str:
    """A fresh random API key (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The form a key is stored in: SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id and roles (``admin`` holds every role)."""

    key_id: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        """Whether the caller may act as ``role``."""
        return role in self.roles or "admin" in self.roles


LOCAL = Principal("insecure-local", frozenset({"admin"}))


@dataclass(frozen=True)
class _Entry:
    key_id: str
    sha256: str
    roles: frozenset[str]


def _entry(raw: Any, where: str) -> _Entry:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: each key is an object {{'id', 'sha256', 'roles'}}, got {type(raw).__name__}")
    key_id, digest, roles = raw.get("id"), str(raw.get("sha256", "")).lower(), raw.get("roles")
    if not isinstance(key_id, str) or not key_id:
        raise ConfigError(f"{where}: a key has no 'id'; give each key a name (who holds it)")
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise ConfigError(
            f"{where}: key {key_id!r} has no valid 'sha256' (64 hex digits); "
            "store hashes, never keys: use 'podskazka keys add'"
        )
    if not isinstance(roles, list) or not roles or not set(roles) <= set(ROLES):
        raise ConfigError(f"{where}: key {key_id!r} has roles {roles!r}; use a non-empty list of {list(ROLES)}")
    return _Entry(key_id, digest, frozenset(roles))


class KeyRing:
    """The accepted keys, by hash."""

    def __init__(self, entries: Iterable[_Entry] = ()) -> None:
        self.entries = tuple(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def find(self, key: str) -> Principal | None:
        """The principal of ``key``, or None. Every stored hash is compared (constant time each, no
        early exit), so the time taken does not say which or how many keys matched."""
        digest = hash_key(key)
        found = None
        for entry in self.entries:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return Principal(found.key_id, found.roles) if found else None


def read_key_file(path: Path) -> list[Any]:
    """The raw entries of a key file (``{"keys": [...]}``, JSON not yet checked); a missing file is an empty list."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: cannot read the API key file ({exc}); fix it or point PODSKAZKA_API_KEYS_FILE at another"
        ) from exc
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list):
        raise ConfigError(f'{path}: an API key file is {{"keys": [{{"id", "sha256", "roles"}}]}}')
    return keys


def load_keys(settings: Settings) -> KeyRing:
    """The keys of ``settings.api_keys_file`` and ``settings.api_keys``; a bad entry stops the start."""
    entries: list[_Entry] = []
    if settings.api_keys_file is not None:
        if not Path(settings.api_keys_file).exists():
            raise ConfigError(
                f"PODSKAZKA_API_KEYS_FILE={settings.api_keys_file} does not exist; create it with "
                "'podskazka keys add --file ...'"
            )
        entries += [_entry(raw, str(settings.api_keys_file)) for raw in read_key_file(Path(settings.api_keys_file))]
    entries += [_entry(raw, "PODSKAZKA_API_KEYS") for raw in settings.api_keys]
    return KeyRing(entries)


def add_key(path: Path, key_id: str, roles: list[str]) -> str:
    """Add a new key to the key file at ``path`` (created 0600 if missing); returns the key, which is
    stored nowhere else: hand it over now."""
    keys = read_key_file(path)
    if any(k.get("id") == key_id for k in keys):
        raise ConfigError(f"{path}: a key named {key_id!r} exists; choose another id or remove it from the file")
    key = new_key()
    entry = {"id": key_id, "sha256": hash_key(key), "roles": sorted(set(roles))}
    _entry(entry, str(path))
    _write_private(path, json.dumps({"keys": keys + [entry]}, ensure_ascii=False, indent=2) + "\n")
    return key


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def ensure_dev_key(keys_file: Path) -> tuple[Path, str | None]:
    """For a loopback server with no keys configured: a local key file holding one ``admin`` key,
    made on the first run. The key itself goes to ``dev-key.txt`` beside it (0600) so it can be read
    again. Returns (the key's text file, the key when it was just made, else None)."""
    key_path = keys_file.with_name("dev-key.txt")
    if keys_file.exists() and key_path.exists():
        return key_path, None
    keys_file.unlink(missing_ok=True)
    key = add_key(keys_file, "dev", ["admin"])
    _write_private(key_path, key + "\n")
    return key_path, key


def is_loopback(host: str) -> bool:
    """``host`` binds only the local machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- the HTTP side ---------------------------------------------------------------------------

bearer_scheme = HTTPBearer(auto_error=False, description="an API key: 'Authorization: Bearer pk_…'")


def unauthorized(message: str) -> HTTPException:
    """A 401 that asks for a bearer key."""
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def principal_for(service: Service, key: str | None) -> Principal:
    """Check a presented key against the service's keys; raises 401 with what to do."""
    if service.settings.insecure_local:
        return LOCAL
    ring = service.keys
    if not len(ring):
        raise unauthorized(
            "this server has no API keys configured; set PODSKAZKA_API_KEYS_FILE "
            "(podskazka keys add), or run on loopback with 'podskazka serve' to get a dev key"
        )
    if not key:
        raise unauthorized("send an API key: 'Authorization: Bearer pk_…'")
    principal = ring.find(key)
    if principal is None:
        raise unauthorized("the API key is not valid; check it, or ask an admin for a new one")
    return principal


def require(role: str) -> Callable[[Service, HTTPAuthorizationCredentials | None], Principal]:
    """A dependency that lets through callers holding ``role`` (401 without a valid key, 403 without
    the role) and gives the route the caller's :class:`Principal`."""

    def check(
        service: ServiceDep, credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme)
    ) -> Principal:
        principal = principal_for(service, credentials.credentials if credentials else None)
        if not principal.has(role):
            raise HTTPException(
                403,
                f"the key {principal.key_id!r} lacks the role {role!r} "
                f"(it has {sorted(principal.roles)}); use a key with that role",
            )
        return principal

    return check


OperatorDep = Annotated[Principal, Depends(require("operator"))]
AnalystDep = Annotated[Principal, Depends(require("analyst"))]
AdminDep = Annotated[Principal, Depends(require("admin"))]
