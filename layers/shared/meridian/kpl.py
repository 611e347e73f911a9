"""The KPL aggregation format: many small records of one partition key in one Kinesis record.

A Kinesis shard takes at most 1,000 records a second, so one record per market-data update caps a
symbol (one partition key, so one shard) at 1,000 updates a second. The nodes pack many updates of
a symbol into one Kinesis record in the format of the Kinesis Producer Library
(https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md)::

    magic 0xF3899AC2 | protobuf AggregatedRecord | MD5 of the protobuf bytes

which Firehose de-aggregates before it archives, and which the KCL and the ``aws-kinesis-agg``
package read. The protobuf schema is the one ``aws-kinesis-agg`` ships (its generated
``messages_pb2``); its record-at-a-time ``RecordAggregator`` and ``deaggregate_records`` are not
used on the hot paths: ``make bench-pipeline`` measures them against :func:`aggregate` and
:func:`user_records`, and ``deaggregate_records`` logs a record it cannot split and goes on, which
would lose trades silently. The tests hold both ends to the package's own aggregator and
deaggregator.

Consumers read plain records too: anything without the magic and a matching digest is one user
record, as the KPL's own readers treat it.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence

# The package's generated messages_pb2 imports its sibling as the top-level module ``config_pb2``
# (the package puts its own folder on sys.path to make that work); naming the sibling here does the
# same without touching sys.path.
from aws_kinesis_agg import config_pb2  # type: ignore[import-untyped]

sys.modules.setdefault("config_pb2", config_pb2)
from aws_kinesis_agg.messages_pb2 import AggregatedRecord  # type: ignore[import-untyped]  # noqa: E402

MAGIC = b"\xf3\x89\x9a\xc2"
DIGEST_SIZE = 16
# PutRecord(s): a record's data blob plus its partition key may be 1 MiB at most.
MAX_RECORD_BYTES = 1024 * 1024


class AggregationError(ValueError):
    """A record that carries the KPL magic and digest but cannot be split; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def framing_bytes(partition_key: str) -> int:
    """What an aggregated record of ``partition_key`` costs beyond its user records."""
    key = len(partition_key.encode())
    return len(MAGIC) + 1 + _varint_size(key) + key + DIGEST_SIZE


def user_record_bytes(data_size: int) -> int:
    """What one user record of ``data_size`` bytes adds to an aggregated record (partition key 0)."""
    inner = 2 + 1 + _varint_size(data_size) + data_size  # partition_key_index = 0, then data
    return 1 + _varint_size(inner) + inner


def aggregate(partition_key: str, datas: Sequence[bytes]) -> bytes:
    """One Kinesis record carrying ``datas`` in order, all under ``partition_key``."""
    message = AggregatedRecord()
    message.partition_key_table.append(partition_key)
    records = message.records
    for data in datas:
        record = records.add()
        record.partition_key_index = 0
        record.data = data
    body: bytes = message.SerializeToString()
    return MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()


def is_aggregated(data: bytes) -> bool:
    return (
        len(data) > len(MAGIC) + DIGEST_SIZE
        and data[: len(MAGIC)] == MAGIC
        and hashlib.md5(data[len(MAGIC) : -DIGEST_SIZE], usedforsecurity=False).digest()
        == data[-DIGEST_SIZE:]
    )


def user_records(data: bytes) -> list[bytes]:
    """The user records in one Kinesis record's data, in order: itself when it is a plain record.

    A record with the magic whose digest does not match is a plain record (the KPL's rule: the
    magic alone could begin any payload); one whose digest matches but whose protobuf does not
    parse raises :class:`AggregationError`.
    """
    if not is_aggregated(data):
        return [data]
    message = AggregatedRecord()
    try:
        message.ParseFromString(data[len(MAGIC) : -DIGEST_SIZE])
    except Exception as exc:  # google.protobuf.message.DecodeError and the runtime's own errors
        raise AggregationError(f"aggregated record does not parse: {exc}") from None
    if not message.records:
        raise AggregationError("aggregated record holds no user records")
    return [record.data for record in message.records]


__all__ = [
    "MAGIC",
    "MAX_RECORD_BYTES",
    "AggregationError",
    "aggregate",
    "framing_bytes",
    "is_aggregated",
    "user_record_bytes",
    "user_records",
]
