"""Two of moto's costs that grow with traffic, removed without changing what moto answers.

* EventBridge: every ``PutEvents`` entry that matches a rule builds a JSONPath parser per target
  (a PLY grammar, tables and all) to apply the target's input paths; the parse of a path is
  cached here, so the parser is built once per path.
* SQS: ``ReceiveMessage`` checks each message's retention through ``get_queue_attributes``, which
  computes every attribute of the queue (counting its messages) once per message; here it reads
  the queue's retention period itself.

Seen with py-spy under ``make bench-local``: together about a fifth of the endpoint's CPU.
"""

from __future__ import annotations

import functools
from typing import Any

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    import jsonpath_ng.ext  # noqa: PLC0415 - moto's dependency, loaded with it
    from moto.core.utils import unix_time  # noqa: PLC0415
    from moto.sqs.models import SQSBackend  # noqa: PLC0415

    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)  # type: ignore[attr-defined]

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention_period + message.sent_timestamp / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]
    _installed = True
