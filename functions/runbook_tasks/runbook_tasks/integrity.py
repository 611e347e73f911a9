"""After a switchover: do the ledgers and the matching engines agree, across the two regions?

Checks, each reported with its evidence:

* ``ledger_trade_count``: the promoted ledger holds as many trades as the old primary's (when the old
  primary still answers: a drill, or a partial outage). Fewer means trades were lost.
* ``ledger_within_engine``: no trade in the ledger carries a node seq beyond the restored engine's
  seq (the ledger cannot know trades the engine has lost); those that do are listed for
  reconciliation, and pass only with ``accept_data_loss``. One node only; with several it is
  reported as skipped.
* ``ledger_checksum``: a SHA-256 over the ledger's trades (up to the restored seq) here and in the
  old primary's ledger, when it answers.
* ``acknowledged_orders``: every order the primary recorded (the replicated orders table) is in the
  restored engine, or listed for reconciliation with its client order id (``reconcile``).
* ``market_data:<symbol>``: the replicated book and tape are not ahead of the restored engine.
* ``old_primary_book:<symbol>``: each book of the old primary's nodes (when they answer) has the
  restored engine's checksum at the restored seq. A primary ahead of the restore lost records.
* ``active_book:<symbol>``: this region's serving node (activated from the archive) holds exactly
  the verified state: same seq, same checksum.

A source that does not answer is reported as skipped, not as failed: in a real disaster it is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from meridian.client import HotpathClient, HotpathError
from runbook_tasks.market_check import check_symbol
from runbook_tasks.reconcile import orders_to_reconcile


class IntegrityCheckFailedError(RuntimeError):
    """At least one check failed; the message lists them."""


@dataclass(slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    skipped: bool = False


@dataclass(slots=True)
class IntegrityReport:
    checks: list[Check] = field(default_factory=list)
    reconcile: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [asdict(check) for check in self.checks],
            "reconcile": dict(self.reconcile),
        }


CountTrades = Callable[[], tuple[int, int]]  # (trade count, highest node seq)
TradesBeyond = Callable[[int], list[dict[str, Any]]]  # ledger trades with a node seq beyond one
LedgerChecksum = Callable[[int | None], tuple[int, str]]  # (trades, SHA-256) up to a seq (or all)
Published = Callable[[str], tuple[Mapping[str, Any] | None, int | None]]  # (book, newest trade seq)


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the checks beyond the ledger counts and the books read from (each one optional)."""

    trades_beyond: TradesBeyond | None = None
    checksum_here: LedgerChecksum | None = None
    checksum_primary: LedgerChecksum | None = None
    orders: Iterable[Mapping[str, Any]] | None = None
    market_data: Published | None = None


def count_trades(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute("SELECT count(*), coalesce(max(node_seq), 0) FROM trades").fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def ledger_checks(
    secondary: CountTrades, primary: CountTrades | None, restored_seqs: list[int]
) -> list[Check]:
    count, highest = secondary()
    checks: list[Check] = []
    if primary is None:
        checks.append(
            Check("ledger_trade_count", True, "the old primary ledger does not answer", skipped=True)
        )
    else:
        try:
            primary_count, _ = primary()
        except Exception as exc:  # unreachable in a disaster: evidence, not failure
            checks.append(
                Check("ledger_trade_count", True, f"old primary ledger unreachable: {exc}", skipped=True)
            )
        else:
            same = primary_count == count
            detail = f"{count} trades here, {primary_count} in the old primary"
            checks.append(
                Check("ledger_trade_count", same, detail if same else detail + ": trades are missing")
            )
    if len(restored_seqs) != 1:
        checks.append(
            Check("ledger_within_engine", True, f"{len(restored_seqs)} nodes restored", skipped=True)
        )
    else:
        within = highest <= restored_seqs[0]
        detail = f"highest node seq in the ledger {highest}, engine restored to {restored_seqs[0]}"
        checks.append(Check("ledger_within_engine", within, detail))
    return checks


def trades_check(
    report: IntegrityReport, restored_seqs: list[int], beyond: TradesBeyond | None, accept_data_loss: bool
) -> None:
    """Trades the ledger holds beyond the restored engine: listed; accepted only with data loss."""
    check = next((c for c in report.checks if c.name == "ledger_within_engine"), None)
    if check is None or check.ok or check.skipped or beyond is None:
        return
    trades = beyond(restored_seqs[0])
    report.reconcile["trades"] = trades
    check.ok = accept_data_loss
    check.detail += f": {len(trades)} trade(s) listed for reconciliation" + (
        " (accepted)" if accept_data_loss else ""
    )


def checksum_check(here: LedgerChecksum, primary: LedgerChecksum | None, restored_seqs: list[int]) -> Check:
    up_to = restored_seqs[0] if len(restored_seqs) == 1 else None
    count, digest = here(up_to)
    scope = f"trades up to seq {up_to}" if up_to is not None else "all trades"
    if primary is None:
        return Check(
            "ledger_checksum", True, f"{scope}: {count}, {digest[:16]}; no old primary", skipped=True
        )
    try:
        their_count, theirs = primary(up_to)
    except Exception as exc:  # unreachable in a disaster: evidence, not failure
        return Check(
            "ledger_checksum", True, f"{scope}: {count}, {digest[:16]}; old primary: {exc}", skipped=True
        )
    same = (count, digest) == (their_count, theirs)
    detail = f"{scope}: here {count} {digest[:16]}, old primary {their_count} {theirs[:16]}"
    return Check("ledger_checksum", same, detail)


def orders_check(
    report: IntegrityReport,
    restored: Mapping[str, Any],
    orders: Iterable[Mapping[str, Any]],
    accept_data_loss: bool,
) -> None:
    seq_of_symbol = {
        symbol: int(node["seq"]) for node in restored["nodes"] for symbol in node["book_checksums"]
    }
    present, listed = orders_to_reconcile(orders, seq_of_symbol)
    report.reconcile["orders"] = listed
    detail = (
        f"{present} acknowledged order(s) in the restored engine, {len(listed)} listed for reconciliation"
    )
    ok = not listed or accept_data_loss
    report.checks.append(Check("acknowledged_orders", ok, detail + (" (accepted)" if listed and ok else "")))


def market_checks(restored: Mapping[str, Any], published: Published, accept_data_loss: bool) -> list[Check]:
    checks = []
    for node in restored["nodes"]:
        for symbol in node["book_checksums"]:
            book, newest = published(symbol)
            ok, skipped, detail = check_symbol(book, newest, int(node["seq"]), accept_data_loss)
            checks.append(Check(f"market_data:{symbol}", ok, detail, skipped=skipped))
    return checks


def book_checks(
    restored: Mapping[str, Any], nodes: Mapping[str, HotpathClient], role: str, accept_data_loss: bool = False
) -> list[Check]:
    """Compare each restored book with the node that owns its symbol.

    ``role`` is ``old_primary`` (a node ahead of the restore lost records to the failover) or
    ``active`` (this region's serving node must hold exactly the verified state).
    """
    checks: list[Check] = []
    for node in restored["nodes"]:
        for symbol, checksum in node["book_checksums"].items():
            client = nodes.get(symbol)
            name = f"{role}_book:{symbol}"
            if client is None:
                checks.append(Check(name, True, f"no {role} node configured for the symbol", skipped=True))
                continue
            try:
                answer = client.snapshot(symbol)
            except HotpathError as exc:
                checks.append(Check(name, True, f"{role} node unreachable: {exc}", skipped=True))
                continue
            theirs = f"{answer.checksum:016x}"
            if answer.seq == node["seq"]:
                checks.append(
                    Check(name, theirs == checksum, f"seq {answer.seq}: restored {checksum}, {role} {theirs}")
                )
            elif role == "old_primary" and answer.seq > node["seq"]:
                lost = f"the old primary is at seq {answer.seq}, the restore at {node['seq']}"
                checks.append(
                    Check(
                        name,
                        accept_data_loss,
                        lost + (" (accepted)" if accept_data_loss else ": records lost"),
                    )
                )
            else:
                checks.append(
                    Check(
                        name, False, f"the {role} node is at seq {answer.seq}, the restore at {node['seq']}"
                    )
                )
    return checks


def reconcile_summary(report: IntegrityReport, most: int = 20) -> str:
    """The client order ids to reconcile, for a stop's cause (the full lists are in the report)."""
    orders = [
        f"{o['client_order_id']} ({o['account']}, {o['status']})" for o in report.reconcile.get("orders", [])
    ]
    trades = [
        f"{t['execution_id']} ({t['buy_client_order_id']}/{t['sell_client_order_id']})"
        for t in report.reconcile.get("trades", [])
    ]
    parts = []
    for kind, items in (("orders", orders), ("trades", trades)):
        if items:
            more = f" and {len(items) - most} more" if len(items) > most else ""
            parts.append(f"{kind} to reconcile: {', '.join(items[:most])}{more}")
    return "".join(f"; {part}" for part in parts)


def validate(
    restored: Mapping[str, Any],
    secondary: CountTrades,
    primary: CountTrades | None,
    old_primary_nodes: Mapping[str, HotpathClient],
    active_nodes: Mapping[str, HotpathClient],
    accept_data_loss: bool = False,
    sources: Sources | None = None,
) -> IntegrityReport:
    sources = sources or Sources()
    seqs = [int(n["seq"]) for n in restored["nodes"]]
    report = IntegrityReport()
    report.checks += ledger_checks(secondary, primary, seqs)
    trades_check(report, seqs, sources.trades_beyond, accept_data_loss)
    if sources.checksum_here is not None:
        report.checks.append(checksum_check(sources.checksum_here, sources.checksum_primary, seqs))
    if sources.orders is not None:
        orders_check(report, restored, sources.orders, accept_data_loss)
    if sources.market_data is not None:
        report.checks += market_checks(restored, sources.market_data, accept_data_loss)
    report.checks += book_checks(restored, old_primary_nodes, "old_primary", accept_data_loss)
    report.checks += book_checks(restored, active_nodes, "active")
    return report
