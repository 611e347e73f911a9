"""Session keys: parsing, the HMAC, what each role may do, and where a client finds its key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meridian.protocol import SessionRole
from meridian.session_auth import (
    KEY_FILE_ENV,
    KEY_SECRET_ENV,
    PERM_ADMIN,
    PERM_TRADE,
    SessionKeyError,
    credential_from_environment,
    load_keys_file,
    load_secret_keys,
    new_key,
    parse_key,
    parse_keys,
    write_key_file,
)

SECRET = "s" * 40


def test_the_mac_is_hmac_sha256_over_nonce_and_key_id() -> None:
    import hashlib  # noqa: PLC0415
    import hmac  # noqa: PLC0415

    key = parse_key({"key_id": "orders", "role": "orders", "secret": SECRET})
    nonce = bytes(range(32))
    assert key.mac(nonce) == hmac.new(SECRET.encode(), nonce + b"orders", hashlib.sha256).hexdigest()
    assert key.mac(nonce) != key.mac(bytes(32))
    assert SECRET not in repr(key)


def test_roles_map_to_permissions_and_accounts() -> None:
    orders = new_key("o", SessionRole.ORDERS)
    admin = new_key("a", SessionRole.ADMIN)
    alice = new_key("k", SessionRole.ACCOUNT, "alice")
    assert (orders.permissions, orders.account_field) == (PERM_TRADE, None)
    assert (admin.permissions, admin.account_field) == (PERM_ADMIN, None)
    assert (alice.permissions, alice.account_field) == (PERM_TRADE, b"alice" + bytes(11))


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ({"role": "orders", "secret": SECRET}, "key_id"),
        ({"key_id": "x" * 33, "role": "orders", "secret": SECRET}, "key_id"),
        ({"key_id": "k", "role": "root", "secret": SECRET}, "role"),
        ({"key_id": "k", "role": "orders", "secret": "short"}, "at least 32"),
        ({"key_id": "k", "role": "account", "secret": SECRET}, "names its account"),
        ({"key_id": "k", "role": "orders", "secret": SECRET, "account": "bob"}, "names its account"),
        ({"key_id": "k", "role": "account", "secret": SECRET, "account": "x" * 17}, "printable"),
        ([], "JSON object"),
    ],
)
def test_bad_key_documents_are_refused_saying_why(document: Any, why: str) -> None:
    with pytest.raises(SessionKeyError, match=why):
        parse_key(document)


def test_key_files_round_trip_and_ids_are_unique(tmp_path: Path) -> None:
    keys = [new_key("o", SessionRole.ORDERS), new_key("a", SessionRole.ADMIN)]
    path = tmp_path / "keys.json"
    write_key_file(path, keys)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_keys_file(path) == keys
    twice = json.dumps({"keys": [keys[0].document(), keys[0].document()]})
    with pytest.raises(SessionKeyError, match="twice"):
        parse_keys(twice)
    with pytest.raises(SessionKeyError, match="cannot read"):
        load_keys_file(tmp_path / "missing.json")


@mock_aws
def test_keys_come_from_secrets_manager_and_a_client_reads_its_one_key() -> None:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    orders = new_key("orders", SessionRole.ORDERS)
    admin = new_key("admin", SessionRole.ADMIN)
    arns = [
        client.create_secret(Name=f"meridian/{k.key_id}", SecretString=json.dumps(k.document()))["ARN"]
        for k in (orders, admin)
    ]
    assert load_secret_keys(arns, client) == [orders, admin]
    environ = {KEY_SECRET_ENV: arns[0]}
    assert credential_from_environment(environ, lambda: client) == orders
    assert credential_from_environment({}) is None


def test_a_client_key_file_must_hold_one_key(tmp_path: Path) -> None:
    path = tmp_path / "two.json"
    write_key_file(path, [new_key("o", SessionRole.ORDERS), new_key("a", SessionRole.ADMIN)])
    with pytest.raises(SessionKeyError, match="exactly one key"):
        credential_from_environment({KEY_FILE_ENV: str(path)})
