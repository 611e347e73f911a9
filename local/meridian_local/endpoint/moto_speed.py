"""moto's costs that grow with traffic, or that every request pays, removed without changing what
moto answers.

* EventBridge: every ``PutEvents`` entry that matches a rule builds a JSONPath parser per target
  (a PLY grammar, tables and all) to apply the target's input paths; the parse of a path is
  cached here, so the parser is built once per path.
* SQS: ``ReceiveMessage`` checks each message's retention through ``get_queue_attributes``, which
  computes every attribute of the queue (counting its messages) once per message; here it reads
  the queue's retention period itself. ``SendMessage`` computes all of them too, to read one
  (``ContentBasedDeduplication``): while it runs, the queue's attributes are the settings alone,
  without the message counts it does not read.
* DynamoDB: every ``UpdateItem`` (and each update of a ``TransactWriteItems``) tokenizes and parses
  its update expression three times and lexes its condition expression with a list of regular
  expressions, though a service sends the same few expression strings over and over. The parsed
  update expression is kept per string (moto's validator deep-copies it before it substitutes
  anything, and the other callers only read it), and so is the condition expression's token list
  (immutable tokens; the later phases build new nodes). Values and names are still applied per
  request, so answers are unchanged.
* Dispatch: each request lists its handler class's methods (``inspect.getmembers``, which walks
  the class and sorts) to find its action; the list is kept per class.
* Dispatch: the server finds each request's service by listing moto's package folders on disk
  (``os.listdir`` and ``isdir`` per request, under the dispatcher's lock), then matching the host
  against every service's URL patterns; the list is made once and each host's backend remembered.

Seen with py-spy under ``make bench-local``: each a few to fifteen per cent of the endpoint's CPU.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    import jsonpath_ng.ext  # noqa: PLC0415 - moto's dependency, loaded with it
    from moto import backends  # noqa: PLC0415
    from moto.core.utils import unix_time  # noqa: PLC0415
    from moto.sqs.models import SQSBackend  # noqa: PLC0415

    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)  # type: ignore[attr-defined]

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention_period + message.sent_timestamp / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]
    _send_without_counting(SQSBackend)
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: iter(modules)
    _remember_backends()
    _parse_expressions_once()
    from moto.core import responses  # noqa: PLC0415

    module: Any = responses
    names = module.method_names_from_class
    module.method_names_from_class = functools.lru_cache(maxsize=256)(lambda clazz: frozenset(names(clazz)))
    _installed = True


def _parse_expressions_once() -> None:
    from collections import deque  # noqa: PLC0415

    from moto.dynamodb.comparisons import ConditionExpressionParser  # noqa: PLC0415
    from moto.dynamodb.parsing import expressions  # noqa: PLC0415

    parser: Any = expressions.UpdateExpressionParser  # type: ignore[attr-defined]
    parse_update = parser.make.__func__
    cached_update = functools.lru_cache(maxsize=512)(lambda expression: parse_update(parser, expression))
    parser.make = classmethod(lambda cls, expression: cached_update(expression))

    lex = ConditionExpressionParser._lex_condition_expression
    tokens: dict[str, tuple[Any, ...]] = {}

    def lex_once(self: Any) -> Any:
        expression = self.condition_expression
        found = tokens.get(expression)
        if found is None:
            found = tuple(lex(self))
            if len(tokens) < 512:
                tokens[expression] = found
        return deque(found)

    ConditionExpressionParser._lex_condition_expression = lex_once  # type: ignore[method-assign]


def _remember_backends() -> None:
    """The backend of a host is found once (a regex walk over every service's URL patterns)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: PLC0415

    find = DomainDispatcherApplication.get_backend_for_host

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        known: dict[str | None, Any] = self.__dict__.setdefault("_meridian_backends", {})
        if host not in known:
            known[host] = find(self, host)
        return known[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


_sending = threading.local()


def _send_without_counting(backend: Any) -> None:
    from moto.sqs.models import Queue  # noqa: PLC0415

    counted = Queue.attributes
    original_send = backend.send_message

    def attributes(self: Any) -> dict[str, Any]:
        if not getattr(_sending, "active", False):
            return counted.fget(self)  # type: ignore[attr-defined,no-any-return]
        # What SendMessage reads, as moto's attributes would give it: a FIFO queue's setting.
        if self.fifo_queue:
            return {"ContentBasedDeduplication": str(bool(self.content_based_deduplication)).lower()}
        return {}

    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        _sending.active = True
        try:
            return original_send(self, *args, **kwargs)
        finally:
            _sending.active = False

    Queue.attributes = property(attributes)  # type: ignore[method-assign,assignment]
    backend.send_message = send_message
