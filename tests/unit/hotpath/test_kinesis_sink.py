"""KinesisSink against a stream that enforces the per-shard limits (``LimitedKinesis``): aggregated
records within the size limit, the publisher under 1 MiB and 1,000 records a second per shard, a
hot symbol's book updates conflated and its trades all delivered in order, throttling by another
writer survived without loss or reordering, and ``delivered_through`` exact through all of it."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from meridian.kpl import user_records
from meridian.protocol import Fill
from meridian_hotpath.kinesis_sink import KinesisSink
from meridian_hotpath.marketdata import top_of_book_record, trade_record
from meridian_hotpath.publisher import StreamPublisher
from meridian_hotpath.shard_pacing import ShardBudget, ShardMap
from meridian_hotpath.stream import StreamRecord
from tests.limited_kinesis import LimitedKinesis

STREAM = "meridian-market-data-test"
WAIT = 20.0  # seconds before a test gives up waiting (a hang, never an assertion on time)


class FakeClock:
    """Time that moves only when told (the sink's sleeps move it too)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def trade(seq: int, symbol: str = "AAPL") -> StreamRecord:
    return trade_record(Fill(1, seq, seq, symbol, 19000, 5, 1, 1, 2, "a", "b", "c1", "c2", 0, 0), seq)


def top(seq: int, symbol: str = "AAPL") -> StreamRecord:
    return top_of_book_record(symbol, seq, (19000 + seq % 7, 5, 19010, 7), seq)


def updates(stream: LimitedKinesis) -> dict[str, list[dict[str, Any]]]:
    """Every user record on the stream by symbol, in stream order."""
    found: dict[str, list[dict[str, Any]]] = {}
    for shard in stream.shards:
        for record in stream.read(shard.shard_id, 0, 10**9):
            if record.partition_key == "other":
                continue  # another writer's
            for data in user_records(record.data):
                payload = json.loads(data)
                assert payload["symbol"] == record.partition_key
                found.setdefault(record.partition_key, []).append(payload)
    return found


def drive(
    sink: KinesisSink,
    clock: FakeClock,
    offer: Callable[[int], list[StreamRecord]],
    steps: int,
    step_s: float = 0.001,
) -> dict[str, int]:
    """What the publisher does, on the fake clock: every step offers new records; the sink gets what
    it deferred before, ahead of the new ones, once its ``retry_after`` has passed; then the rest
    is drained."""
    queue: list[StreamRecord] = []
    superseded = throttled = 0
    step = 0
    next_put = clock.now
    while step < steps or queue:
        if step < steps:
            queue += offer(step)
        if clock.now >= next_put:
            delivery = sink.put(queue)
            assert delivery.failed == []
            superseded += len(delivery.superseded)
            throttled += delivery.throttled
            queue = list(delivery.deferred)
            next_put = clock.now + (delivery.retry_after if delivery.deferred else 0.0)
        clock.now += step_s
        step += 1
        assert step < steps + 100_000, "the sink never drained"
    return {"superseded": superseded, "throttled": throttled}


def hot_symbol_offer(
    rate: int, trade_share: float = 0.25, symbol: str = "AAPL"
) -> Callable[[int], list[StreamRecord]]:
    rng = random.Random(7)
    seqs = iter(range(1, 10**9))

    def offer(_step: int) -> list[StreamRecord]:
        batch = []
        for _ in range(rate // 1000):
            seq = next(seqs)
            batch.append(trade(seq, symbol) if rng.random() < trade_share else top(seq, symbol))
        return batch

    return offer


def limited(clock: FakeClock, shards: int = 10, **limits: int) -> tuple[LimitedKinesis, KinesisSink]:
    stream = LimitedKinesis(STREAM, shards, clock=clock, **limits)
    return stream, KinesisSink(STREAM, client=stream, clock=clock, sleep=clock.sleep)


def test_a_hot_symbol_stays_under_its_shards_limits_with_every_trade_in_order_and_books_conflated() -> None:
    """10,000 updates a second of one symbol for 3 s: ~1.6 MB/s of JSON against a 1 MiB/s shard."""
    clock = FakeClock()
    stream, sink = limited(clock)
    calls: list[list[str]] = []
    put_records = stream.put_records

    def spying(**kwargs: Any) -> dict[str, Any]:
        calls.append([entry["PartitionKey"] for entry in kwargs["Records"]])
        return put_records(**kwargs)

    stream.put_records = spying  # type: ignore[method-assign]
    offered: list[StreamRecord] = []
    offer = hot_symbol_offer(10_000)

    def recorded(step: int) -> list[StreamRecord]:
        batch = offer(step)
        offered.extend(batch)
        return batch

    outcome = drive(sink, clock, recorded, steps=3_000)
    shard = stream.shard_for("AAPL")
    assert stream.throttled == 0
    assert outcome["throttled"] == 0
    assert shard.peak_records <= 1000
    assert shard.peak_bytes <= 1024 * 1024
    assert all(len(keys) == len(set(keys)) for keys in calls), "one aggregated record per key per call"
    got = updates(stream)["AAPL"]
    trades_offered = [r.seq for r in offered if not r.droppable]
    assert [u["seq"] for u in got if u["type"] == "trade"] == trades_offered
    books = [u["seq"] for u in got if u["type"] == "top_of_book"]
    books_offered = [r.seq for r in offered if r.droppable]
    assert books == sorted(books)
    assert books[-1] == books_offered[-1], "the newest book always goes"
    assert outcome["superseded"] > 0
    assert len(books) + outcome["superseded"] == len(books_offered)
    assert len(shard.records) < len(offered) / 10, "many updates per Kinesis record"


def test_a_symbol_within_its_shards_budget_loses_no_book_update() -> None:
    clock = FakeClock()
    stream, sink = limited(clock)
    outcome = drive(sink, clock, hot_symbol_offer(3_000), steps=2_000)
    assert outcome == {"superseded": 0, "throttled": 0}
    assert len(updates(stream)["AAPL"]) == 6_000
    assert stream.throttled == 0


def test_trades_alone_beyond_a_shard_wait_their_turn_in_order_and_none_is_dropped() -> None:
    """12,000 trades a second of one symbol for 1 s (about 1.5 MB/s): the shard takes what its
    budget allows, the rest are deferred and follow, in order; nothing is throttled or lost."""
    clock = FakeClock()
    stream, sink = limited(clock)
    outcome = drive(sink, clock, hot_symbol_offer(12_000, trade_share=1.0), steps=1_000)
    shard = stream.shard_for("AAPL")
    assert outcome == {"superseded": 0, "throttled": 0}
    assert stream.throttled == 0
    assert shard.peak_bytes <= 1024 * 1024
    assert [u["seq"] for u in updates(stream)["AAPL"]] == list(range(1, 12_001))
    assert clock.now - 1_000.0 > 1.4, "the last trades went out after the first second: they waited"


def test_ten_symbols_on_ten_shards_take_ten_times_one_shard() -> None:
    """100,000 updates a second over ten symbols that hash to ten different shards."""
    clock = FakeClock()
    stream, sink = limited(clock)
    symbols: list[str] = []
    for n in range(1000):
        name = f"SYM{n:03d}"
        if stream.shard_for(name).shard_id not in {stream.shard_for(s).shard_id for s in symbols}:
            symbols.append(name)
        if len(symbols) == 10:
            break
    offers = [hot_symbol_offer(10_000, symbol=symbol) for symbol in symbols]
    outcome = drive(sink, clock, lambda step: [r for offer in offers for r in offer(step)], steps=1_000)
    assert stream.throttled == 0
    assert outcome["throttled"] == 0
    got = updates(stream)
    for shard in stream.shards:
        assert shard.peak_records <= 1000
        assert shard.peak_bytes <= 1024 * 1024
        assert shard.peak_bytes > 0.8 * 1024 * 1024, "every shard is used to its budget"
    for symbol in symbols:
        trades = [u["seq"] for u in got[symbol] if u["type"] == "trade"]
        assert trades == sorted(trades)
        assert len(trades) > 2_000


def test_throttling_by_another_writer_is_deferred_and_retried_without_loss_or_reordering() -> None:
    clock = FakeClock()
    stream, sink = limited(clock, shards=1)
    seqs = iter(range(1, 10**6))
    trades_sent: list[int] = []

    def offer(step: int) -> list[StreamRecord]:
        if step % 50 == 0:  # another writer fills the shard for the rest of its second
            stream.put_records(
                StreamName=STREAM, Records=[{"Data": b"x" * 200_000, "PartitionKey": "other"}] * 5
            )
        batch = [trade(next(seqs)) for _ in range(5)]
        trades_sent.extend(r.seq for r in batch)
        return batch

    outcome = drive(sink, clock, offer, steps=500)
    assert outcome["throttled"] > 0, "the other writer's traffic throttled the sink"
    delivered = [u["seq"] for u in updates(stream)["AAPL"]]
    assert delivered == trades_sent


def test_no_aggregated_record_is_larger_than_the_limit_asked_for() -> None:
    clock = FakeClock()
    stream = LimitedKinesis(STREAM, 1, clock=clock)
    sink = KinesisSink(STREAM, client=stream, clock=clock, sleep=clock.sleep, max_record_bytes=2_000)
    drive(sink, clock, lambda step: [trade(step * 4 + n) for n in range(4)], steps=2_000)
    records = stream.shards[0].records
    assert all(len(r.data) + len(r.partition_key) <= 2_000 for r in records)
    assert len(records) > 8_000 / 13, "records are filled up to the limit"
    assert [u["seq"] for u in updates(stream)["AAPL"]] == list(range(8_000))


def test_the_sinks_shard_map_routes_keys_as_the_stream_does() -> None:
    stream = LimitedKinesis(STREAM, 7)
    shards = ShardMap.of_stream(stream, STREAM)
    for n in range(500):
        key = f"K{n}"
        assert shards.shard_of(key) == stream.shard_for(key).shard_id


def test_without_a_shard_map_each_key_gets_a_budget_and_throttling_is_survived() -> None:
    """ListShards refused (a policy without it): keys sharing a shard overrun it, are throttled,
    and are retried until all is delivered, in order."""
    clock = FakeClock()
    stream, sink = limited(clock, shards=1)

    def refused(**_kwargs: Any) -> dict[str, Any]:
        raise PermissionError("not authorised to perform kinesis:ListShards")

    stream.list_shards = refused  # type: ignore[method-assign]
    symbols = ["AAPL", "MSFT", "ESZ6"]
    offers = [hot_symbol_offer(3_000, trade_share=1.0, symbol=symbol) for symbol in symbols]
    outcome = drive(sink, clock, lambda step: [r for o in offers for r in o(step)], steps=1_500)
    assert outcome["throttled"] > 0
    got = updates(stream)
    for symbol in symbols:
        assert [u["seq"] for u in got[symbol]] == list(range(1, 4_501))


@pytest.mark.parametrize("symbols", [1, 3])
def test_the_publisher_over_a_limited_stream_delivers_every_trade_in_order_and_waits_exactly(
    symbols: int,
) -> None:
    """Real time, small limits (20 kB and 100 records a second per shard): the sink defers, the
    publisher offers again, ``delivered_through`` resolves only once every trade up to it is in."""
    stream = LimitedKinesis(STREAM, 2, records_per_s=100, bytes_per_s=20_000)
    sink = KinesisSink(STREAM, client=stream, shard_records_per_s=100, shard_bytes_per_s=20_000)
    names = ["AAPL", "MSFT", "ESZ6"][:symbols]
    records = [
        trade(seq, names[seq % symbols]) if seq % 3 else top(seq, names[seq % symbols])
        for seq in range(1, 301)
    ]

    async def scenario() -> None:
        publisher = StreamPublisher(sink, retry_delay=0.01)
        publisher.start()
        publisher.publish(records)
        last_trade = max(r.seq for r in records if not r.droppable)
        through = publisher.delivered_through(last_trade)
        await asyncio.sleep(0)
        assert not through.done()
        await asyncio.wait_for(through, WAIT)
        assert publisher.backlog[0] == 0
        await publisher.close(timeout=WAIT)
        assert publisher.stats.deferred > 0, "the budget held records back"
        assert publisher.stats.failures == 0

    asyncio.run(scenario())
    assert stream.throttled == 0
    got = updates(stream)
    for name in names:
        sent = [r.seq for r in records if not r.droppable and r.partition_key == name]
        assert [u["seq"] for u in got[name] if u["type"] == "trade"] == sent


class PagedShards:
    """ListShards in pages of two, with a closed parent (a split) among the shards."""

    def __init__(self, shards: list[dict[str, Any]]) -> None:
        self.shards = shards
        self.calls: list[dict[str, Any]] = []

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        start = int(kwargs.get("NextToken", "0"))
        page = self.shards[start : start + 2]
        more = start + 2 < len(self.shards)
        return {"Shards": page, **({"NextToken": str(start + 2)} if more else {})}


def shard(shard_id: str, start: int, closed: bool = False) -> dict[str, Any]:
    numbers = {"StartingSequenceNumber": "1", **({"EndingSequenceNumber": "9"} if closed else {})}
    return {
        "ShardId": shard_id,
        "HashKeyRange": {"StartingHashKey": str(start)},
        "SequenceNumberRange": numbers,
    }


def test_the_shard_map_reads_every_page_and_leaves_out_closed_shards() -> None:
    half = 1 << 127
    client = PagedShards([shard("parent", 0, closed=True), shard("low", 0), shard("high", half)])
    shards = ShardMap.of_stream(client, STREAM)
    assert client.calls == [{"StreamName": STREAM}, {"NextToken": "2"}]
    keys = [f"K{n}" for n in range(200)]
    assert {shards.shard_of(key) for key in keys} == {"low", "high"}
    with pytest.raises(ValueError, match="no open shard"):
        ShardMap.of_stream(PagedShards([shard("parent", 0, closed=True)]), STREAM)


def test_the_sink_rereads_the_shard_map_when_it_is_old_and_keeps_the_last_one_if_it_cannot() -> None:
    clock = FakeClock()
    stream, _ = limited(clock, shards=2)
    sink = KinesisSink(STREAM, client=stream, clock=clock, sleep=clock.sleep, shard_map_ttl=10.0)
    reads: list[int] = []
    list_shards = stream.list_shards

    def counted(**kwargs: Any) -> dict[str, Any]:
        reads.append(1)
        if len(reads) > 2:
            raise ConnectionError("endpoint unreachable")
        return list_shards(**kwargs)

    stream.list_shards = counted  # type: ignore[method-assign]
    for step in range(3):
        assert sink.put([trade(step + 1)]).deferred == []
        clock.now += 11.0
    assert len(reads) == 3  # every put after the map aged
    assert [u["seq"] for u in updates(stream)["AAPL"]] == [1, 2, 3]  # the last map still routes


def test_a_budget_refuses_more_than_the_whole_limit() -> None:
    with pytest.raises(ValueError, match="add up to at most 1"):
        ShardBudget.full(0.0, share=0.95, burst=0.1)


def test_without_a_client_the_sink_makes_a_kinesis_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert KinesisSink(STREAM).client.meta.region_name == "eu-west-1"
