"""Batching, retries, book ordering and idempotent trades of the market-data consumer (counting fake
DynamoDB)."""

from __future__ import annotations

import random
from typing import Any

import boto3
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from market_data.consumer import consume
from market_data.items import iso_time, trade_sort_key
from market_data.writer import MarketDataWriter, RetryPolicy
from moto import mock_aws

from meridian_local.delivery.lambda_events import LocalLambdaContext, kinesis_event
from tests.counting_dynamodb import CountingDynamoDB
from tests.unit.market_data.conftest import create_market_data_table

TTL = 86_400
T0 = 1_772_461_800_000_000_000


def top(symbol: str, seq: int, bid: int = 19000) -> dict[str, Any]:
    return {
        "type": "top_of_book",
        "symbol": symbol,
        "seq": seq,
        "bid_price": bid,
        "bid_quantity": 1,
        "ask_price": bid + 5,
        "ask_quantity": 2,
        "timestamp_ns": T0 + seq,
    }


def print_(symbol: str, seq: int, trade_id: int) -> dict[str, Any]:
    return {
        "type": "trade",
        "symbol": symbol,
        "seq": seq,
        "trade_id": trade_id,
        "price": 19000 + trade_id % 10,
        "quantity": 1 + trade_id % 7,
        "aggressor_side": 1 + trade_id % 2,
        "timestamp_ns": T0 + seq,
    }


def writer(fake: CountingDynamoDB, attempts: int = 4) -> MarketDataWriter:
    return MarketDataWriter(
        fake, "MarketData", RetryPolicy(attempts=attempts), concurrency=1, sleep=lambda _: None
    )


def failed_sequences(response: Any) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def test_books_collapse_to_the_newest_and_trades_go_25_per_call() -> None:
    payloads: list[dict[str, Any]] = []
    for seq in range(1, 1001):
        payloads.append(print_("AAPL", seq, seq) if seq % 4 == 0 else top(("AAPL", "MSFT")[seq % 2], seq))
    fake = CountingDynamoDB()
    outcome = consume(kinesis_event(payloads), LocalLambdaContext(), writer(fake), TTL)
    assert failed_sequences(outcome.response) == []
    assert fake.batch_write_calls == 10  # 250 trades / 25
    assert fake.put_item_calls == 2  # one book per symbol
    assert fake.items[("SYMBOL#AAPL", "BOOK")]["node_seq"] == {"N": "998"}
    assert fake.items[("SYMBOL#MSFT", "BOOK")]["node_seq"] == {"N": "999"}
    assert sum(1 for _, sk in fake.items if sk.startswith("TRADE#")) == 250


def test_an_older_book_never_overwrites_a_newer_one() -> None:
    fake = CountingDynamoDB()
    consume(kinesis_event([top("AAPL", 50, bid=1)]), LocalLambdaContext(), writer(fake), TTL)
    outcome = consume(kinesis_event([top("AAPL", 40, bid=2)]), LocalLambdaContext(), writer(fake), TTL)
    assert outcome.report.stale_books_skipped == 1
    assert failed_sequences(outcome.response) == []
    assert fake.items[("SYMBOL#AAPL", "BOOK")]["bid_price"] == {"N": "0.01"}
    # Inside one batch, order of arrival does not matter either: the highest seq wins.
    consume(
        kinesis_event([top("MSFT", 9, bid=9), top("MSFT", 3, bid=3)]), LocalLambdaContext(), writer(fake), TTL
    )
    assert fake.items[("SYMBOL#MSFT", "BOOK")]["node_seq"] == {"N": "9"}


def test_duplicate_trades_in_a_batch_are_written_once() -> None:
    fake = CountingDynamoDB()
    outcome = consume(
        kinesis_event([print_("AAPL", 7, 1), print_("AAPL", 7, 1), print_("AAPL", 7, 2)]),
        LocalLambdaContext(),
        writer(fake),
        TTL,
    )
    assert failed_sequences(outcome.response) == []
    assert fake.items_sent == 2


def test_unprocessed_items_are_retried_until_written() -> None:
    fake = CountingDynamoDB(throttle=lambda call, requests: len(requests) // 2 if call <= 3 else 0)
    outcome = consume(kinesis_event([print_("AAPL", i, i) for i in range(1, 26)]), None, writer(fake), TTL)
    assert failed_sequences(outcome.response) == []
    assert fake.batch_write_calls == 4
    assert sum(1 for _, sk in fake.items if sk.startswith("TRADE#")) == 25


def test_items_still_unprocessed_after_retries_report_their_first_record() -> None:
    fake = CountingDynamoDB(throttle=lambda call, requests: 3)  # the last 3 of every call never go through
    event = kinesis_event([print_("AAPL", i, i) for i in range(1, 11)])
    outcome = consume(event, None, writer(fake, attempts=3), TTL)
    sequences = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    assert failed_sequences(outcome.response) == sequences[-3:]
    assert fake.batch_write_calls == 3


def test_a_poison_record_fails_alone() -> None:
    event = kinesis_event([top("AAPL", 1), b"garbage", print_("AAPL", 2, 1)])
    fake = CountingDynamoDB()
    outcome = consume(event, None, writer(fake), TTL)
    assert failed_sequences(outcome.response) == [event["Records"][1]["kinesis"]["sequenceNumber"]]
    assert len(fake.items) == 2


updates = st.lists(
    st.tuples(st.sampled_from(["AAPL", "MSFT", "ESZ6"]), st.integers(min_value=1, max_value=10_000)),
    min_size=1,
    max_size=80,
)


@settings(max_examples=80, deadline=None)
@given(updates, st.randoms(use_true_random=False), st.integers(min_value=1, max_value=10))
def test_any_batching_and_replay_leaves_the_newest_book(
    stream: list[tuple[str, int]], rnd: random.Random, batches: int
) -> None:
    """However the stream is cut into batches, replayed or reordered, each book ends at its max seq."""
    payloads = [top(symbol, seq, bid=seq) for symbol, seq in stream]
    cuts = (
        sorted(rnd.sample(range(1, len(payloads)), min(batches, len(payloads) - 1)))
        if len(payloads) > 1
        else []
    )
    chunks = [payloads[a:b] for a, b in zip([0, *cuts], [*cuts, len(payloads)], strict=True)]
    chunks += rnd.sample(chunks, k=len(chunks) // 2)  # replays after later batches (bisect, retries)
    fake = CountingDynamoDB()
    for chunk in chunks:
        consume(kinesis_event(rnd.sample(chunk, len(chunk))), None, writer(fake), TTL)
    for symbol in {s for s, _ in stream}:
        newest = max(seq for s, seq in stream if s == symbol)
        assert fake.items[(f"SYMBOL#{symbol}", "BOOK")]["node_seq"] == {"N": str(newest)}


def resent(payload: dict[str, Any], later_s: int = 3_600) -> dict[str, Any]:
    """The copy a restarted node re-sends: the same trade, its re-send time, marked."""
    return payload | {"timestamp_ns": payload["timestamp_ns"] + later_s * 1_000_000_000, "resent": True}


def tape(fake: CountingDynamoDB) -> dict[tuple[str, str], dict[str, Any]]:
    return {key: item for key, item in fake.items.items() if key[1].startswith("TRADE#")}


def test_a_redelivered_trade_rewrites_its_item_unchanged() -> None:
    fake = CountingDynamoDB()
    record = print_("AAPL", 12, 5)
    consume(kinesis_event([record]), None, writer(fake), TTL)
    first = dict(tape(fake))
    outcome = consume(kinesis_event([record]), None, writer(fake), TTL)
    assert failed_sequences(outcome.response) == []
    assert tape(fake) == first


def test_a_re_sent_trade_leaves_the_copy_the_tape_holds() -> None:
    """Same item key, but a later time: written as it is, it would move the print to the re-send."""
    fake = CountingDynamoDB()
    original = print_("AAPL", 12, 5)
    consume(kinesis_event([original]), None, writer(fake), TTL)
    first = dict(tape(fake))
    outcome = consume(kinesis_event([resent(original), print_("AAPL", 13, 6)]), None, writer(fake), TTL)
    assert failed_sequences(outcome.response) == []
    assert outcome.report.known_trades_skipped == 1
    key = ("SYMBOL#AAPL", trade_sort_key(12, 5))
    assert tape(fake)[key] == first[key]  # occurred_at and expires_at of the first copy
    assert len(tape(fake)) == 2


def test_a_re_sent_trade_the_tape_lacks_is_written() -> None:
    fake = CountingDynamoDB()
    again = resent(print_("AAPL", 12, 5))
    outcome = consume(kinesis_event([again]), None, writer(fake), TTL)
    assert failed_sequences(outcome.response) == []
    assert (outcome.report.known_trades_skipped, fake.put_item_calls) == (0, 1)
    [item] = tape(fake).values()
    assert item["node_seq"] == {"N": "12"}
    assert item["occurred_at"] == {"S": iso_time(again["timestamp_ns"])}


class ThrottledPuts(CountingDynamoDB):
    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self.put_item_calls += 1
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "PutItem")


def test_a_re_sent_trade_failing_its_retries_reports_its_record() -> None:
    fake = ThrottledPuts()
    event = kinesis_event([print_("AAPL", 11, 4), resent(print_("AAPL", 12, 5))])
    outcome = consume(event, None, writer(fake, attempts=2), TTL)
    assert failed_sequences(outcome.response) == [event["Records"][1]["kinesis"]["sequenceNumber"]]
    assert fake.put_item_calls == 2  # retried, then reported


trade_ids = st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=40, unique=True)


@settings(max_examples=80, deadline=None)
@given(trade_ids, st.randoms(use_true_random=False), st.integers(min_value=1, max_value=8))
def test_the_tape_keeps_the_first_copy_of_every_trade_however_batched_and_replayed(
    ids: list[int], rnd: random.Random, batches: int
) -> None:
    """A node sent some trades before a crash (the others were lost), then re-sent all of them;
    the mapping cuts the stream into batches and retries some. Each trade's item is its first copy."""
    originals = [print_("AAPL", n, n) for n in sorted(ids)]
    delivered = [record for record in originals if rnd.random() < 0.6]
    stream = delivered + [resent(record) for record in originals]
    cuts = sorted(rnd.sample(range(1, len(stream)), min(batches, len(stream) - 1))) if len(stream) > 1 else []
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    chunks += rnd.sample(chunks, k=len(chunks) // 2)  # retries after later batches
    fake = CountingDynamoDB()
    for chunk in chunks:
        outcome = consume(kinesis_event(chunk), None, writer(fake), TTL)
        assert failed_sequences(outcome.response) == []
    first = {record["trade_id"]: record for record in reversed(stream)}  # the earliest copy wins
    assert len(tape(fake)) == len(ids)
    for trade_id, record in first.items():
        item = tape(fake)[("SYMBOL#AAPL", trade_sort_key(trade_id, trade_id))]
        assert item["occurred_at"] == {"S": iso_time(record["timestamp_ns"])}, trade_id


def book(seq: int, node: int, halted: bool, bid: int) -> dict[str, Any]:
    return {
        "type": "book",
        "symbol": "AAPL",
        "seq": seq,
        "book_seq": seq,
        "levels": 1,
        "bids": [[bid, 1]],
        "asks": [],
        "timestamp_ns": T0 + seq,
        "node": node,
        "halted": halted,
    }


# A move of AAPL from node 1 to node 2, as the projection receives it: the source halts, the
# destination takes the copies (its seqs are far below the source's) and halts, the source's book
# empties as the copies are removed, the destination resumes. Then late and reordered repeats.
MOVE = [
    (book(900, 1, False, 1), 1),
    (book(901, 1, True, 1), 1),  # source halted
    (book(40, 2, False, 2), 2),  # destination copying (the stored book is halted: taken over)
    (book(41, 2, True, 2), 2),  # destination halted until the route switches
    (book(902, 1, True, 3), 2),  # the source's emptied book: another node's, halted: ignored
    (book(42, 2, False, 2), 2),  # resumed on the destination
    (book(903, 1, False, 4), 2),  # the old owner trading again never takes a trading book over
    (book(901, 1, True, 1), 2),  # a late repeat of the source's halt
]


def _run_move(client: Any) -> list[tuple[int, int]]:
    seen = []
    for payload, _ in MOVE:
        consume(
            kinesis_event([payload]),
            LocalLambdaContext(),
            MarketDataWriter(
                client, "MarketData", RetryPolicy(attempts=1), concurrency=1, sleep=lambda _: None
            ),
            TTL,
        )
        stored = _stored(client)
        seen.append((int(stored["node"]["N"]), int(stored["node_seq"]["N"])))
    return seen


def _stored(client: Any) -> dict[str, Any]:
    if isinstance(client, CountingDynamoDB):
        return client.items[("SYMBOL#AAPL", "BOOK")]
    key = {"pk": {"S": "SYMBOL#AAPL"}, "sk": {"S": "BOOK"}}
    item: dict[str, Any] = client.get_item(TableName="MarketData", Key=key)["Item"]
    return item


def test_a_moved_symbols_book_is_the_new_owners_whatever_the_old_one_sends_after() -> None:
    expected = [(1, 900), (1, 901), (2, 40), (2, 41), (2, 41), (2, 42), (2, 42), (2, 42)]
    assert [node for _, node in MOVE] == [n for n, _ in expected]
    assert _run_move(CountingDynamoDB()) == expected
    with mock_aws():  # DynamoDB's own evaluation of the same condition expressions
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_market_data_table(ddb, "MarketData")
        assert _run_move(ddb) == expected
