"""The matching-port session key of the DR drill: its nodes accept it, its integrity check logs on
with it (role admin: the book checksums are SNAPSHOT_REQUESTs), as the runbook does on AWS."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from meridian.protocol import SessionRole
from meridian.session_auth import (
    KEY_FILE_ENV,
    KEY_SECRET_ENV,
    SessionKey,
    new_key,
    write_key_file,
)


@functools.cache
def _directory() -> Path:
    return Path(tempfile.mkdtemp(prefix="meridian-drill-keys-"))


@functools.cache
def orders_key() -> SessionKey:
    """The key the drill's traders log on with (role orders)."""
    return new_key("drill-orders", SessionRole.ORDERS)


@functools.cache
def admin_key() -> SessionKey:
    """The key the integrity check and the drill's own book checks log on with (role admin)."""
    return new_key("drill-admin", SessionRole.ADMIN)


@functools.cache
def admin_key_file() -> Path:
    """The admin key in a file only this user can read (one per drill process)."""
    path = _directory() / "admin-key.json"
    write_key_file(path, [admin_key()])
    return path


@functools.cache
def node_keys_file() -> Path:
    """What the drill's nodes accept: the admin key and the traders' key."""
    path = _directory() / "node-keys.json"
    write_key_file(path, [admin_key(), orders_key()])
    return path


@functools.cache
def orders_key_file() -> Path:
    """The traders' key in a file only this user can read (the order API's, in the drill)."""
    path = _directory() / "orders-key.json"
    write_key_file(path, [orders_key()])
    return path


def orders_environment() -> dict[str, str]:
    """What the order API's environment needs to log on with the drill's traders' key."""
    return {KEY_SECRET_ENV: "", KEY_FILE_ENV: str(orders_key_file())}


def integrity_environment() -> dict[str, str]:
    """What the integrity function's environment needs to log on with the drill's key."""
    return {KEY_SECRET_ENV: "", KEY_FILE_ENV: str(admin_key_file())}
