"""Stream publisher (batching, droppable records dropped oldest first, kept records kept on failure, in
order, and ``delivered_through``), the market-data and drop-copy records, and KinesisSink."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from itertools import count
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from meridian.domain import DEFAULT_INSTRUMENTS
from meridian.executions import drop_copy_record, trade_id_base
from meridian.kpl import user_records
from meridian.protocol import Fill
from meridian_hotpath.dropcopy import execution_record
from meridian_hotpath.marketdata import top_of_book_record, trade_record
from meridian_hotpath.publisher import Delivery, InMemorySink, KinesisSink, StreamPublisher, StreamRecord

STREAM = "meridian-market-data"
INSTRUMENTS = {instrument.symbol: instrument for instrument in DEFAULT_INSTRUMENTS}
WAIT = 10.0  # seconds before a test gives up waiting (a hang, never an assertion on time)


def fill(trade_id: int, symbol: str = "AAPL") -> Fill:
    return Fill(1, trade_id, trade_id, symbol, 19000, 5, 1, 1, 2, "a", "b", "c1", "c2", 0, 0)


def trade(trade_id: int, symbol: str = "AAPL") -> StreamRecord:
    return trade_record(fill(trade_id, symbol), 0)


def top(seq: int, symbol: str = "AAPL") -> StreamRecord:
    return top_of_book_record(symbol, seq, (19000, 5, 19010, 7), 0)


def test_records_are_public_json_with_integer_prices() -> None:
    payload = json.loads(trade(3).to_json())
    assert payload == {
        "type": "trade",
        "symbol": "AAPL",
        "seq": 3,
        "trade_id": 3,
        "price": 19000,
        "quantity": 5,
        "aggressor_side": 1,
        "timestamp_ns": 0,
    }
    book = json.loads(top(4).to_json())
    assert book["type"] == "top_of_book"
    assert (book["bid_price"], book["ask_price"], book["ask_quantity"]) == (19000, 19010, 7)


async def drain(publisher: StreamPublisher) -> None:
    publisher.start()
    await publisher.close(timeout=5)


def test_publisher_delivers_trades_before_top_of_book_in_batches() -> None:
    sink = InMemorySink()
    publisher = StreamPublisher(sink, batch_size=3)
    publisher.publish([top(1), trade(1), trade(2), top(2)])
    asyncio.run(drain(publisher))
    assert [r.payload["type"] for r in sink.records] == ["trade", "trade", "top_of_book", "top_of_book"]
    assert sink.calls == 2
    assert publisher.stats.published == 4


def test_top_of_book_drops_oldest_under_pressure_but_trades_are_kept() -> None:
    sink = InMemorySink()
    publisher = StreamPublisher(sink, droppable_limit=3)
    publisher.publish([top(seq) for seq in range(1, 11)] + [trade(n) for n in range(1, 11)])
    assert publisher.backlog == (10, 3)
    assert publisher.stats.dropped == 7
    asyncio.run(drain(publisher))
    assert [r.payload["seq"] for r in sink.records if r.droppable] == [8, 9, 10]
    assert [r.payload["trade_id"] for r in sink.records if not r.droppable] == list(range(1, 11))


def test_failed_trades_are_counted_and_retried_in_order() -> None:
    sink = InMemorySink()
    sink.fail_next = 2
    publisher = StreamPublisher(sink, retry_delay=0)
    publisher.publish([trade(1), trade(2), top(1)])
    asyncio.run(drain(publisher))
    assert [r.payload["trade_id"] for r in sink.records if not r.droppable] == [1, 2]
    assert publisher.stats.failures == 4  # two trades, two failed attempts
    assert publisher.stats.dropped == 1  # a stale top of book is not worth retrying


def test_a_sink_that_raises_does_not_stop_the_publisher() -> None:
    class Flaky(InMemorySink):
        def put(self, records: Sequence[StreamRecord]) -> list[StreamRecord]:
            if self.calls == 0:
                self.calls += 1
                raise RuntimeError("sink down")
            return super().put(records)

    sink = Flaky()
    publisher = StreamPublisher(sink, retry_delay=0)
    publisher.publish([trade(1)])
    asyncio.run(drain(publisher))
    assert publisher.stats.sink_errors == 1
    assert [r.payload["trade_id"] for r in sink.records] == [1]


# ---- drop copy: kept records, never dropped, and delivered_through ----------------------------


def execution(seq: int, trade_id: int | None = None, symbol: str = "AAPL") -> StreamRecord:
    trade_fill = fill(trade_id or seq, symbol)._replace(seq=seq)
    return execution_record(trade_fill, INSTRUMENTS[symbol], 0)


def test_a_drop_copy_record_is_the_shared_json_keyed_by_symbol_and_never_droppable() -> None:
    trade_fill = Fill(4, 9, trade_id_base(3) + 17, "MSFT", 42005, 7, 2, 11, 12, "b", "s", "cb", "cs", 3, 0)
    record = execution_record(trade_fill, INSTRUMENTS["MSFT"], 1_234)
    assert (record.partition_key, record.seq, record.droppable) == ("MSFT", 9, False)
    assert json.loads(record.to_json()) == drop_copy_record(trade_fill, "420.05", 1_234)
    assert json.loads(record.to_json())["execution_id"] == "3-17"


class ScriptedSink:
    """Fails, call by call, the records its script marks (a PutRecords that fails some records)."""

    def __init__(self, script: list[list[bool]]) -> None:
        self.script = deque(script)
        self.attempts: list[list[StreamRecord]] = []
        self.delivered: list[StreamRecord] = []

    def put(self, records: Sequence[StreamRecord]) -> list[StreamRecord]:
        self.attempts.append(list(records))
        marks = self.script.popleft() if self.script else []
        failed = [record for i, record in enumerate(records) if i < len(marks) and marks[i]]
        self.delivered += [record for i, record in enumerate(records) if not (i < len(marks) and marks[i])]
        return failed


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.booleans(), min_size=1, max_size=8), min_size=1, max_size=8),
    st.lists(st.lists(st.booleans(), max_size=12), max_size=12),
    st.integers(1, 6),
)
def test_kept_records_are_never_dropped_and_every_attempt_sends_them_in_order(
    groups: list[list[bool]], script: list[list[bool]], batch_size: int
) -> None:
    """Each group is one ``publish`` call (True: a drop-copy execution, False: a top of book); the
    script fails records call by call. Every execution arrives exactly once, retried in order."""
    seqs = count(1)
    published = [[execution(next(seqs)) if kept else top(next(seqs)) for kept in group] for group in groups]
    sink = ScriptedSink(script)
    publisher = StreamPublisher(sink, droppable_limit=3, batch_size=batch_size, retry_delay=0)

    async def scenario() -> None:
        publisher.start()
        for group in published:
            publisher.publish(group)
            await asyncio.sleep(0)
        await publisher.close(timeout=WAIT)

    asyncio.run(scenario())
    executions = [record for group in published for record in group if not record.droppable]
    delivered = [record for record in sink.delivered if not record.droppable]
    assert sorted(record.seq for record in delivered) == [record.seq for record in executions]
    for attempt in sink.attempts:
        kept = [record.seq for record in attempt if not record.droppable]
        assert kept == sorted(kept), "a retry never overtakes an older execution"
    tops = [record for record in sink.delivered if record.droppable]
    assert len({record.seq for record in tops}) == len(tops)
    assert publisher.backlog == (0, 0)
    assert publisher.stats.published == len(sink.delivered)
    assert publisher.stats.failures == sum(
        1 for attempt in sink.attempts for record in attempt if not record.droppable
    ) - len(executions)


class SwitchableSink(InMemorySink):
    """Refuses every record with a seq in ``down`` (all of them while ``all_down`` is set)."""

    def __init__(self, all_down: bool = False) -> None:
        super().__init__()
        self.down: set[int] = set()
        self.all_down = threading.Event()
        if all_down:
            self.all_down.set()

    def put(self, records: Sequence[StreamRecord]) -> list[StreamRecord]:
        self.calls += 1
        if self.all_down.is_set():
            return list(records)
        failed = [record for record in records if record.seq in self.down]
        self.records += [record for record in records if record.seq not in self.down]
        return failed


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds (gives up after WAIT seconds: a hang, not a timing)."""
    await asyncio.wait_for(_poll(condition), WAIT)


async def _poll(condition: Callable[[], bool]) -> None:
    while not condition():
        await asyncio.sleep(0.001)


def test_delivered_through_resolves_once_every_execution_up_to_the_seq_is_in_the_sink() -> None:
    async def scenario() -> None:
        sink = SwitchableSink()
        sink.down = {3}
        publisher = StreamPublisher(sink, retry_delay=0.001)
        publisher.publish([execution(1), execution(2, 2), execution(2, 3), execution(3, 4), top(3)])
        assert publisher.delivered_through(0).done()  # nothing at or before seq 0
        through_2, through_3, through_9 = (publisher.delivered_through(seq) for seq in (2, 3, 9))
        assert not through_2.done()
        assert publisher.oldest_undelivered_seq == 1
        publisher.start()
        await asyncio.wait_for(through_2, WAIT)
        await until(lambda: sink.calls >= 3)  # seq 3 keeps failing, and is kept
        assert not through_3.done()
        assert not through_9.done()
        assert (publisher.oldest_undelivered_seq, publisher.backlog) == (3, (1, 0))
        assert publisher.delivered_through(2).done()
        sink.down.clear()
        await asyncio.wait_for(asyncio.gather(through_3, through_9), WAIT)
        assert publisher.backlog == (0, 0)
        assert [record.payload["trade_id"] for record in sink.records if not record.droppable] == [1, 2, 3, 4]
        await publisher.close(timeout=WAIT)

    asyncio.run(scenario())


def test_an_abandoned_wait_leaves_the_publisher_working() -> None:
    async def scenario() -> None:
        sink = SwitchableSink(all_down=True)
        publisher = StreamPublisher(sink, retry_delay=0.001)
        publisher.publish([execution(1)])
        publisher.start()
        waiting = publisher.delivered_through(1)
        await until(lambda: sink.calls >= 2)
        waiting.cancel()  # a snapshot that gave up at shutdown
        sink.all_down.clear()
        await asyncio.wait_for(publisher.delivered_through(1), WAIT)
        assert publisher.stats.failures >= 2
        await publisher.close(timeout=WAIT)

    asyncio.run(scenario())


# ---- KinesisSink against moto ---------------------------------------------------------------


@pytest.fixture
def kinesis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("kinesis", region_name="us-east-1")
        client.create_stream(StreamName=STREAM, ShardCount=2)
        yield client


def stream_records(client: Any) -> list[dict[str, Any]]:
    """Every user record on the stream (aggregated records split), with its Kinesis record's key."""
    found = []
    for shard in client.describe_stream(StreamName=STREAM)["StreamDescription"]["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        response = client.get_records(ShardIterator=iterator, Limit=10_000)
        found += [
            {"key": r["PartitionKey"], **json.loads(data)}
            for r in response["Records"]
            for data in user_records(r["Data"])
        ]
    return found


def test_kinesis_sink_aggregates_each_symbols_records_into_one_kinesis_record(kinesis: Any) -> None:
    sink = KinesisSink(STREAM, client=kinesis)
    records = [trade(1, "AAPL"), trade(2, "MSFT"), top(3, "MSFT"), trade(4, "AAPL")]
    delivery = sink.put(records)
    assert (delivery.failed, delivery.deferred, delivery.superseded) == ([], [], [])
    assert (sink.calls, sink.records_sent) == (1, 2)
    delivered = stream_records(kinesis)
    assert sorted((r["key"], r["seq"], r["type"]) for r in delivered) == [
        ("AAPL", 1, "trade"),
        ("AAPL", 4, "trade"),
        ("MSFT", 2, "trade"),
        ("MSFT", 3, "top_of_book"),
    ]
    assert all(r["key"] == r["symbol"] for r in delivered)


def test_kinesis_sink_splits_calls_at_500_records(kinesis: Any) -> None:
    calls: list[int] = []
    real = kinesis.put_records

    def counting(**kwargs: Any) -> Any:
        calls.append(len(kwargs["Records"]))
        return real(**kwargs)

    kinesis.put_records = counting
    roomy = KinesisSink(STREAM, client=kinesis, shard_records_per_s=1_000_000)  # the budget is not the point
    delivery = roomy.put([trade(n, f"S{n:04d}") for n in range(1, 1202)])  # 1,201 symbols: one record each
    assert (delivery.failed, delivery.deferred) == ([], [])
    assert calls == [500, 500, 201]
    assert len(stream_records(kinesis)) == 1201


def test_kinesis_sink_retries_what_failed_and_sends_nothing_of_a_key_past_its_failed_record(
    kinesis: Any,
) -> None:
    real = kinesis.put_records
    sent: list[list[tuple[str, list[int]]]] = []

    def partially_failing(**kwargs: Any) -> Any:
        entries = kwargs["Records"]
        sent.append(
            [(e["PartitionKey"], [json.loads(u)["seq"] for u in user_records(e["Data"])]) for e in entries]
        )
        if len(sent) > 1:
            return real(**kwargs)
        # First call: MSFT's record fails (a service error), AAPL's goes through.
        passed = [e for e in entries if e["PartitionKey"] != "MSFT"]
        real(StreamName=kwargs["StreamName"], Records=passed)
        results = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
            if e["PartitionKey"] == "MSFT"
            else {"SequenceNumber": "1", "ShardId": "shardId-000000000000"}
            for e in entries
        ]
        return {"FailedRecordCount": len(entries) - len(passed), "Records": results}

    kinesis.put_records = partially_failing
    delays: list[float] = []
    sink = KinesisSink(STREAM, client=kinesis, sleep=delays.append)
    delivery = sink.put([trade(1, "AAPL"), trade(2, "MSFT"), trade(3, "MSFT"), trade(4, "AAPL")])
    assert (delivery.failed, delivery.deferred) == ([], [])
    assert sent == [[("AAPL", [1, 4]), ("MSFT", [2, 3])], [("MSFT", [2, 3])]]
    assert delays == [0.05]
    assert sorted(r["seq"] for r in stream_records(kinesis)) == [1, 2, 3, 4]


def test_kinesis_sink_gives_back_what_still_fails_after_its_attempts(kinesis: Any) -> None:
    def failing(**kwargs: Any) -> Any:
        raise RuntimeError("endpoint unreachable")

    kinesis.put_records = failing
    delays: list[float] = []
    sink = KinesisSink(STREAM, client=kinesis, max_attempts=3, base_delay=0.1, sleep=delays.append)
    records = [trade(1), trade(2)]
    assert sink.put(records).failed == records
    assert delays == [0.1, 0.2]


class DeferringSink:
    """Answers with a Delivery: the first call defers AAPL's records and supersedes all but MSFT's
    newest book; later calls take everything."""

    def __init__(self) -> None:
        self.calls: list[list[StreamRecord]] = []

    def put(self, records: Sequence[StreamRecord]) -> Delivery:
        self.calls.append(list(records))
        if len(self.calls) > 1:
            return Delivery()
        msft_books = [r for r in records if r.droppable and r.partition_key == "MSFT"]
        return Delivery(
            deferred=[r for r in records if r.partition_key == "AAPL"],
            superseded=msft_books[:-1],
            retry_after=0.001,
            throttled=2,
        )


def test_deferred_records_come_back_first_in_order_and_superseded_ones_count_as_dropped() -> None:
    sink = DeferringSink()
    publisher = StreamPublisher(sink, retry_delay=10.0)  # a deferral is not a failure: no retry delay
    records = [trade(1), top(2, "MSFT"), trade(3, "MSFT"), top(4), top(5, "MSFT"), trade(6)]

    async def scenario() -> None:
        publisher.start()
        publisher.publish(records)
        await until(lambda: len(sink.calls) == 2)
        await publisher.close(timeout=WAIT)

    asyncio.run(scenario())
    assert [(r.partition_key, r.seq) for r in sink.calls[1]] == [("AAPL", 1), ("AAPL", 6), ("AAPL", 4)]
    stats = publisher.stats
    assert (stats.published, stats.superseded, stats.dropped) == (5, 1, 1)
    assert (stats.deferred, stats.throttled, stats.failures) == (3, 2, 0)
    assert publisher.backlog == (0, 0)


def test_a_batch_waits_its_linger_for_company_unless_it_is_full() -> None:
    sink = InMemorySink()

    async def scenario(linger: float, batch_size: int) -> int:
        sink.calls = 0
        publisher = StreamPublisher(sink, linger=linger, batch_size=batch_size)
        publisher.start()
        publisher.publish([trade(1)])
        await asyncio.sleep(0.01)
        publisher.publish([trade(2)])
        await publisher.close(timeout=WAIT)
        return sink.calls

    assert asyncio.run(scenario(linger=WAIT, batch_size=100)) == 1  # the second came within the linger
    assert asyncio.run(scenario(linger=WAIT, batch_size=1)) == 2  # a full batch does not wait
