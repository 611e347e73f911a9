"""A matching node's data directory, written the way the node writes it, for the runbook tests."""

from __future__ import annotations

from pathlib import Path

from meridian.domain import DEFAULT_INSTRUMENTS, Side
from meridian.protocol import NewOrder, encode
from meridian_hotpath.engine import MatchingEngine
from meridian_hotpath.journal import JournalWriter
from meridian_hotpath.recovery import engine_checksum, journal_dir, snapshot_dir
from meridian_hotpath.snapshot import SnapshotStore


def crossing_orders(count: int, symbol: str = "AAPL") -> list[NewOrder]:
    """Alternating buys and sells around one price: about every other order trades."""
    orders = []
    for n in range(1, count + 1):
        side = Side.BUY if n % 2 else Side.SELL
        price = 19000 + (n % 5) * (1 if side is Side.BUY else -1)
        account = f"acct{n % 3}"
        orders.append(NewOrder(n, f"c{n}", account, symbol, side, 1, 1, 0, 10 + n % 7, price))
    return orders


def write_data_dir(
    data_dir: Path,
    orders: int = 40,
    snapshot_at: tuple[int, ...] = (20,),
    segment_bytes: int = 2048,
) -> MatchingEngine:
    """Journal ``orders`` orders (small segments, so several rotate) and snapshot at the given seqs."""
    engine = MatchingEngine(DEFAULT_INSTRUMENTS)
    writer = JournalWriter(journal_dir(data_dir), 1, segment_bytes)
    store = SnapshotStore(snapshot_dir(data_dir))
    for request in crossing_orders(orders):
        engine.process(request)
        writer.append(engine.seq, encode(request))
        writer.commit()
        if engine.seq in snapshot_at:
            store.write(engine.seq, engine_checksum(engine), engine.snapshot())
    writer.close()
    return engine
