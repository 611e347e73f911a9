"""After a switchover: do the ledgers and the matching engines agree, across the two regions?

Checks, each reported with its evidence:

* ``ledger_trade_count``: the promoted ledger holds as many trades as the old primary's (when the old
  primary still answers: a drill, or a partial outage). Fewer means trades were lost.
* ``ledger_within_engine``: no trade in the ledger carries a node seq beyond the restored engine's
  seq (the ledger cannot know trades the engine has lost). One node only; with several it is
  reported as skipped.
* ``old_primary_book:<symbol>``: each book of the old primary's nodes (when they answer) has the
  restored engine's checksum at the restored seq. A primary ahead of the restore lost records.
* ``active_book:<symbol>``: this region's serving node (activated from the archive) holds exactly
  the verified state: same seq, same checksum.

A source that does not answer is reported as skipped, not as failed: in a real disaster it is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from meridian.client import HotpathClient, HotpathError


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

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(check) for check in self.checks]}


CountTrades = Callable[[], tuple[int, int]]  # (trade count, highest node seq)


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


def validate(
    restored: Mapping[str, Any],
    secondary: CountTrades,
    primary: CountTrades | None,
    old_primary_nodes: Mapping[str, HotpathClient],
    active_nodes: Mapping[str, HotpathClient],
    accept_data_loss: bool = False,
) -> IntegrityReport:
    report = IntegrityReport()
    report.checks += ledger_checks(secondary, primary, [int(n["seq"]) for n in restored["nodes"]])
    report.checks += book_checks(restored, old_primary_nodes, "old_primary", accept_data_loss)
    report.checks += book_checks(restored, active_nodes, "active")
    return report
