"""DynamoDB global-table replication on the local AWS endpoint (moto has no global tables).

A global table is one table per replica region; DynamoDB copies every write from the region that
took it to the others, from the table's stream, last writer wins. :class:`TableReplicator` does
that for the tables a stack declares global: it reads each replica's stream (a shard iterator per
shard, polled) and applies inserts and modifications (the new image) and removals (the keys) to
the table of the same name in the other regions. A write that arrives as a copy is recognised by
content (the target already holds that image) and not copied back, so replication both ways ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
Clients = Callable[[str, str], Any]  # (service, region) -> boto3 client


@dataclass
class _Stream:
    table: str
    region: str
    arn: str
    iterators: dict[str, str | None] = field(default_factory=dict)


class TableReplicator:
    """Copies writes between the replicas of each table, in the background until :meth:`stop`."""

    def __init__(
        self, client: Clients, tables: Sequence[tuple[str, Sequence[str]]], poll_s: float = 0.1
    ) -> None:
        self.client = client
        self.poll_s = poll_s
        self.replicated = 0
        self._targets = {table: tuple(regions) for table, regions in tables}
        self._streams = [self._stream(table, region) for table, regions in tables for region in regions]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meridian-global-tables", daemon=True)

    def _stream(self, table: str, region: str) -> _Stream:
        described = self.client("dynamodb", region).describe_table(TableName=table)["Table"]
        arn = described.get("LatestStreamArn")
        if not arn:
            raise ValueError(f"{table} ({region}) has no stream: a global table needs NEW_AND_OLD_IMAGES")
        stream = _Stream(table, region, arn)
        streams = self.client("dynamodbstreams", region)
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            stream.iterators[shard["ShardId"]] = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]
        return stream

    def start(self) -> TableReplicator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)

    def replicate_once(self) -> int:
        """Copy what each stream holds now to the other replicas; how many writes were copied."""
        copied = 0
        for stream in self._streams:
            streams = self.client("dynamodbstreams", stream.region)
            for shard, iterator in list(stream.iterators.items()):
                if iterator is None:
                    continue
                page = streams.get_records(ShardIterator=iterator, Limit=1000)
                for record in page.get("Records", []):
                    copied += self._apply(stream, record)
                stream.iterators[shard] = page.get("NextShardIterator")  # only once applied
        self.replicated += copied
        return copied

    def _apply(self, stream: _Stream, record: dict[str, Any]) -> int:
        change = record["dynamodb"]
        copied = 0
        for region in self._targets[stream.table]:
            if region == stream.region:
                continue
            dynamodb = self.client("dynamodb", region)
            current = dynamodb.get_item(TableName=stream.table, Key=change["Keys"], ConsistentRead=True).get(
                "Item"
            )
            if record["eventName"] == "REMOVE":
                if current is not None:
                    dynamodb.delete_item(TableName=stream.table, Key=change["Keys"])
                    copied += 1
            elif current != change["NewImage"]:
                dynamodb.put_item(TableName=stream.table, Item=change["NewImage"])
                copied += 1
        return copied

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self.replicate_once():
                    continue
            except Exception:  # keep replicating; one failed round is retried from the same iterators
                log.exception("global table replication round failed")
            self._stopping.wait(self.poll_s)
