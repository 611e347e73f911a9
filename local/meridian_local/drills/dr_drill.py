"""``python -m meridian_local drill [--failback]``: rehearse the automatic DR failover on this machine.

Everything runs here and only for the drill: its own moto server on a free port, its own PostgreSQL
(embedded, in ``<state dir>/drill/pgdata``; or new databases on ``DATABASE_URL``), both regions'
order APIs and matching nodes on free ports (``meridian_local.drills.dr_session``). A running ``make run``
is left alone. The drill

1. stands up the primary (us-east-1) and the recovery region (us-west-2) as their deploys would run
   (global tables replicated, the journal shipped, the ledger replica read-only and verified by the
   template's LedgerMigrations, automatic failover on) and trades through the failover DNS name;
2. cuts the primary while trading: its order API and matching node stop;
3. shows the detection (Route 53's checkers stood in for: first failed probe, the alarms), the
   trigger (its executions and what each decided), each state of the failover runbook it starts, the
   first order the recovery region's API accepts, and the recovery time as the runbook measured and
   recorded it (first failed probe to first order accepted), step by step;
4. prints the integrity check (ledgers, checksums, market data) and what is listed to reconcile;
5. with ``--failback``, brings the primary back and runs the failback runbook the same way.

Exit status: 0 when every runbook succeeded within the 30 s recovery target, 1 when one stopped, its
recovery took longer or the regions disagree, 2 for bad arguments or a drill already running.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from meridian_local.cloud.sam_template import REPO_ROOT
from meridian_local.delivery import lambda_adapter
from meridian_local.drills.containers import ContainerCaches
from meridian_local.drills.databases import postgres_server
from meridian_local.drills.dr_regions import DR_REGION, PRIMARY_REGION
from meridian_local.drills.dr_report import Watcher, print_recovery
from meridian_local.drills.dr_session import UNHEALTHY_FOR_S, DrillSession
from meridian_local.drills.dr_trader import FailoverTrader
from meridian_local.drills.dr_world import DR_ENDPOINT, PRIMARY_ENDPOINT, set_read_only
from meridian_local.endpoint.moto_server import MotoServer
from meridian_local.preflight import InstanceLock, PreflightError

EXIT_OK, EXIT_STOPPED, EXIT_USAGE = 0, 1, 2
RTO_TARGET_S = 30.0
RUNBOOK_TIMEOUT_S = 240.0
Say = Callable[[str], None]


def state_dir() -> Path:
    base = os.environ.get("MERIDIAN_STATE_DIR") or str(REPO_ROOT / ".local-platform")
    return Path(base) / "drill"


_console = sys.stdout  # the drill's report; the functions' own output goes to a log file


_console_lock = threading.Lock()


def _say(line: str) -> None:
    """One whole line at a time: the trader's thread and the runbook's watcher both report (``print``
    writes a line and its newline apart, so two threads' lines could run together)."""
    with _console_lock:
        _console.write(line + "\n")
        _console.flush()


def _trade_until(trader: FailoverTrader, region: str, orders: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while trader.accepted_in(region) < orders:
        if time.monotonic() > deadline:
            refused = ", ".join(f"{why} x{n}" for why, n in sorted(trader.refused.items())) or "none"
            raise TimeoutError(
                f"{orders} orders not accepted in {region} within {timeout:.0f} s "
                f"({trader.accepted_in(region)} were; refusals: {refused})"
            )
        time.sleep(0.05)


def _passed(report: dict[str, Any] | None, name: str, say: Say) -> bool:
    if report is None:
        return False
    seconds = report["rto"].get("seconds")
    if seconds is None:
        say(f"{name}: recovery time not measured ({report['rto'].get('not_measured')})")
        return False
    if seconds > RTO_TARGET_S:
        say(f"{name}: recovery took {seconds:.3f} s, over the {RTO_TARGET_S:g} s target")
        return False
    return bool(report.get("integrity", {}).get("ok"))


def failover(session: DrillSession, trader: FailoverTrader, orders: int, say: Say) -> bool:
    assert session.primary is not None
    assert session.dr is not None
    assert session.ledgers is not None
    _trade_until(trader, PRIMARY_REGION, orders)
    say(
        f"Trading through the failover name {session.zone[1]}: {trader.accepted_in(PRIMARY_REGION)} orders "
        f"accepted in {PRIMARY_REGION} so far"
    )
    trades = session.wait_trades_recorded()
    if not trades:
        say("No trade reached the ledger through the drop copy: the integrity checks would compare nothing")
        return False
    say(f"Drop copy: {trades} trades recorded in the primary's ledger and its replica so far")
    copied = session.wait_replicated()
    say(f"Global tables: {copied} writes copied to {DR_REGION} so far (the traders among them)")
    session.watch_primary_health()
    time.sleep(1.0)  # the checkers see it healthy first
    trader.expect(DR_REGION)
    watcher = Watcher(session.dr, say)
    session.cut_primary()
    cut = watcher.started_at.isoformat(timespec="milliseconds")
    say(f"Cut at {cut}: the primary's order API and matching node stopped")
    say(f"Automatic failover ({DR_REGION}; unhealthy for {UNHEALTHY_FOR_S} s, switch on):")
    report = watcher.follow_failover(RUNBOOK_TIMEOUT_S)
    if report is not None:
        set_read_only(session.ledgers.replica, False)  # the runbook promoted the replica
        _wait_for_first(trader, DR_REGION)
    return print_recovery(report, trader, DR_REGION, session, say) and _passed(report, "Failover", say)


def failback(session: DrillSession, trader: FailoverTrader, say: Say) -> bool:
    session.bring_primary_back()
    assert session.primary is not None
    trader.expect(PRIMARY_REGION)
    watcher = Watcher(session.primary, say)
    say(f"Failback runbook (DrFailbackStateMachine, {PRIMARY_REGION}), started by the operator:")
    report = watcher.run_failback(RUNBOOK_TIMEOUT_S)
    if report is not None:
        _wait_for_first(trader, PRIMARY_REGION)
    return print_recovery(report, trader, PRIMARY_REGION, session, say) and _passed(report, "Failback", say)


def _wait_for_first(trader: FailoverTrader, region: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while region not in trader.first_in and time.monotonic() < deadline:
        time.sleep(0.05)


def drill(directory: Path, orders: int, with_failback: bool, say: Say = _say) -> int:
    if directory.exists():
        for leftover in directory.iterdir():
            if leftover.name != "drill.lock":
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    logging.getLogger("moto").setLevel(logging.CRITICAL)  # failing states log their stack traces
    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # its notes while translating the template
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    began = time.perf_counter()
    functions_log = (directory / "functions.log").open("w")
    with (
        contextlib.redirect_stdout(functions_log),
        MotoServer() as moto,
        postgres_server(directory / "pgdata") as postgres_url,
    ):
        os.environ["AWS_ENDPOINT_URL"] = moto.endpoint_url
        lambda_adapter.separate_regions(ContainerCaches())  # two regions' containers in one process
        session = DrillSession(moto, postgres_url, directory, say)
        trader: FailoverTrader | None = None
        try:
            say(f"DR drill: moto server {moto.endpoint_url}, PostgreSQL, state in {directory}")
            session.start()
            _describe(session, say)
            targets = {PRIMARY_ENDPOINT: PRIMARY_REGION, DR_ENDPOINT: DR_REGION}
            trader = FailoverTrader(
                lambda: targets[session.record_target()],
                {region: (region, session.clients(region)) for region in (PRIMARY_REGION, DR_REGION)},
                say,
            )
            trader.start()
            if not failover(session, trader, orders, say):
                return EXIT_STOPPED
            if with_failback and not failback(session, trader, say):
                return EXIT_STOPPED
            say(f"Drill passed in {time.perf_counter() - began:.1f} s.")
            return EXIT_OK
        finally:
            if trader is not None:
                trader.stop()
            session.stop()
            lambda_adapter.separate_regions(None)
            os.environ.pop("AWS_ENDPOINT_URL", None)


def _describe(session: DrillSession, say: Say) -> None:
    assert session.primary is not None
    assert session.dr is not None
    tables = len(session.primary.global_tables)
    api = session.apis[PRIMARY_REGION].url
    say(
        f"Primary {PRIMARY_REGION} ({session.primary.environment}): order API {api}, matching node "
        f"127.0.0.1:{session.primary_node_port}; {tables} global tables with replicas in {DR_REGION}"
    )
    say(
        f"Recovery region {DR_REGION} ({session.dr.environment}): order API {session.apis[DR_REGION].url}, "
        f"standby node (activated by the runbook on 127.0.0.1:{session.dr_node_port}), automatic failover on"
    )
    say(
        f"Ledger replica ({DR_REGION}): read-only; LedgerMigrations (Mode verify) found schema version "
        f"{session.replica_schema.get('SchemaVersion')}, applied {session.replica_schema.get('Applied')}"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("at least 2 orders (two make a trade)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--failback", action="store_true", help="fail back to the primary afterwards")
    parser.add_argument(
        "--orders", type=_positive, default=24, help="orders the primary takes before it is cut"
    )


def main(args: argparse.Namespace) -> int:
    """Run the drill with parsed arguments (see :func:`add_arguments`)."""
    # Keep the handlers' INFO logs, metrics and traces off the drill's report.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    directory = state_dir()
    lock = InstanceLock(directory / "drill.lock")
    try:
        lock.acquire()
    except PreflightError:
        print(
            f"error: a drill is already running (pid {lock.holder()}); state in {directory}", file=sys.stderr
        )
        return EXIT_USAGE
    try:
        return drill(directory, args.orders, args.failback)
    except KeyboardInterrupt:
        print("Drill interrupted; stopped everything it started.", file=sys.stderr)
        return EXIT_STOPPED
    finally:
        lock.release()
