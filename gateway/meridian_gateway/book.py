"""Each symbol's book as the node published it, and what changed between two of its updates.

The node's book records are whole (its best N levels a side, ``meridian_hotpath.marketdata``),
numbered per symbol (``book_seq``). The gateway keeps the newest one per symbol and turns each new
one into the levels that changed since the one before (``book_update``: quantity 0 removes a
level), numbered with the node's ``book_seq`` and the ``prev_seq`` it applies on. A client holding
``prev_seq`` applies it; any other client re-syncs. Numbers the node skipped (it conflated
updates) need nothing from clients: the update is computed against what the gateway last had.
A record older than the book held (a redelivery) is ignored; a record whose ``book_seq`` went back
while its journal ``seq`` went forward means the node's publisher restarted: subscribers get a new
``book_snapshot`` instead of an update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Levels = dict[int, int]  # price units -> quantity


def units_text(units: int, scale: int) -> str:
    """Integer price units as an exact decimal string (19025, 2 -> "190.25"), as the REST API prints."""
    if scale == 0:
        return str(units)
    whole, fraction = divmod(units, 10**scale)
    return f"{whole}.{fraction:0{scale}d}"


def _changes(before: Levels, after: Levels, scale: int) -> list[tuple[str, int]]:
    changed = [(p, q) for p, q in after.items() if before.get(p) != q]
    changed += [(p, 0) for p in before if p not in after]
    return [(units_text(p, scale), q) for p, q in sorted(changed)]


@dataclass(slots=True)
class Book:
    symbol: str
    scale: int
    seq: int = 0  # the node's book_seq of the book held; 0 before the first
    node_seq: int = 0
    node_ts: int = 0
    bids: Levels = field(default_factory=dict)
    asks: Levels = field(default_factory=dict)

    def snapshot(self, channel: str) -> dict[str, Any]:
        scale = self.scale
        return {
            "type": "book_snapshot",
            "channel": channel,
            "symbol": self.symbol,
            "seq": self.seq,
            "bids": [(units_text(p, scale), q) for p, q in sorted(self.bids.items(), reverse=True)],
            "asks": [(units_text(p, scale), q) for p, q in sorted(self.asks.items())],
            "node_seq": self.node_seq,
            "node_ts": self.node_ts,
        }

    def apply(self, record: dict[str, Any], channel: str) -> tuple[str, dict[str, Any]] | None:
        """Take a node book record; ("update" | "snapshot", message), or None if it is stale."""
        node_seq, book_seq = record["seq"], record["book_seq"]
        if node_seq < self.node_seq or (node_seq == self.node_seq and book_seq <= self.seq):
            return None
        restarted = book_seq <= self.seq
        bids: Levels = dict(record["bids"])
        asks: Levels = dict(record["asks"])
        prev = self.seq
        changes = (_changes(self.bids, bids, self.scale), _changes(self.asks, asks, self.scale))
        self.seq, self.node_seq, self.node_ts = book_seq, node_seq, record["timestamp_ns"]
        self.bids, self.asks = bids, asks
        if restarted or prev == 0:
            return "snapshot", self.snapshot(channel)
        return "update", {
            "type": "book_update",
            "channel": channel,
            "symbol": self.symbol,
            "seq": book_seq,
            "prev_seq": prev,
            "bids": changes[0],
            "asks": changes[1],
            "node_seq": node_seq,
            "node_ts": self.node_ts,
        }


def merge_update(held: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    """Two queued messages of one book as one (conflation): the newer's levels win, the held one's
    ``prev_seq`` stays (a held snapshot stays a snapshot, with the newer levels applied)."""
    merged = dict(newer)
    if held["type"] == "book_snapshot":
        merged["type"] = "book_snapshot"
        merged.pop("prev_seq", None)
        for side in ("bids", "asks"):
            levels = dict(held[side])
            levels.update(newer[side])
            kept = [(p, q) for p, q in levels.items() if q]
            kept.sort(key=lambda level: float(level[0]), reverse=side == "bids")
            merged[side] = kept
        return merged
    merged["prev_seq"] = held["prev_seq"]
    for side in ("bids", "asks"):
        levels = dict(held[side])
        levels.update(newer[side])
        merged[side] = sorted(levels.items(), key=lambda level: float(level[0]))
    return merged
