"""The node's command line: exactly one source of session keys, each loading what it names."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from meridian.protocol import SessionRole
from meridian.session_auth import new_key, write_key_file
from meridian_hotpath.cli import _non_negative_float, _session_keys, build_parser


def _serve(*flags: str) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = build_parser()
    return parser, parser.parse_args(["serve", "--port", "0", "--data-dir", "/tmp/unused", *flags])


@pytest.mark.parametrize("flags", [(), ("--no-auth", "--auth-keys-file", "k.json")])
def test_none_or_two_sources_of_keys_is_a_usage_error(flags: tuple[str, ...]) -> None:
    parser, args = _serve(*flags)
    with pytest.raises(SystemExit) as refused:
        _session_keys(parser, args)
    assert refused.value.code == 2


def test_no_auth_loads_nothing_and_a_keys_file_loads_its_keys(tmp_path: Path) -> None:
    assert _session_keys(*_serve("--no-auth")) is None
    key = new_key("orders-1", SessionRole.ORDERS)
    write_key_file(tmp_path / "keys.json", [key])
    load = _session_keys(*_serve("--auth-keys-file", str(tmp_path / "keys.json")))
    assert load is not None
    assert [k.key_id for k in load()] == ["orders-1"]


def test_secret_arns_load_every_secrets_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        secrets = boto3.client("secretsmanager")
        arns = [
            secrets.create_secret(Name=name, SecretString=json.dumps(new_key(name, role).document()))["ARN"]
            for name, role in (("orders-1", SessionRole.ORDERS), ("admin-1", SessionRole.ADMIN))
        ]
        load = _session_keys(*_serve("--auth-secret-arns", f"{arns[0]}, {arns[1]},"))
        assert load is not None
        assert sorted(k.key_id for k in load()) == ["admin-1", "orders-1"]


@pytest.mark.parametrize("text", ["-1", "nan"])
def test_negative_or_nan_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        _non_negative_float(text)
    assert _non_negative_float("0.5") == 0.5
