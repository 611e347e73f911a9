"""Leadership of a shard: a lease in DynamoDB, with an epoch that every journal record carries.

One item per shard in the lease table::

    {"shard": "A", "holder": "node-a1", "epoch": 7, "expires_at_ms": 1764...,
     "client": "10.0.1.10:9001", "replication": "10.0.1.10:9002"}

* **Acquire** (a node that finds no live holder): a conditional write that succeeds only if the
  item is absent or its lease has expired (or already names this node), and increments the epoch.
  Two nodes racing for it cannot both win: DynamoDB applies conditional writes one at a time.
* **Renew** (the holder, every ``ttl / 3``): a conditional write on holder and epoch that pushes
  ``expires_at_ms`` on. A renewal that fails because the item changed means another node took over.
* **Self-fencing.** The holder counts its lease from the moment it *sent* its last successful
  renewal (monotonic clock) and stops answering ``margin`` before that lease could run out
  (``valid_until``), whether or not it hears from DynamoDB; a standby takes over only once
  ``expires_at_ms`` (wall clock) has passed by ``skew`` more. With clocks within ``skew`` of each
  other (Amazon Time Sync keeps EC2 well inside a millisecond), the old holder has stopped before
  the new one starts: two primaries never answer in the same epoch, nor in overlapping time.

Epochs go into the journal's 16-bit epoch field: a shard can change hands 65,535 times.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

MAX_EPOCH = 0xFFFF
DEFAULT_TTL_MS = 2000
DEFAULT_SKEW_MS = 250


class LeaseError(Exception):
    """The lease store could not be read or written (not a lost race: that is ``None``/``False``)."""


@dataclass(frozen=True, slots=True)
class Lease:
    shard: str
    holder: str
    epoch: int
    expires_at_ms: int
    client: str  # where clients reach the holder (host:port)
    replication: str  # where a standby connects to the holder (host:port)
    in_sync: bool = False  # the holder's standby held every acknowledged order at the last write

    def may_take_over(self, now_ms: int, skew_ms: int = DEFAULT_SKEW_MS) -> bool:
        """A standby may take the shard: the lease ran out, and its standby was in sync (a standby
        that was not could lack acknowledged orders: then only the old holder may come back)."""
        return self.expired(now_ms, skew_ms) and self.in_sync

    def expired(self, now_ms: int, skew_ms: int = DEFAULT_SKEW_MS) -> bool:
        return now_ms > self.expires_at_ms + skew_ms


class LeaseStore(Protocol):
    def read(self, shard: str) -> Lease | None: ...

    def acquire(
        self, shard: str, holder: str, ttl_ms: int, client: str, replication: str, min_epoch: int = 1
    ) -> Lease | None:
        """Take the shard if nobody holds a live lease on it (a new epoch, at least ``min_epoch``);
        None if someone does."""

    def renew(self, lease: Lease, ttl_ms: int, in_sync: bool) -> Lease | None:
        """Push the lease on, saying whether the standby is in sync; None if it is no longer this
        holder's (in this epoch)."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class DynamoLeaseStore:
    """Leases in a DynamoDB table keyed by ``shard`` (string)."""

    def __init__(self, table_name: str, client: Any = None, skew_ms: int = DEFAULT_SKEW_MS) -> None:
        if client is None:
            import boto3  # noqa: PLC0415 - only nodes that replicate pay for boto3 at start

            client = boto3.client("dynamodb")
        self.table_name = table_name
        self.client = client
        self.skew_ms = skew_ms

    def read(self, shard: str) -> Lease | None:
        try:
            item = self.client.get_item(
                TableName=self.table_name, Key={"shard": {"S": shard}}, ConsistentRead=True
            )
        except Exception as exc:
            raise LeaseError(f"cannot read the lease of shard {shard}: {exc!r}") from exc
        found = item.get("Item")
        return None if found is None else _lease(found)

    def acquire(
        self, shard: str, holder: str, ttl_ms: int, client: str, replication: str, min_epoch: int = 1
    ) -> Lease | None:
        now = wall_ms()
        current = self.read(shard)
        # Above the table's epoch and above every epoch the taker's journal holds: a shard restored
        # into a region whose lease table starts afresh (DR) goes on from its journal's epochs.
        epoch = max(1 if current is None else current.epoch + 1, min_epoch)
        if epoch > MAX_EPOCH:
            raise LeaseError(f"shard {shard} has run out of epochs ({MAX_EPOCH})")
        if current is not None and not current.expired(now, self.skew_ms) and current.holder != holder:
            return None
        lease = Lease(shard, holder, epoch, now + ttl_ms, client, replication)
        condition = "attribute_not_exists(#shard)"
        names = {"#shard": "shard"}
        values: dict[str, Any] = {}
        if current is not None:
            # Exactly the item read above (its epoch), and still expired or ours.
            condition = "#epoch = :seen AND (#expires < :stale OR #holder = :me)"
            names = {"#epoch": "epoch", "#expires": "expires_at_ms", "#holder": "holder"}
            values = {
                ":seen": {"N": str(current.epoch)},
                ":stale": {"N": str(now - self.skew_ms)},
                ":me": {"S": holder},
            }
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=_item(lease),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        except Exception as exc:
            raise LeaseError(f"cannot take the lease of shard {shard}: {exc!r}") from exc
        return lease

    def renew(self, lease: Lease, ttl_ms: int, in_sync: bool) -> Lease | None:
        renewed = Lease(
            lease.shard,
            lease.holder,
            lease.epoch,
            wall_ms() + ttl_ms,
            lease.client,
            lease.replication,
            in_sync,
        )
        names = {"#expires": "expires_at_ms", "#holder": "holder", "#epoch": "epoch", "#in_sync": "in_sync"}
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"shard": {"S": lease.shard}},
                UpdateExpression="SET #expires = :until, #in_sync = :in_sync",
                ConditionExpression="#holder = :me AND #epoch = :epoch",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":in_sync": {"BOOL": in_sync},
                    ":until": {"N": str(renewed.expires_at_ms)},
                    ":me": {"S": lease.holder},
                    ":epoch": {"N": str(lease.epoch)},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return None
        except Exception as exc:
            raise LeaseError(f"cannot renew the lease of shard {lease.shard}: {exc!r}") from exc
        return renewed


def _item(lease: Lease) -> dict[str, Any]:
    return {
        "shard": {"S": lease.shard},
        "holder": {"S": lease.holder},
        "epoch": {"N": str(lease.epoch)},
        "expires_at_ms": {"N": str(lease.expires_at_ms)},
        "client": {"S": lease.client},
        "replication": {"S": lease.replication},
        "in_sync": {"BOOL": lease.in_sync},
    }


def _lease(item: dict[str, Any]) -> Lease:
    return Lease(
        item["shard"]["S"],
        item["holder"]["S"],
        int(item["epoch"]["N"]),
        int(item["expires_at_ms"]["N"]),
        item.get("client", {}).get("S", ""),
        item.get("replication", {}).get("S", ""),
        bool(item.get("in_sync", {}).get("BOOL", False)),
    )


class HeldLease:
    """The holder's view of its lease: when it must stop answering (monotonic), and its renewals."""

    def __init__(self, store: LeaseStore, lease: Lease, ttl_ms: int, margin_ms: int) -> None:
        self.store = store
        self.lease = lease
        self.ttl_ms = ttl_ms
        self.margin_ms = margin_ms
        self.valid_until = time.monotonic() + (ttl_ms - margin_ms) / 1000
        self.renewals = 0
        self.lost = False

    @property
    def epoch(self) -> int:
        return self.lease.epoch

    def valid(self) -> bool:
        return not self.lost and time.monotonic() < self.valid_until

    def renew(self, in_sync: bool | None = None) -> bool:
        """One renewal (blocking: run it off the loop), saying whether the standby is in sync (None:
        as last said). False once the lease is gone, and once its deadline passed (a pause, a
        stall): this node stopped answering there, and a lease it let lapse is never revived in its
        epoch, even when nobody took it (it is taken again, in a new one)."""
        sent = time.monotonic()
        if sent >= self.valid_until:
            self.lost = True
            return False
        try:
            renewed = self.store.renew(
                self.lease, self.ttl_ms, self.lease.in_sync if in_sync is None else in_sync
            )
        except LeaseError:
            return self.valid()  # not lost yet: the deadline decides
        if renewed is None:
            self.lost = True
            return False
        self.lease = renewed
        self.valid_until = sent + (self.ttl_ms - self.margin_ms) / 1000
        self.renewals += 1
        return True
