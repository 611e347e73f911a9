"""Batching, retries and book ordering of the market-data consumer (counting fake DynamoDB)."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from market_data.consumer import consume
from market_data.writer import MarketDataWriter, RetryPolicy

from meridian.executions import trade_id_base
from meridian_local.counting_dynamodb import CountingDynamoDB
from meridian_local.lambda_events import LocalLambdaContext, eventbridge_event, kinesis_event
from tests.pipeline_factories import trade

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


def test_the_nodes_print_and_the_trade_event_make_one_tape_item() -> None:
    event = eventbridge_event(trade("1-5", price="190.05", node_seq=12))
    fake = CountingDynamoDB()
    node_print = print_("AAPL", 12, trade_id_base(1) + 5)  # node 1's fifth trade
    outcome = consume(kinesis_event([node_print, event]), None, writer(fake), TTL)
    assert failed_sequences(outcome.response) == []
    [item] = [v for k, v in fake.items.items() if k[1].startswith("TRADE#")]
    assert item["execution_id"] == {"S": "1-5"}
    assert item["price"] == {"N": "190.05"}
