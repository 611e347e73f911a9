"""A DynamoDB client stand-in that keeps items in memory and counts calls and items.

It implements the two calls the market-data writer makes, with DynamoDB's rules that matter to
it: at most 25 requests and no duplicate keys per ``BatchWriteItem``, and the two conditions the
writer puts on ``PutItem`` (a book's ``node_seq`` must grow; a re-sent trade's item must not
exist). ``throttle`` makes chosen calls return (part of) their requests as ``UnprocessedItems``,
as DynamoDB does under throttling. Used by the unit tests and the benchmark to measure handler
logic without network time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from market_data.writer import NEWER_HALTED_BOOK, NEWER_OR_TAKEN_OVER_BOOK

Item = dict[str, Any]


class ConditionalCheckFailedError(Exception):
    """Shaped like botocore's ClientError for ConditionalCheckFailedException."""

    def __init__(self) -> None:
        super().__init__("The conditional request failed")
        self.response = {
            "Error": {"Code": "ConditionalCheckFailedException", "Message": "conditional failed"}
        }


@dataclass
class CountingDynamoDB:
    items: dict[tuple[str, str], Item] = field(default_factory=dict)
    batch_write_calls: int = 0
    put_item_calls: int = 0
    items_sent: int = 0
    throttle: Callable[[int, list[dict[str, Any]]], int] | None = None  # (call no, requests) -> n unprocessed

    def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        self.batch_write_calls += 1
        (table, requests), *rest = kwargs["RequestItems"].items()
        if rest or not 1 <= len(requests) <= 25:
            raise ValueError("BatchWriteItem takes 1-25 requests for one table here")
        keys = [(r["PutRequest"]["Item"]["pk"]["S"], r["PutRequest"]["Item"]["sk"]["S"]) for r in requests]
        if len(set(keys)) != len(keys):
            raise ValueError("Provided list of item keys contains duplicates")
        self.items_sent += len(requests)
        unprocessed_count = self.throttle(self.batch_write_calls, requests) if self.throttle else 0
        cut = len(requests) - unprocessed_count
        done, unprocessed = requests[:cut], requests[cut:]
        for request, key in zip(done, keys, strict=False):
            self.items[key] = request["PutRequest"]["Item"]
        return {"UnprocessedItems": {table: unprocessed} if unprocessed else {}}

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self.put_item_calls += 1
        self.items_sent += 1
        item = kwargs["Item"]
        key = (item["pk"]["S"], item["sk"]["S"])
        condition = kwargs.get("ConditionExpression")
        if condition is not None and not self._holds(
            condition, kwargs.get("ExpressionAttributeValues", {}), key
        ):
            raise ConditionalCheckFailedError()
        self.items[key] = item
        return {}

    def _holds(self, condition: str, values: dict[str, Any], key: tuple[str, str]) -> bool:
        held = self.items.get(key)
        if condition == "attribute_not_exists(sk)":
            return held is None
        if condition == "attribute_not_exists(node_seq) OR node_seq < :seq":
            return (
                held is None
                or "node_seq" not in held
                or int(held["node_seq"]["N"]) < int(values[":seq"]["N"])
            )
        if condition in (NEWER_HALTED_BOOK, NEWER_OR_TAKEN_OVER_BOOK):  # books that name their node
            if held is None or "node_seq" not in held:
                return True
            same = "node" not in held or held["node"] == values[":node"]
            if same and int(held["node_seq"]["N"]) < int(values[":seq"]["N"]):
                return True
            taken_over = condition == NEWER_OR_TAKEN_OVER_BOOK and not same
            return taken_over and held.get("halted", {}).get("BOOL") is True
        raise ValueError(f"condition {condition!r} is not one this stand-in evaluates")

    @property
    def calls(self) -> int:
        return self.batch_write_calls + self.put_item_calls
