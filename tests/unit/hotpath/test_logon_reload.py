"""The node's session keys are read again on SIGHUP (a rotated secret); a failed read keeps them."""

from __future__ import annotations

from meridian.protocol import Logon, SessionRole
from meridian.session_auth import SessionKey, new_key
from meridian_hotpath.logon import Authenticator


def test_reload_replaces_the_keys_and_a_failed_reload_keeps_them() -> None:
    old, new = new_key("orders-1", SessionRole.ORDERS), new_key("orders-2", SessionRole.ORDERS)
    source: list[list[SessionKey]] = [[new]]

    def load() -> list[SessionKey]:
        if not source:
            raise ConnectionError("Secrets Manager unreachable")
        return source.pop()

    authenticator = Authenticator([old], load)
    nonce = Authenticator.challenge()
    assert authenticator.verify(Logon(0, old.key_id, old.mac(nonce)), nonce) == old
    authenticator.reload()
    assert authenticator.key_ids == ["orders-2"]
    assert authenticator.verify(Logon(0, old.key_id, old.mac(nonce)), nonce) is None  # rotated out
    assert authenticator.verify(Logon(0, new.key_id, new.mac(nonce)), nonce) == new
    authenticator.reload()  # the store fails: the keys stay
    assert authenticator.key_ids == ["orders-2"]


def test_a_wrong_mac_or_unknown_key_is_refused_and_keys_without_a_source_do_not_reload() -> None:
    key = new_key("admin-1", SessionRole.ADMIN)
    authenticator = Authenticator([key])
    nonce = Authenticator.challenge()
    assert authenticator.verify(Logon(0, key.key_id, key.mac(Authenticator.challenge())), nonce) is None
    assert authenticator.verify(Logon(0, "nobody", key.mac(nonce)), nonce) is None
    authenticator.reload()
    assert authenticator.key_ids == ["admin-1"]
