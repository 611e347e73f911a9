"""The private drop copy: one record per trade for the executions stream (key = symbol).

Its payload is ``meridian.executions.drop_copy_record``: both sides' accounts and order ids, the
decimal price as text. Drop-copy records are never droppable: the publisher retries them until
the sink accepts them, and the node writes no snapshot covering one it has not delivered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from meridian.domain import Instrument
from meridian.executions import drop_copy_record
from meridian.protocol import Fill
from meridian_hotpath.publisher import StreamRecord


def execution_record(fill: Fill, instrument: Instrument, timestamp_ns: int) -> StreamRecord:
    price = str(instrument.to_price(fill.price))
    return StreamRecord(fill.symbol, drop_copy_record(fill, price, timestamp_ns), fill.seq)


def execution_records(
    fills: Iterable[Fill], instruments: Mapping[str, Instrument], timestamp_ns: int
) -> list[StreamRecord]:
    return [execution_record(fill, instruments[fill.symbol], timestamp_ns) for fill in fills]
