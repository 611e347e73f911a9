"""The opaque pagination token shared by the stores (items: ``meridian.dynamo_items``)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from meridian.dynamo_items import from_item, to_item
from orders_api.dal.interfaces import InvalidPageTokenError


def encode_token(last_key: Mapping[str, Any], query_id: str) -> str:
    """An opaque token: the page's last key bound to the query it belongs to."""
    plain = {k: (int(v) if isinstance(v, Decimal) else v) for k, v in from_item(last_key).items()}
    raw = json.dumps({"q": query_id, "k": plain}, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, query_id: str, key_names: frozenset[str]) -> dict[str, Any]:
    """The ExclusiveStartKey in ``token``; InvalidPageTokenError unless it was issued for ``query_id``."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidPageTokenError("next_token is not one this API issued") from None
    if not isinstance(data, dict) or data.get("q") != query_id or not isinstance(data.get("k"), dict):
        raise InvalidPageTokenError("next_token belongs to another query")
    key = data["k"]
    if set(key) != key_names or not all(isinstance(v, str | int) for v in key.values()):
        raise InvalidPageTokenError("next_token is malformed")
    return to_item(key)
