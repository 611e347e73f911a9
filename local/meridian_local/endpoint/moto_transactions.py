"""moto's DynamoDB writes made atomic, and TransactWriteItems without its copy of whole tables.

* Atomic: DynamoDB evaluates a write's condition and applies it as one step (a transaction: all
  its items), and a read sees an item before or after a write, never during it. moto does both in
  Python that another thread can interleave with, so two concurrent conditional writes could both
  pass a condition only one of them may pass, and a read could copy an item a write is changing.
  Every write, transaction and read here runs under one lock, as DynamoDB serialises the writes of
  an item.
* moto 5.2.5 deep-copies each table a transaction writes to, to roll back if an item fails, so a
  transaction's cost grows with the table: thousands of orders make every order's transactions
  take tens of milliseconds, which no DynamoDB does and which would drown what ``make bench-api``
  and the local platform measure. This is moto's own method with the rollback kept per item: the
  items the transaction touches are copied before it writes them and put back if it is cancelled.
  Everything else (the checks, the error per item, ``ALL_OLD`` on a failed condition, the
  cancellation) is moto's, but for one repetition: moto evaluates each item's condition, then
  writes the item with the same condition, which parses and evaluates it again against the same
  item (nothing can change it in between: the transaction holds the lock). Here the write is made
  without the condition it has just passed.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable
from typing import Any

_installed = False
_SERIALISED = ("put_item", "update_item", "delete_item", "transact_write_items", "get_item", "query", "scan")
_lock = threading.RLock()


def _atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def write(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    return write


def install() -> None:
    """Replace moto's methods (idempotent; in-process mocks and moto server alike)."""
    global _installed
    if _installed:
        return
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415

    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    for name in _SERIALISED:
        setattr(DynamoDBBackend, name, _atomic(getattr(DynamoDBBackend, name)))
    _installed = True


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    from moto.dynamodb.comparisons import get_filter_expression  # noqa: PLC0415
    from moto.dynamodb.exceptions import (  # noqa: PLC0415
        ConditionalCheckFailed,
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    saved: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {}  # -> (table, hash, range, item before)

    def rollback() -> None:
        for table, hash_value, range_value, before in saved.values():
            table.delete_item(hash_value, range_value)
            if before is not None:
                if range_value is not None:
                    table.items[hash_value][range_value] = before
                else:
                    table.items[hash_value] = before

    errors: list[tuple[Any, Any, Any]] = []
    for item in transact_items:
        original_item = None
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            table = self.get_table(table_name)
            condition_expression = op.get("ConditionExpression")
            names = op.get("ExpressionAttributeNames")
            values = op.get("ExpressionAttributeValues")
            if op_type == "Put":
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            identity = (str(table_name), str(dict(sorted(key.items()))))
            if identity in saved:
                raise MultipleTransactionsException()
            hash_value, range_value = self.get_keys_value(table, key)
            current = self.get_item(table_name, key)
            saved[identity] = (table, hash_value, range_value, copy.deepcopy(current))
            if condition_expression is not None:
                condition = get_filter_expression(condition_expression, names, values)
                if not condition.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            if op_type == "Put":
                self.put_item(
                    table_name,
                    op["Item"],
                    condition_expression=None,  # passed above
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            elif op_type == "Delete":
                self.delete_item(
                    table_name,
                    key,
                    condition_expression=None,  # passed above
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    condition_expression=None,  # passed above
                    expression_attribute_names=names,
                    expression_attribute_values=values,
                )
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            rollback()
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:
            errors.append((type(e).__name__, str(e), original_item))
    if any(code is not None for code, _, _ in errors):
        rollback()
        raise TransactionCanceledException(errors)
