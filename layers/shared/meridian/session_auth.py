"""Session logon on the matching port: one key per client role, HMAC-SHA256 over the node's nonce.

On connect the node sends ``LogonChallenge`` (32 random bytes, hex). The client's first frame must be
``Logon(key_id, mac)`` with ``mac = HMAC-SHA256(secret, nonce || key_id)`` (lowercase hex); the node
answers ``LogonAck(role, account)`` or ``ProtocolReject(LOGON_FAILED)`` and closes. The nonce is
fresh per connection, so a recorded logon cannot be replayed on another one. What a session may do
follows from its key's role (``SessionRole``):

* ``orders`` (the order API and the order flow): orders, stop orders, cancels and replaces for any
  account; never HALT / RESUME / END_OF_DAY or SNAPSHOT_REQUEST.
* ``admin`` (runbooks, operators): HALT / RESUME / END_OF_DAY and SNAPSHOT_REQUEST; no orders.
* ``account`` (an optional per-account trading key): orders, cancels and replaces whose account
  field is the key's account; nothing else.

A heartbeat is open to every session. Keys are JSON documents, one per Secrets Manager secret (or a
file with ``{"keys": [...]}`` for the node locally)::

    {"key_id": "orders", "role": "orders", "secret": "<32 or more characters>", "account": ""}

(the template's secrets generate ``secret`` with Secrets Manager's GenerateSecretString; the HMAC
key is its UTF-8 bytes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meridian.domain import ACCOUNT_LEN
from meridian.protocol import SessionRole

KEY_ID_LEN = 32
NONCE_BYTES = 32
MIN_SECRET_BYTES = 32
KEY_FILE_ENV = "MERIDIAN_HOTPATH_KEY_FILE"  # a local file holding one key (make run, tests)
KEY_SECRET_ENV = "MERIDIAN_HOTPATH_KEY_SECRET_ARN"  # noqa: S105 - the name of a variable holding an ARN

# What each role may send, as the native core's permission bits (engine/native.pyx PERM_*).
PERM_TRADE = 1
PERM_ADMIN = 2
PERM_ALL = PERM_TRADE | PERM_ADMIN
ROLE_PERMISSIONS = {
    SessionRole.ORDERS: PERM_TRADE,
    SessionRole.ADMIN: PERM_ADMIN,
    SessionRole.ACCOUNT: PERM_TRADE,
}
_KEY_ID = re.compile(r"[A-Za-z0-9._:/-]{1,32}")
_ACCOUNT = re.compile(rf"[\x21-\x7e]{{1,{ACCOUNT_LEN}}}")


class SessionKeyError(ValueError):
    """A key document that cannot be used (the message says which field and why)."""


@dataclass(frozen=True, slots=True)
class SessionKey:
    key_id: str
    secret: bytes
    role: SessionRole
    account: str = ""  # the one account an ACCOUNT key trades for

    def __repr__(self) -> str:  # never the secret, not even in a traceback
        return f"SessionKey({self.key_id!r}, role={self.role.name}, account={self.account!r})"

    def mac(self, nonce: bytes) -> str:
        return hmac.new(self.secret, nonce + self.key_id.encode("ascii"), hashlib.sha256).hexdigest()

    @property
    def fingerprint(self) -> str:
        """Tells keys apart (a pooled session is reused only with the very same key) without
        revealing the secret."""
        return hashlib.sha256(b"meridian-pool\0" + self.key_id.encode() + b"\0" + self.secret).hexdigest()

    @property
    def permissions(self) -> int:
        return ROLE_PERMISSIONS[self.role]

    @property
    def account_field(self) -> bytes | None:
        """The account as it stands in a frame (NUL-padded), or None when any account goes."""
        if self.role is not SessionRole.ACCOUNT:
            return None
        return self.account.encode("ascii").ljust(ACCOUNT_LEN, b"\0")

    def document(self) -> dict[str, str]:
        return {
            "key_id": self.key_id,
            "role": self.role.name.lower(),
            "secret": self.secret.decode("utf-8"),
            "account": self.account,
        }


def new_key(key_id: str, role: SessionRole, account: str = "") -> SessionKey:
    """A fresh random key (local platform, tests)."""
    return parse_key(
        {"key_id": key_id, "role": role.name.lower(), "secret": secrets.token_hex(32), "account": account}
    )


def parse_key(document: Any) -> SessionKey:
    if not isinstance(document, Mapping):
        raise SessionKeyError("a key is a JSON object with key_id, role, secret (and account)")
    key_id, role_name = document.get("key_id"), document.get("role")
    secret_text, account = document.get("secret"), document.get("account") or ""
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise SessionKeyError(f"key_id must be 1-{KEY_ID_LEN} characters of [A-Za-z0-9._:/-]")
    try:
        role = SessionRole[str(role_name).upper()]
    except KeyError:
        raise SessionKeyError(f"key {key_id}: role must be orders, admin or account") from None
    secret = secret_text.encode("utf-8") if isinstance(secret_text, str) else b""
    if len(secret) < MIN_SECRET_BYTES:
        raise SessionKeyError(f"key {key_id}: secret must be at least {MIN_SECRET_BYTES} characters")
    if not isinstance(account, str) or (role is SessionRole.ACCOUNT) != bool(account):
        raise SessionKeyError(f"key {key_id}: an account key names its account, other roles none")
    if account and not _ACCOUNT.fullmatch(account):
        raise SessionKeyError(f"key {key_id}: account must be 1-{ACCOUNT_LEN} printable ASCII characters")
    return SessionKey(key_id, secret, role, account)


def parse_keys(text: str) -> list[SessionKey]:
    """One key document, or ``{"keys": [documents]}``; key ids must be unique."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SessionKeyError(f"keys are JSON: {exc}") from None
    documents = raw.get("keys") if isinstance(raw, dict) and "keys" in raw else [raw]
    if not isinstance(documents, list) or not documents:
        raise SessionKeyError('"keys" must be a non-empty list')
    keys = [parse_key(document) for document in documents]
    if len({key.key_id for key in keys}) != len(keys):
        raise SessionKeyError("a key id is listed twice")
    return keys


def load_keys_file(path: Path) -> list[SessionKey]:
    try:
        return parse_keys(path.read_text())
    except OSError as exc:
        raise SessionKeyError(f"cannot read keys from {path}: {exc}") from None


def load_secret_keys(arns: Iterable[str], secretsmanager: Any) -> list[SessionKey]:
    """The keys held by Secrets Manager secrets (one key document, or a list, per secret)."""
    keys: list[SessionKey] = []
    for arn in arns:
        value = secretsmanager.get_secret_value(SecretId=arn)["SecretString"]
        keys += parse_keys(value)
    if len({key.key_id for key in keys}) != len(keys):
        raise SessionKeyError("a key id is held by two secrets")
    return keys


def write_key_file(path: Path, keys: Iterable[SessionKey]) -> None:
    """Write keys readable by the owner only (the local platform's key files)."""
    documents = [key.document() for key in keys]
    body = json.dumps(documents[0] if len(documents) == 1 else {"keys": documents})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(body)


_cached: dict[tuple[str, str], SessionKey] = {}
_cache_lock = threading.Lock()


def credential_from_environment(
    environ: Mapping[str, str] | None = None, secretsmanager: Callable[[], Any] | None = None
) -> SessionKey | None:
    """The key this process logs on with: ``MERIDIAN_HOTPATH_KEY_SECRET_ARN`` (read once per
    container) or ``MERIDIAN_HOTPATH_KEY_FILE``; None when neither is set (the node is open)."""
    env = os.environ if environ is None else environ
    arn, path = env.get(KEY_SECRET_ENV, ""), env.get(KEY_FILE_ENV, "")
    if not arn and not path:
        return None
    source = ("arn", arn) if arn else ("file", path)
    with _cache_lock:
        cached = _cached.get(source)
    if cached is not None:
        return cached
    if arn:
        if secretsmanager is None:
            from meridian import aws_clients  # noqa: PLC0415 - boto3 only where a secret is used

            client = aws_clients.client("secretsmanager")
        else:
            client = secretsmanager()
        keys = load_secret_keys([arn], client)
    else:
        keys = load_keys_file(Path(path))
    if len(keys) != 1:
        raise SessionKeyError(f"{source[1]} must hold exactly one key for a client")
    with _cache_lock:
        _cached[source] = keys[0]
    return keys[0]
