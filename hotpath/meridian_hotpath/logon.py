"""The node's side of the session logon (``meridian.session_auth``): its keys and the check.

The keys are loaded at start (``--auth-keys-file`` locally, ``--auth-secret-arns`` on AWS) and can
be loaded again while the node runs (SIGHUP: ``reload``), so a rotated secret takes effect without
a restart; connections logged on before keep the session they have.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable, Iterable

from meridian.protocol import Logon
from meridian.session_auth import NONCE_BYTES, SessionKey

log = logging.getLogger(__name__)


class Authenticator:
    def __init__(
        self, keys: Iterable[SessionKey], load: Callable[[], list[SessionKey]] | None = None
    ) -> None:
        self._keys = {key.key_id: key for key in keys}
        self._load = load  # where the keys came from, for ``reload``

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    @staticmethod
    def challenge() -> bytes:
        return os.urandom(NONCE_BYTES)

    def verify(self, logon: Logon, nonce: bytes) -> SessionKey | None:
        """The key the logon proves it holds, or None (an unknown key id or a wrong HMAC)."""
        key = self._keys.get(logon.key_id)
        expected = key.mac(nonce) if key is not None else "0" * 64  # same work either way
        if key is None or not hmac.compare_digest(expected, logon.mac):
            return None
        return key

    def reload(self) -> None:
        """Read the keys again from where they came from (a rotated secret); keep the old ones when
        that fails."""
        if self._load is None:
            return
        try:
            keys = self._load()
        except Exception:
            log.exception("cannot reload the session keys; keeping %s", self.key_ids)
            return
        self._keys = {key.key_id: key for key in keys}
        log.info("session keys reloaded: %s", self.key_ids)
