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
  request, so answers are unchanged. The validator's deep copy of that parsed expression (before
  it substitutes each request's values) is a plain copy of the tree here: the parser's nodes hold
  a type name, their children (nodes or strings) and their parent, and ``copy.deepcopy`` spends
  most of its time on its generic machinery; anything else is still deep-copied by ``copy``.
* DynamoDB: the update validator walks each parsed update expression once per check (ten
  walks), and each walk asks its check for its table of node classes and processors twice per node
  (a new dict each time) and matches the node against each class with ``isinstance`` (abstract
  base classes: slow). Here a walk asks once, and finds a node class's processor once per walk;
  the walk, the order of the processors and what they do are moto's.
* DynamoDB: three of those checks (one clause of each kind at most, no overlapping paths, no key
  attribute updated) depend on the expression, its attribute names and the table's key alone:
  once an expression has passed them with the same names against the same key, they are not run
  again (one that fails still fails every time: it is never remembered). The checks that read the
  request's values and the item run on every request.
* DynamoDB: an update expression of plain actions (``SET a = :v``, ``REMOVE a``, ``ADD a :v`` on
  top-level attributes, by name or ``#name``, each clause once: what the order path sends) is
  applied without moto's validator and executor: ten walks of a copied tree, then an item whose
  size is summed again, attribute by attribute, for every attribute it sets. Here the request is
  checked against what those walks would refuse (a name or value not defined, a reserved word, an
  attribute set twice, a key attribute, an attribute an index declares, an ADD of the wrong type or
  of an empty set, a number that does not add); anything refused, or not plain, takes moto's own
  path, so its errors are moto's. Otherwise the actions are applied in moto's order with moto's
  values (``DynamoType``, its ``+``) and moto's size rule (the item with the new value beside the
  old, over 405,000 bytes, is refused), the item's size kept by difference instead of summed anew.
* DynamoDB: a ``Query`` of a table (not of an index) lists and sorts every item of the table, then
  keeps those of the partition it names, so each costs more as the table grows (the order API reads
  the last trade of a symbol from a table that gains an item per trade). Here it lists that
  partition's items alone; the filtering and sorting that follow are moto's, so answers are
  unchanged. A query with a ``Limit`` (the last trades, newest first) is given only the items
  moto's walk would reach before it stops (the partition sorted once by the keys' values, and
  walked with moto's own key comparison), so moto no longer sorts a partition that grows with
  every trade by comparing ``DynamoType`` objects.
* Kinesis: a shard keeps every record in a dict by sequence number, and each ``GetRecords`` walks it
  from the first record to find those after its iterator, each ``PutRecord(s)`` lists all its keys
  to find the last: both cost more with every record the stream ever took. Here the last key is
  read from the end of the dict, and the records after a sequence number are looked up by number
  (moto numbers a shard's records 1, 2, 3...), falling back to moto's walk if a number is missing.
* DynamoDB: a transaction's request is validated first, which parses each item's condition (to
  see which attribute names it uses), then the transaction parses the same condition with the
  same names and values again to evaluate it (a single write too: validated, then evaluated). The
  parse of a condition is kept per thread for the names and values objects it was made with (held,
  so their ids stay theirs) and given back for the same three; the parsed condition is only read
  when evaluated. A new request's names and values are new objects: nothing is shared between
  requests (but for conditions without any, whose parse depends on the string alone).
* SQS: every message's visibility and delay are checked on each ``ReceiveMessage`` (and each
  message's retention, above) against the time as moto's clock gives it, which builds two
  ``datetime`` objects per reading; here the reading without a date argument is ``time.time()``
  (the same clock: ``datetime.now`` reads it), with the date argument moto's.
* Server: werkzeug formats a log line for every request (decoding its path, formatting the date)
  before the ``werkzeug`` logger drops it; here, when that logger's level is set and leaves out
  ``INFO``, the line is not made.
* Server: werkzeug's development server closes every connection after its response (it sends
  ``Connection: close``, then drains the socket for 10 ms), so each AWS call of every client opens
  a TCP connection and the server starts a thread for it. Here a request that can be followed by
  another on the same connection (HTTP/1.1, the client did not ask to close, its body sized by
  ``Content-Length`` or absent) has its body read before the application runs, so the next request
  line is where the socket stands whatever the application reads; its response is sent without
  ``Connection: close`` and the connection stays open for the client's next request (as AWS's
  endpoints keep them). A chunked body, an HTTP/1.0 client, one that asks to close, or a response
  the application failed in the middle of closes the connection as werkzeug does.
* Dispatch: each request lists its handler class's methods (``inspect.getmembers``, which walks
  the class and sorts) to find its action; the list is kept per class.
* Dispatch: the server finds each request's service by listing moto's package folders on disk
  (``os.listdir`` and ``isdir`` per request, under the dispatcher's lock), then matching the host
  against every service's URL patterns; the list is made once and each host's backend remembered.

Seen with py-spy under ``make bench-local``: each a few to fifteen per cent of the endpoint's CPU.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import threading
import time
from typing import Any

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    # A diagnostic switch: speedups named here (comma-separated) are left out, to measure one
    # against moto's own path.
    skipped = set(os.environ.get("MERIDIAN_MOTO_SPEED_SKIP", "").split(","))
    import jsonpath_ng.ext  # noqa: PLC0415 - moto's dependency, loaded with it
    from moto import backends  # noqa: PLC0415
    from moto.sqs.models import SQSBackend  # noqa: PLC0415

    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)  # type: ignore[attr-defined]

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention_period + message.sent_timestamp / 1000 > time.time())

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]
    _send_without_counting(SQSBackend)
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: iter(modules)
    _remember_backends()
    _parse_expressions_once()
    if "simple_updates" not in skipped:
        _update_plain_expressions_directly()
    _query_one_partition(prefixed="query_prefix" not in skipped)
    _copy_expression_trees_plainly()
    _walk_expressions_quickly()
    _check_expression_shapes_once()
    _read_shards_by_number()
    _parse_conditions_once_per_request()
    _read_the_clock_plainly()
    _log_requests_only_when_logged()
    if "keep_alive" not in skipped:
        _keep_connections_alive()
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


_partition = threading.local()  # the hash key of the table query running on this thread, and its items
_QUERY_ARGUMENTS = frozenset(("hash_key_conditions", "range_key_conditions"))


def query_prefix(
    table: Any, hash_key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[Any] | None:
    """The items of a limited table query's partition that moto's walk visits, in its order: up to
    the first one after the last result it keeps (None: every item, or not a query this reads).

    moto sorts the partition by range key (``DynamoType.__lt__``: the keys' ``cast_value``), walks it
    in the query's direction, keeps those its key condition matches and stops at the first item
    after ``Limit`` of them. Sorted here by the same values (in C, not by ``DynamoType`` per
    comparison), a longer walk than moto's is harmless: moto walks what it is given the same way."""
    if len(args) < 5 or not kwargs.keys() <= _QUERY_ARGUMENTS or not table.range_key_attr:
        return None
    range_comparison, range_objs, limit, exclusive_start_key, scan_index_forward = args[:5]
    conditions = kwargs.get("range_key_conditions")
    if conditions and (len(conditions) != 1 or conditions[0][0] != table.range_key_attr):
        return None
    if type(limit) is not int or limit < 1 or exclusive_start_key is not None:
        return None
    partition = table.items.get(hash_key)
    if partition is None or len(partition) <= limit + 1:
        return None
    try:
        ordered = sorted(partition.values(), key=lambda item: item.range_key.cast_value)
        if scan_index_forward is False:
            ordered.reverse()
        kept = 0
        for n, item in enumerate(ordered):
            if kept == limit:
                return ordered[: n + 1]
            if range_comparison is None or item.range_key.compare(range_comparison, range_objs):
                kept += 1
    except Exception:  # what moto's own walk refuses, it refuses itself
        return None
    return None


def _query_one_partition(prefixed: bool = True) -> None:
    from moto.dynamodb.models.table import Table  # noqa: PLC0415

    query, all_items = Table.query, Table.all_items

    def query_partition(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        _partition.key = None if index_name else hash_key
        _partition.items = None if index_name or not prefixed else query_prefix(self, hash_key, args, kwargs)
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _partition.key = _partition.items = None

    def items_of_partition(self: Any) -> list[Any]:
        hash_key = getattr(_partition, "key", None)
        if hash_key is None:
            return all_items(self)
        prefix = _partition.items
        if prefix is not None:
            return list(prefix)
        partition = self.items.get(hash_key)
        if partition is None:
            return []
        return list(partition.values()) if self.range_key_attr else [partition]

    query_partition.__wrapped__ = query  # type: ignore[attr-defined]  # moto's own, for the tests
    Table.query = query_partition  # type: ignore[method-assign]
    Table.all_items = items_of_partition  # type: ignore[method-assign]


def _read_shards_by_number() -> None:
    from moto.kinesis.models import Shard  # noqa: PLC0415

    walk = Shard.get_records

    def get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
        records = self.records
        after = int(last_sequence_id)
        last = next(reversed(records)) if records else 0
        if after >= last:
            return [], after, 0
        if after + 1 not in records:
            return walk(self, last_sequence_id, limit)
        found: list[Any] = []
        newest = records[last]
        seq = after + 1
        while seq in records and (limit is None or len(found) < limit):
            found.append(records[seq])
            seq += 1
        behind = newest.created_at - found[-1].created_at
        return found, seq - 1, int(behind * 1000)

    get_records.__wrapped__ = walk  # type: ignore[attr-defined]  # moto's own, for the tests
    Shard.get_records = get_records  # type: ignore[method-assign]
    Shard.get_max_sequence_number = lambda self: next(reversed(self.records)) if self.records else 0  # type: ignore[method-assign]
    Shard.get_min_sequence_number = lambda self: next(iter(self.records)) if self.records else 0  # type: ignore[method-assign]


_NODE_FIELDS = frozenset(("type", "children", "parent"))


def copy_expression(value: Any) -> Any:
    """``copy.deepcopy`` of a parsed DynamoDB expression, node by node; other values through
    ``copy.deepcopy``. The copy's parent links point into the copy, as deepcopy's would."""
    from moto.dynamodb.parsing.ast_nodes import Node  # type: ignore[attr-defined]  # noqa: PLC0415

    if not isinstance(value, Node):
        return copy.deepcopy(value)
    copies: dict[int, Any] = {}
    originals: list[Any] = []

    def plain(node: Any) -> Any:
        fields = node.__dict__
        if fields.keys() != _NODE_FIELDS or not isinstance(fields["type"], str):
            raise _NotPlainError
        twin = object.__new__(type(node))
        copies[id(node)] = twin
        originals.append(node)
        children = fields["children"]
        if children is None:
            kids = None
        elif type(children) is list:
            kids = []
            for child in children:
                if isinstance(child, Node):
                    kids.append(plain(child))
                elif child is None or type(child) in (str, int):
                    kids.append(child)
                else:
                    raise _NotPlainError
        else:
            raise _NotPlainError
        twin.__dict__.update(type=fields["type"], children=kids, parent=None)
        return twin

    try:
        root = plain(value)
        for node in originals:
            parent = node.__dict__["parent"]
            if parent is not None:
                if id(parent) not in copies:
                    raise _NotPlainError  # a parent outside the tree: deepcopy copies it whole
                copies[id(node)].parent = copies[id(parent)]
    except _NotPlainError:
        return copy.deepcopy(value)
    return root


class _NotPlainError(Exception):
    """A node that is not the parser's plain kind."""


def _copy_expression_trees_plainly() -> None:
    from moto.dynamodb.parsing import validators  # noqa: PLC0415

    validators.deepcopy = copy_expression  # type: ignore[attr-defined,assignment]


def _walk_expressions_quickly() -> None:
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node  # type: ignore[attr-defined]  # noqa: PLC0415

    base = DepthFirstTraverser
    original = base.traverse
    nodes: dict[type, bool] = {}  # class -> whether its instances are parser nodes

    def traverse(self: Any, node: Any) -> Any:
        kind = type(self)
        if (
            kind.traverse_node_recursively is not base.traverse_node_recursively
            or kind.process is not base.process
            or kind.nodes_to_be_processed is not base.nodes_to_be_processed
        ):
            return original(self, node)
        table = self._processing_map()
        found: dict[type, Any] = {}  # node class -> its processor (None: not processed)
        hook = (
            None
            if kind.pre_processing_of_child is base.pre_processing_of_child
            else self.pre_processing_of_child
        )

        def walk(node: Any, child_id: int) -> Any:
            cls = type(node)
            is_node = nodes.get(cls)
            if is_node is None:
                is_node = nodes[cls] = isinstance(node, Node)
            if not is_node:
                return node
            parent = node.parent
            if node.children is not None:
                for i, child in enumerate(node.children):
                    if hook is not None:
                        hook(node, i)
                    walk(child, i)
            if cls in found:
                processor = found[cls]
            else:
                processor = found[cls] = next((p for k, p in table.items() if issubclass(cls, k)), None)
            if processor is not None:
                node = processor(node)
                node.parent = parent
                if parent:
                    parent.children[child_id] = node
            return node

        return walk(node, -1)

    traverse.__wrapped__ = original  # type: ignore[attr-defined]  # moto's own, for the tests
    base.traverse = traverse


_SHAPE_CHECKS = 3  # the update validator's first processors: clause counts, overlapping paths, keys


def _check_expression_shapes_once() -> None:
    from moto.dynamodb.parsing import validators  # noqa: PLC0415

    checks = (
        validators.ActionCountValidator,
        validators.OverlappingPathsValidator,
        validators.UpdateHashRangeKeyValidator,
    )
    update = validators.UpdateExpressionValidator
    init, validate = update.__init__, update.validate
    passed: dict[tuple[Any, ...], Any] = {}  # -> the parsed expression it was (held: its id stays its own)

    def init_keeping_the_expression(self: Any, expression: Any, *args: Any, **kwargs: Any) -> None:
        init(self, expression, *args, **kwargs)
        self._meridian_parsed = expression

    def checked_validate(self: Any) -> Any:
        parsed = self.__dict__.get("_meridian_parsed")
        processors = self.processors
        if parsed is None or tuple(type(p) for p in processors[:_SHAPE_CHECKS]) != checks:
            return validate(self)
        names = self.expression_attribute_names
        key = (
            id(parsed),
            tuple(sorted(names.items())) if names else None,
            tuple(self.table.table_key_attrs),
        )
        if passed.get(key) is parsed:
            self.processors = processors[_SHAPE_CHECKS:]
            try:
                return validate(self)
            finally:
                self.processors = processors
        node = self.node_to_validate
        for processor in processors[:_SHAPE_CHECKS]:
            node = processor.traverse(node)
        if len(passed) >= 1024:
            passed.clear()
        passed[key] = parsed
        self.node_to_validate = node
        self.processors = processors[_SHAPE_CHECKS:]
        try:
            return validate(self)
        finally:
            self.processors = processors

    checked_validate.__wrapped__ = validate  # type: ignore[attr-defined]  # moto's own, for the tests
    update.__init__ = init_keeping_the_expression  # type: ignore[method-assign]
    update.validate = checked_validate  # type: ignore[method-assign]


_parsed_conditions = threading.local()  # this thread's recent condition parses
_CONDITIONS_KEPT = 64


def _parse_conditions_once_per_request() -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser  # noqa: PLC0415

    parse = ConditionExpressionParser.parse

    def parse_once(self: Any) -> Any:
        # No names (or values) at all, None or {}, is one case: a parse that succeeded without
        # them looked none up, so it is the same parse with either.
        names = self.expression_attribute_names or None
        values = self.expression_attribute_values or None
        key = (self.condition_expression, id(names), id(values))
        kept: dict[tuple[Any, ...], tuple[Any, Any, Any, list[str], list[str]]] | None
        kept = getattr(_parsed_conditions, "kept", None)
        if kept is None:
            kept = _parsed_conditions.kept = {}
        found = kept.get(key)
        if found is not None and found[0] is names and found[1] is values:
            self.expr_attr_names_found, self.expr_attr_values_found = list(found[3]), list(found[4])
            return found[2]
        parsed = parse(self)
        if len(kept) >= _CONDITIONS_KEPT:
            del kept[next(iter(kept))]
        found_names, found_values = list(self.expr_attr_names_found), list(self.expr_attr_values_found)
        kept[key] = (names, values, parsed, found_names, found_values)
        return parsed

    parse_once.__wrapped__ = parse  # type: ignore[attr-defined]  # moto's own, for the tests
    ConditionExpressionParser.parse = parse_once  # type: ignore[method-assign]


def _read_the_clock_plainly() -> None:
    from moto.core import utils  # noqa: PLC0415
    from moto.sqs import models  # noqa: PLC0415

    dated_s, dated_ms = utils.unix_time, utils.unix_time_millis

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else dated_s(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else dated_ms(dt)

    sqs: Any = models
    sqs.unix_time, sqs.unix_time_millis = unix_time, unix_time_millis


def _log_requests_only_when_logged() -> None:
    from moto.moto_server.werkzeug_app import MotoRequestHandler  # noqa: PLC0415

    log_request = MotoRequestHandler.log_request
    werkzeug = logging.getLogger("werkzeug")

    def log_request_when_logged(self: Any, code: int | str = "-", size: int | str = "-") -> None:
        if werkzeug.level != logging.NOTSET and not werkzeug.isEnabledFor(logging.INFO):
            return
        log_request(self, code, size)

    MotoRequestHandler.log_request = log_request_when_logged  # type: ignore[method-assign]


_keeping = threading.local()  # whether this thread's request keeps its connection open


class _NoDrainSelector:
    """werkzeug's drain of a kept connection: nothing to read (the body was read whole), no wait."""

    def register(self, *args: Any, **kwargs: Any) -> None:
        pass

    def select(self, timeout: float | None = None) -> list[Any]:
        return []

    def close(self) -> None:
        pass


class _Selectors:
    """``werkzeug.serving``'s ``selectors``: the real module, but for a kept connection's drain."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def DefaultSelector(self) -> Any:  # noqa: N802 - the name werkzeug calls
        if getattr(_keeping, "active", False):
            return _NoDrainSelector()
        return self._real.DefaultSelector()


def _keep_connections_alive() -> None:
    import io  # noqa: PLC0415
    import selectors  # noqa: PLC0415

    from moto.moto_server.werkzeug_app import MotoRequestHandler  # noqa: PLC0415
    from werkzeug import serving  # noqa: PLC0415

    make_environ, run_wsgi, send_header = (
        MotoRequestHandler.make_environ,
        MotoRequestHandler.run_wsgi,
        MotoRequestHandler.send_header,
    )
    server_log = serving.BaseWSGIServer.log
    serving.selectors = _Selectors(selectors)  # type: ignore[assignment,attr-defined]

    def keeps_connection(self: Any) -> bool:
        if self.close_connection or self.request_version != "HTTP/1.1":
            return False
        headers = self.headers
        if headers.get("Transfer-Encoding"):
            return False
        length = headers.get("Content-Length")
        return length is None or (length.isdigit() and length == str(int(length)))

    def make_environ_keeping(self: Any) -> dict[str, Any]:
        environ: dict[str, Any] = make_environ(self)
        keep = keeps_connection(self)
        if keep:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if len(body) != length:  # the client went away mid-body
                keep = False
            environ["wsgi.input"] = io.BytesIO(body)
        self._meridian_keep = keep
        _keeping.active = keep
        return environ

    def run_wsgi_keeping(self: Any) -> None:
        self._meridian_keep = False
        _keeping.failed = False
        try:
            run_wsgi(self)
        finally:
            _keeping.active = False
            if not self._meridian_keep or _keeping.failed:
                self.close_connection = True

    def log(self: Any, type: str, message: str, *args: Any) -> None:  # werkzeug's name
        if type == "error":  # run_wsgi's "Error on request": the application failed in this response
            _keeping.failed = True
        server_log(self, type, message, *args)

    def send_header_keeping(self: Any, keyword: str, value: str) -> None:
        if (
            getattr(self, "_meridian_keep", False)
            and keyword.lower() == "connection"
            and value.lower() == "close"
        ):
            return  # werkzeug's close of every connection: this one stays open
        send_header(self, keyword, value)

    # A kept connection's response goes out in two writes (headers, then body): without this the
    # second waits for the client's delayed acknowledgement of the first (Nagle), 40 ms here.
    MotoRequestHandler.disable_nagle_algorithm = True
    MotoRequestHandler.make_environ = make_environ_keeping  # type: ignore[method-assign]
    MotoRequestHandler.run_wsgi = run_wsgi_keeping  # type: ignore[method-assign]
    MotoRequestHandler.send_header = send_header_keeping  # type: ignore[method-assign]
    serving.BaseWSGIServer.log = log  # type: ignore[method-assign]


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


_SET, _REMOVE, _ADD = "SET", "REMOVE", "ADD"
_SIZE_LIMIT = 405000  # moto's LimitedSizeDict: an item over this is refused


class _PlainAction:
    """One action of a plain update expression: its kind, the attribute's token (a name, or a
    ``#placeholder`` when ``named``) and the ``:value`` it takes (None for REMOVE)."""

    __slots__ = ("kind", "named", "token", "value")

    def __init__(self, kind: str, token: str, named: bool, value: str | None) -> None:
        self.kind, self.token, self.named, self.value = kind, token, named, value


def plain_actions(parsed: Any) -> tuple[_PlainAction, ...] | None:
    """The actions of a parsed update expression in the order moto's executor applies them, if
    every one is plain (see the module docstring) and each clause comes once; else None."""
    from moto.dynamodb.parsing import ast_nodes  # noqa: PLC0415
    from moto.dynamodb.parsing.reserved_keywords import ReservedKeywords  # noqa: PLC0415

    nodes: Any = ast_nodes  # untyped: its classes are made by the module

    clauses = (
        nodes.UpdateExpressionSetClause,
        nodes.UpdateExpressionRemoveClause,
        nodes.UpdateExpressionAddClause,
    )
    kinds = {
        nodes.UpdateExpressionSetAction: _SET,
        nodes.UpdateExpressionRemoveAction: _REMOVE,
        nodes.UpdateExpressionAddAction: _ADD,
    }
    seen: list[type] = []

    def walk(node: Any) -> bool:
        if not isinstance(node, nodes.Node):
            return True
        kind = type(node)
        if kind in clauses:
            if kind in seen:
                return False
            seen.append(kind)
        elif kind is nodes.UpdateExpressionDeleteClause:
            return False
        return all(walk(child) for child in node.children or ())

    if type(parsed) is not nodes.UpdateExpression or not walk(parsed):
        return None
    tree = copy_expression(parsed)
    tree.normalize()  # moto's order of execution (REMOVE runs sorted as moto sorts them)
    reserved = ReservedKeywords.get_reserved_keywords()
    actions: list[_PlainAction] = []
    for action in tree.children:
        kind = kinds.get(type(action))
        if kind is None:
            return None
        path, *rest = action.children
        if type(path) is not nodes.UpdateExpressionPath or len(path.children) != 1:
            return None
        element = path.children[0]
        if type(element) is nodes.ExpressionAttributeName:
            token, named = element.get_attribute_name_placeholder(), True
        elif type(element) is nodes.ExpressionAttribute:
            token, named = element.get_attribute_name(), False
            if token.upper() in reserved:
                return None
        else:
            return None
        value = None
        if kind == _SET:
            if len(rest) != 1 or type(rest[0]) is not nodes.UpdateExpressionValue:
                return None
            rest = rest[0].children
        if kind != _REMOVE:
            if len(rest) != 1 or type(rest[0]) is not nodes.ExpressionAttributeValue:
                return None
            value = rest[0].get_value_name()
        elif rest:
            return None
        if not isinstance(token, str) or not (value is None or isinstance(value, str)):
            return None
        actions.append(_PlainAction(kind, token, named, value))
    return tuple(actions)


def _item_bytes(key: Any, value: Any) -> int:
    """One attribute's share of an item's size, as moto's LimitedSizeDict counts it."""
    from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: PLC0415
    from moto.dynamodb.models.utilities import bytesize  # noqa: PLC0415

    size = 0
    for part in (key, value):
        size += part.size() if type(part) is DynamoType else bytesize(str(part))
    return size


class _PlainUpdate:
    """A plain update checked against a request and an item: moto's validated expression and its
    executor in one (``validate`` and ``normalize`` give it back; ``execute`` applies it)."""

    def __init__(self, steps: list[tuple[str, str, Any]], item: Any) -> None:
        self.steps = steps  # (kind, attribute name, value: a DynamoType; None for REMOVE)
        self.item = item

    def validate(self) -> _PlainUpdate:
        return self

    def normalize(self) -> None:
        pass

    def execute(self) -> None:
        from moto.dynamodb.exceptions import ItemSizeTooLarge  # noqa: PLC0415
        from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict  # noqa: PLC0415
        from moto.dynamodb.models.utilities import bytesize  # noqa: PLC0415

        attrs = self.item.attrs
        limited = type(attrs) is LimitedSizeDict
        size = sum(_item_bytes(k, v) for k, v in attrs.items()) if limited else 0

        def put(name: str, value: Any) -> None:
            nonlocal size
            if limited:
                if (
                    size
                    + bytesize(name)
                    + (value.size() if type(value) is DynamoType else bytesize(str(value)))
                    > _SIZE_LIMIT
                ):
                    raise ItemSizeTooLarge
                if name in attrs:
                    size -= _item_bytes(name, attrs[name])
                dict.__setitem__(attrs, name, value)
                size += _item_bytes(name, value)
            else:
                attrs[name] = value

        for kind, name, value in self.steps:
            if kind == _SET:
                put(name, value)
            elif kind == _REMOVE:
                if limited and name in attrs:
                    size -= _item_bytes(name, attrs[name])
                attrs.pop(name, None)
            elif value.type == "N":
                put(name, (attrs[name] if name in attrs else DynamoType({"N": "0"})) + value)
            else:  # a set: made empty if absent, then the values it lacks appended, as moto does
                if name not in attrs:
                    put(name, DynamoType({value.type: []}))
                current = attrs[name]
                before = _item_bytes(name, current) if limited else 0
                for element in value.value:
                    if element not in current.value:
                        current.value.append(element)
                if limited:
                    size += _item_bytes(name, current) - before


def _plain_update(
    actions: tuple[_PlainAction, ...], names: Any, values: Any, item: Any, table: Any
) -> _PlainUpdate | None:
    """The update, if moto's validator and executor would pass it (else None: moto's path)."""
    from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: PLC0415

    steps: list[tuple[str, str, Any]] = []
    seen: set[str] = set()
    keys = table.table_key_attrs
    declared = {definition["AttributeName"] for definition in table.attr}
    index_keys = table.attribute_keys
    attrs = item.attrs
    try:
        for action in actions:
            if action.named:
                if not names or action.token not in names:
                    return None
                name = names[action.token]
            else:
                name = action.token
            if not isinstance(name, str) or name in seen or name in keys:
                return None
            if action.kind == _SET and (action.token in declared or action.token in index_keys):
                return None  # moto's type and empty-string checks of key attributes: its own path
            seen.add(name)
            if action.value is None:
                steps.append((action.kind, name, None))
                continue
            if not values or action.value not in values:
                return None
            value = DynamoType(values[action.value])
            if action.kind == _ADD:
                current = attrs.get(name)
                if value.type == "N":
                    if current is not None and (type(current) is not DynamoType or current.type != "N"):
                        return None
                    _ = (current if current is not None else DynamoType({"N": "0"})) + value  # adds
                elif value.is_set():
                    if not value.value or (
                        current is not None and getattr(current, "type", None) != value.type
                    ):
                        return None
                else:
                    return None
            steps.append((action.kind, name, value))
    except Exception:  # anything moto would refuse: its own path refuses it
        return None
    return _PlainUpdate(steps, item)


def _update_plain_expressions_directly() -> None:
    from moto.dynamodb import models as dynamodb_models  # noqa: PLC0415

    models: Any = dynamodb_models
    validator = models.UpdateExpressionValidator
    executor = models.UpdateExpressionExecutor
    plans: dict[int, tuple[Any, tuple[_PlainAction, ...] | None]] = {}  # id -> (the parse, held; actions)

    def validate(
        expression: Any,
        expression_attribute_names: Any,
        expression_attribute_values: Any,
        item: Any,
        table: Any,
    ) -> Any:
        found = plans.get(id(expression))
        if found is None or found[0] is not expression:
            try:
                actions = plain_actions(expression)
            except Exception:  # not a tree this reads: moto's path
                actions = None
            if len(plans) >= 1024:
                plans.clear()
            found = plans[id(expression)] = (expression, actions)
        actions = found[1]
        if actions is not None:
            update = _plain_update(
                actions, expression_attribute_names, expression_attribute_values, item, table
            )
            if update is not None:
                return update
        return validator(
            expression,
            expression_attribute_names=expression_attribute_names,
            expression_attribute_values=expression_attribute_values,
            item=item,
            table=table,
        )

    def execute(update_ast: Any, item: Any, expression_attribute_names: Any) -> Any:
        if isinstance(update_ast, _PlainUpdate):
            update_ast.item = item
            return update_ast
        return executor(update_ast, item, expression_attribute_names)

    validate.__wrapped__ = validator  # type: ignore[attr-defined]  # moto's own, for the tests
    models.UpdateExpressionValidator = validate
    models.UpdateExpressionExecutor = execute
