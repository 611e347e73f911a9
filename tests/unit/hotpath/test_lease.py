"""The shard lease on DynamoDB (moto): one holder per epoch, conditional takeover, renewal, fencing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from meridian_hotpath import lease as lease_module
from meridian_hotpath.lease import DynamoLeaseStore, HeldLease, Lease, LeaseError

TABLE = "leases"


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoLeaseStore]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "shard", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "shard", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoLeaseStore(TABLE, client, skew_ms=0)


def test_the_first_holder_gets_epoch_one_and_a_live_lease_keeps_others_out(store: DynamoLeaseStore) -> None:
    first = store.acquire("A", "n1", 10_000, "h1:9001", "h1:9002")
    assert first is not None
    assert (first.epoch, first.holder, first.in_sync) == (1, "n1", False)
    assert store.acquire("A", "n2", 10_000, "h2:9001", "h2:9002") is None
    assert store.read("A") == first
    assert store.read("B") is None


def test_a_lease_starts_above_the_epochs_its_takers_journal_holds(
    store: DynamoLeaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A shard restored into a region whose lease table starts empty (DR): its journal's epochs go on.
    restored = store.acquire("A", "n1", 1_000, "h1:9001", "h1:9002", min_epoch=8)
    assert restored is not None
    assert restored.epoch == 8
    monkeypatch.setattr(lease_module, "wall_ms", lambda: restored.expires_at_ms + 5)
    # The table's epoch wins when it is higher than what the taker's journal holds.
    taken = store.acquire("A", "n2", 1_000, "h2:9001", "h2:9002", min_epoch=3)
    assert taken is not None
    assert taken.epoch == 9


def test_an_expired_lease_is_taken_in_the_next_epoch_and_the_old_holder_cannot_renew(
    store: DynamoLeaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.acquire("A", "n1", 1_000, "h1:9001", "h1:9002")
    assert first is not None
    later = first.expires_at_ms + 5
    monkeypatch.setattr(lease_module, "wall_ms", lambda: later)
    second = store.acquire("A", "n2", 1_000, "h2:9001", "h2:9002")
    assert second is not None
    assert second.epoch == 2
    assert store.renew(first, 1_000, True) is None  # fenced: another holder, another epoch
    renewed = store.renew(second, 1_000, True)
    assert renewed is not None
    assert renewed.in_sync
    assert store.read("A") == renewed


def test_the_holder_takes_its_own_lease_again_in_a_new_epoch(store: DynamoLeaseStore) -> None:
    first = store.acquire("A", "n1", 10_000, "h1:9001", "h1:9002")
    again = store.acquire("A", "n1", 10_000, "h1:9001", "h1:9002")
    assert first is not None
    assert again is not None
    assert again.epoch == first.epoch + 1


def test_a_race_lost_between_read_and_write_is_none(
    store: DynamoLeaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.acquire("A", "n1", 1, "h1:9001", "h1:9002")
    stale = store.read("A")
    assert stale is not None
    store.client.update_item(  # someone else moved the epoch on meanwhile
        TableName=TABLE,
        Key={"shard": {"S": "A"}},
        UpdateExpression="SET epoch = :e",
        ExpressionAttributeValues={":e": {"N": "7"}},
    )
    monkeypatch.setattr(store, "read", lambda shard: stale)
    assert store.acquire("A", "n2", 1_000, "h2:9001", "h2:9002") is None


def test_epochs_run_out_loudly(store: DynamoLeaseStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "read", lambda shard: Lease(shard, "n1", lease_module.MAX_EPOCH, 0, "", ""))
    with pytest.raises(LeaseError, match="run out of epochs"):
        store.acquire("A", "n2", 1_000, "", "")


class _Broken:
    def __getattr__(self, name: str) -> Any:
        if name == "exceptions":
            return boto3.client("dynamodb", region_name="us-east-1").exceptions
        raise AttributeError(name)

    def get_item(self, **kwargs: Any) -> Any:
        raise ConnectionError("no route to DynamoDB")

    def put_item(self, **kwargs: Any) -> Any:
        raise ConnectionError("no route to DynamoDB")

    def update_item(self, **kwargs: Any) -> Any:
        raise ConnectionError("no route to DynamoDB")


def test_an_unreachable_store_is_a_lease_error_not_a_lost_lease(store: DynamoLeaseStore) -> None:
    held = store.acquire("A", "n1", 10_000, "h1:9001", "h1:9002")
    assert held is not None
    broken = DynamoLeaseStore(TABLE, _Broken())
    with pytest.raises(LeaseError, match="cannot read"):
        broken.read("A")
    with pytest.raises(LeaseError, match="cannot renew"):
        broken.renew(held, 1_000, False)
    # The holder's view: an unreachable store does not lose the lease; its deadline decides.
    view = HeldLease(broken, held, ttl_ms=10_000, margin_ms=1_000)
    assert view.renew() is True
    assert view.valid()
    assert view.renewals == 0
    expired = HeldLease(broken, held, ttl_ms=0, margin_ms=0)
    assert expired.renew() is False


def test_a_held_lease_renews_and_is_lost_for_good_once_taken(
    store: DynamoLeaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = store.acquire("A", "n1", 1_000, "h1:9001", "h1:9002")
    assert lease is not None
    held = HeldLease(store, lease, ttl_ms=1_000, margin_ms=250)
    assert held.renew(True)
    assert held.renewals == 1
    assert held.lease.in_sync
    assert held.renew()
    assert held.lease.in_sync
    monkeypatch.setattr(lease_module, "wall_ms", lambda: held.lease.expires_at_ms + 5)
    assert store.acquire("A", "n2", 1_000, "h2:9001", "h2:9002") is not None
    assert held.renew() is False
    assert held.lost
    assert not held.valid()
    assert held.epoch == lease.epoch


def test_a_lease_whose_deadline_passed_is_never_renewed_in_its_epoch_even_if_nobody_took_it(
    store: DynamoLeaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    lease = store.acquire("A", "n1", 1_000, "h1:9001", "h1:9002")
    assert lease is not None
    held = HeldLease(store, lease, ttl_ms=1_000, margin_ms=250)
    resumed = held.valid_until + 0.5  # the node paused (SIGSTOP, a stall) past its deadline
    monkeypatch.setattr(time, "monotonic", lambda: resumed)
    assert not held.valid()
    assert held.renew() is False
    assert held.lost
    assert store.read("A") == lease  # no renewal was even sent: the stored lease is as it was
