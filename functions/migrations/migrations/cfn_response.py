"""A small cfn-response: tell CloudFormation how a custom resource request ended.

CloudFormation waits (up to an hour) for this PUT to the pre-signed ``ResponseURL``, so it is sent
exactly once per request, whatever happened, and sending never raises.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Literal

log = logging.getLogger(__name__)
REASON_LIMIT = 3500  # the whole response must stay under 4 KiB
Status = Literal["SUCCESS", "FAILED"]
Transport = Callable[[str, bytes], int]


def put_json(url: str, body: bytes) -> int:
    request = urllib.request.Request(  # noqa: S310 - CloudFormation's pre-signed https URL
        url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return int(answer.status)


def response_body(
    event: Mapping[str, Any],
    status: Status,
    physical_id: str,
    reason: str = "",
    data: Mapping[str, str] | None = None,
) -> bytes:
    return json.dumps(
        {
            "Status": status,
            "Reason": reason[:REASON_LIMIT] or status,
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "NoEcho": False,
            "Data": dict(data or {}),
        }
    ).encode()


class Responder:
    """Sends the one response of a request; later calls are ignored."""

    def __init__(self, event: Mapping[str, Any], transport: Transport = put_json) -> None:
        self.event, self.transport = event, transport
        self._lock = threading.Lock()
        self.sent: Status | None = None

    def send(
        self, status: Status, physical_id: str, reason: str = "", data: Mapping[str, str] | None = None
    ) -> bool:
        with self._lock:
            if self.sent is not None:
                return False
            self.sent = status
        body = response_body(self.event, status, physical_id, reason, data)
        try:
            code = self.transport(str(self.event["ResponseURL"]), body)
            log.info("custom resource response %s sent (HTTP %s)", status, code)
        except Exception:
            log.exception("could not send the %s response to CloudFormation", status)
        return True
