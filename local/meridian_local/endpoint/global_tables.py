"""DynamoDB global-table replication on the local AWS endpoint (moto has no global tables).

A global table is one table per replica region; DynamoDB copies every write from the region that
took it to the others, from the table's stream, and settles concurrent writes to one item by last
writer wins. :class:`TableReplicator` does that for the tables a stack declares global: it reads
each replica's stream (a shard iterator per shard, polled) and applies inserts and modifications
(the new image) and removals (the keys) to the table of the same name in the other regions.

Its own copies come back on the target's stream: each copy is remembered and its record skipped,
so replication both ways ends. Each round reads every stream first, then settles each item written:
the newest write (by the stream's creation time; across rounds, so a region cut off while the other
wrote loses its older queued writes) is copied to every region whose last known image differs,
including a region whose own newer write our copy had overwritten in between. A region that goes
down is modelled by :meth:`pause` (the iterators keep their place, as DynamoDB keeps the writes it
could not deliver) and coming back by :meth:`catch_up` and :meth:`start` again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)
Clients = Callable[[str, str], Any]  # (service, region) -> boto3 client
Image = dict[str, Any] | None  # an item as DynamoDB JSON; None for a removal
_UNSEEN = object()  # an item a region was never seen to hold: it gets the newest image
PAGE = 1000  # stream records per read (GetRecords' largest page)


@dataclass
class _Stream:
    table: str
    region: str
    arn: str
    iterators: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class _Write:
    at: datetime
    image: Image


def _key(keys: dict[str, Any]) -> str:
    return json.dumps(keys, sort_keys=True)


class TableReplicator:
    """Copies writes between the replicas of each table, in the background until :meth:`stop`."""

    def __init__(
        self, client: Clients, tables: Sequence[tuple[str, Sequence[str]]], poll_s: float = 0.1
    ) -> None:
        """Replicates the writes made from now on (the streams are read from their latest record)."""
        self.client = client
        self.poll_s = poll_s
        self.replicated = 0
        self._targets = {table: tuple(regions) for table, regions in tables}
        self._streams = [self._stream(table, region) for table, regions in tables for region in regions]
        self._newest: dict[tuple[str, str], _Write] = {}  # (table, key) -> newest write replicated
        self._copies: dict[tuple[str, str, str], list[Image]] = {}  # (table, region, key) -> in flight
        # (table, region, key) -> the image the region's stream or our copy last gave it
        self._last_seen: dict[tuple[str, str, str], Image | object] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._drained = False  # the last round read every stream to its end

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
        """Replicate in the background (again, after :meth:`pause`)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("already replicating")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="meridian-global-tables", daemon=True)
        self._thread.start()
        return self

    def pause(self) -> None:
        """Stop copying and keep the streams' places: what is written meanwhile is copied later."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)

    stop = pause

    def catch_up(self, rounds: int = 1000) -> int:
        """Copy the writes held back while paused, until every stream is read to its end (writes
        that keep coming are the background's); how many writes were copied."""
        copied = 0
        for _ in range(rounds):
            copied += self.replicate_once()
            if self._drained:
                return copied
        raise TimeoutError(f"the streams still hold a backlog after {rounds} rounds")

    def replicate_once(self) -> int:
        """Read what every stream holds now, then settle each item written: the newest write (last
        writer wins, across rounds) goes to every region whose last known image differs; how many
        writes were copied."""
        self._drained = True
        pages: list[tuple[_Stream, str, dict[str, Any]]] = []
        touched: dict[tuple[str, str], tuple[dict[str, Any], list[_Write]]] = {}
        for stream in self._streams:
            streams = self.client("dynamodbstreams", stream.region)
            for shard, iterator in list(stream.iterators.items()):
                if iterator is None:
                    continue
                page = streams.get_records(ShardIterator=iterator, Limit=PAGE)
                self._drained &= len(page.get("Records", [])) < PAGE
                pages.append((stream, shard, page))
                for record in page.get("Records", []):
                    self._read(stream, record, touched)
        copied = sum(
            self._settle(table, key, keys, writes) for (table, key), (keys, writes) in touched.items()
        )
        for stream, shard, page in pages:  # only once applied
            stream.iterators[shard] = page.get("NextShardIterator")
        self.replicated += copied
        return copied

    def _read(
        self,
        stream: _Stream,
        record: dict[str, Any],
        touched: dict[tuple[str, str], tuple[dict[str, Any], list[_Write]]],
    ) -> None:
        change = record["dynamodb"]
        key = _key(change["Keys"])
        image: Image = None if record["eventName"] == "REMOVE" else change["NewImage"]
        _, writes = touched.setdefault((stream.table, key), (change["Keys"], []))
        self._last_seen[(stream.table, stream.region, key)] = image
        in_flight = self._copies.get((stream.table, stream.region, key), [])
        if image in in_flight:  # our own copy arriving: not a write to replicate
            in_flight.remove(image)
            return
        writes.append(_Write(change["ApproximateCreationDateTime"], image))

    def _settle(self, table: str, key: str, keys: dict[str, Any], writes: list[_Write]) -> int:
        newest = self._newest.get((table, key))
        for write in writes:  # in the order read; a later one of the same time wins
            if newest is None or write.at >= newest.at:
                newest = write
        if newest is None:  # only copies of ours arrived, and nothing was ever written: nothing to do
            return 0
        self._newest[(table, key)] = newest
        behind = [
            region
            for region in self._targets[table]
            if self._last_seen.get((table, region, key), _UNSEEN) != newest.image
        ]
        return self._copy(table, keys, key, newest.image, behind)

    def _copy(self, table: str, keys: dict[str, Any], key: str, image: Image, regions: list[str]) -> int:
        copied = 0
        for region in regions:
            self._copies.setdefault((table, region, key), []).append(image)
            dynamodb = self.client("dynamodb", region)
            if image is None:
                if "Item" not in dynamodb.get_item(TableName=table, Key=keys, ConsistentRead=True):
                    self._copies[(table, region, key)].remove(image)  # removing nothing writes nothing
                    continue
                dynamodb.delete_item(TableName=table, Key=keys)
            else:
                dynamodb.put_item(TableName=table, Item=image)
            self._last_seen[(table, region, key)] = image
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
