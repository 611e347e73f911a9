"""``python -m meridian_local drill [--failback]``: rehearse the DR failover runbook on this machine.

Everything the drill needs runs here and only for the drill: its own moto server on a free port,
its own PostgreSQL (embedded, in ``<state dir>/drill/pgdata``; or new databases on ``DATABASE_URL``),
matching nodes on free ports. A running ``make run`` is left alone. The drill

1. trades a short history through a real matching node (journal plus snapshots) and ships it to
   the DR region's engine-state bucket, as replication would;
2. builds the primary/DR world (``meridian_local.dr_world``) under a dr deploy's conditions: the DR
   stack names the primary's database, its ledger is read-only like the replica it stands for, and
   the template's LedgerMigrations (the real MigrationsFunction) only verifies its schema version;
   then runs ``DrFailoverStateMachine`` through Step Functions, printing each state it enters with
   the time since the start, and makes the ledger writable once the runbook has promoted it;
3. prints the recovery time (halt to resume) and the integrity check: trades in each region's ledger,
   each book's checksum on the old primary against the restored engine.

Exit status: 0 when the runbook succeeded and the regions agree, 1 when the runbook stopped (its
stop reason is printed) or the regions disagree, 2 for bad arguments or a drill already running.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg

from meridian.client import HotpathClient
from meridian_hotpath.archive import archived_segments, archived_snapshots
from meridian_hotpath.process import NodeProcess
from meridian_local.dr_world import (
    DR_REGION,
    DRILL,
    FAILBACK,
    PREFIX,
    PRIMARY_REGION,
    World,
    build_failback,
    build_world,
    set_read_only,
)
from meridian_local.drill_keys import admin_key, node_keys_file
from meridian_local.moto_server import MotoServer
from meridian_local.preflight import InstanceLock, PreflightError
from meridian_local.sam_template import REPO_ROOT

EXIT_OK, EXIT_STOPPED, EXIT_USAGE = 0, 1, 2
SNAPSHOT_EVERY = 10  # node seqs between snapshots: a short history still leaves one in the archive
RUNBOOK_TIMEOUT_S = 300.0
Say = Callable[[str], None]


def state_dir() -> Path:
    base = os.environ.get("MERIDIAN_STATE_DIR") or str(REPO_ROOT / ".local-platform")
    return Path(base) / "drill"


def _say(line: str) -> None:
    print(line, flush=True)


class _Nodes:
    """Matching nodes started for the drill (``--snapshot-every`` short), stopped at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[NodeProcess] = []

    def __call__(self, data_dir: Path) -> NodeProcess:
        node = NodeProcess.start(
            data_dir,
            "--snapshot-every",
            str(SNAPSHOT_EVERY),
            "--auth-keys-file",
            str(node_keys_file()),
            log_path=self.logs / f"{data_dir.name}.log",
        )
        self.started.append(node)
        return node

    def stop(self) -> None:
        for node in reversed(self.started):
            with node, contextlib.suppress(Exception):  # leaving ``node`` kills what SIGTERM did not stop
                node.terminate(timeout=10)
        self.started.clear()


@contextlib.contextmanager
def _postgres(directory: Path) -> Iterator[str]:
    external = os.environ.get("DATABASE_URL", "").strip()
    if external:
        yield external
        return
    with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset; harmless here
        warnings.simplefilter("ignore")
        from pgserver.postgres_server import get_server  # noqa: PLC0415 - only without DATABASE_URL

        server = get_server(directory, cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


def _history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    args: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**args)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        args["nextToken"] = page["nextToken"]


def run_runbook(world: World, logical_id: str, payload: dict[str, Any], say: Say) -> dict[str, Any]:
    """Start the state machine; one line per state entered (from the execution history) until done."""
    sfn = world.stack.client("stepfunctions")
    arn = world.stack.start(logical_id, payload)
    started: Any = None  # the ExecutionStarted event's timestamp
    shown = 0
    deadline = time.monotonic() + RUNBOOK_TIMEOUT_S
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        history = _history(sfn, arn)
        started = started or (history[0]["timestamp"] if history else None)
        entered = [e for e in history if "stateEnteredEventDetails" in e]
        for event in entered[shown:]:
            elapsed = (event["timestamp"] - started).total_seconds()
            say(f"  +{elapsed:7.3f} s  {event['stateEnteredEventDetails']['name']}")
        shown = len(entered)
        if described["status"] != "RUNNING":
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(f"{logical_id} still running after {RUNBOOK_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


def _trades(database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM trades").fetchone()
    return int(row[0]) if row else 0


def _metric_recorded(world: World) -> bool:
    metrics = world.stack.client("cloudwatch").list_metrics(Namespace="Meridian/Runbooks")["Metrics"]
    return any(m["MetricName"] == "RecoveryTimeSeconds" for m in metrics)


def report_outcome(
    world: World, result: dict[str, Any], primary_region: str, runbook_region: str, say: Say
) -> bool:
    """Print the RTO and the integrity line; True when the runbook succeeded and the regions agree."""
    if result["status"] != "SUCCEEDED":
        say(
            f"Runbook stopped ({result['status']}): {result.get('error', '?')}: "
            f"{result.get('cause', 'no cause given')}"
        )
        return False
    report = json.loads(result["output"])
    rto = report.get("rto") or {}
    if rto.get("seconds") is None:
        say(f"RTO (halt to resume): not measured ({report.get('warnings', {}).get('rto')})")
    else:
        metric = (
            "recorded as Meridian/Runbooks RecoveryTimeSeconds" if _metric_recorded(world) else "no metric"
        )
        say(
            f"RTO (halt to resume): {rto['seconds']:.3f} s (target {rto['target_seconds']:g} s; "
            f"halted {rto['halted_at']}, resumed {rto['resumed_at']}; {metric})"
        )
    old, new = _trades(world.primary_database_url), _trades(world.database_url)
    agree = old == new and bool(report.get("integrity", {}).get("ok"))
    books = []
    primary = HotpathClient("127.0.0.1", world.primary.port, credential=admin_key())  # snapshots
    for node in report.get("nodes", []):
        for symbol, restored in sorted(node["book_checksums"].items()):
            theirs = f"{primary.snapshot(symbol).checksum:016x}"
            agree = agree and theirs == restored
            same = "=" if theirs == restored else "!="
            books.append(f"{symbol} checksum primary {theirs} {same} restored {restored}")
    say(
        f"Integrity: {'ok' if agree else 'MISMATCH'}; trades {primary_region} {old} "
        f"{'=' if old == new else '!='} {runbook_region} {new}; " + "; ".join(books or ["no books restored"])
    )
    if not agree:
        failed = [c for c in report.get("integrity", {}).get("checks", []) if not c["ok"]]
        for check in failed:
            say(f"  {check['name']}: {check['detail']}")
    return agree


def _archive(world: World, say: Say) -> None:
    s3 = world.stack.client("s3")
    segments = archived_segments(s3, world.bucket, PREFIX)
    snapshots = archived_snapshots(s3, world.bucket, PREFIX)
    say(
        f"Archive s3://{world.bucket}/{PREFIX} ({world.stack.region}): {len(segments)} journal segment(s), "
        f"{len(snapshots)} snapshot(s) (last at seq {snapshots[-1].seq if snapshots else '-'}); "
        f"{len(world.trades)} trades in the ledgers"
    )


def drill(directory: Path, orders: int, failback: bool, say: Say = _say) -> int:
    if directory.exists():
        for leftover in directory.iterdir():
            if leftover.name != "drill.lock":
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    logging.getLogger("moto").setLevel(logging.CRITICAL)  # failing states log their stack traces
    nodes = _Nodes(directory / "logs")
    began = time.perf_counter()
    with MotoServer() as moto, _postgres(directory / "pgdata") as postgres_url:
        os.environ["AWS_ENDPOINT_URL"] = moto.endpoint_url
        try:
            say(f"DR drill: moto server {moto.endpoint_url}, PostgreSQL, state in {directory}")
            world = build_world(
                moto,
                postgres_url,
                directory,
                nodes,
                active_node=True,
                orders=orders,
                environment="drill",
                replica_read_only=True,
            )
            _archive(world, say)
            say(
                f"Ledger replica ({DR_REGION}): read-only; LedgerMigrations (Mode verify) found schema "
                f"version {world.replica_schema.get('SchemaVersion')}, applied "
                f"{world.replica_schema.get('Applied')}"
            )
            say(f"Failover runbook (DrFailoverStateMachine, {DR_REGION}):")
            result = run_runbook(world, "DrFailoverStateMachine", DRILL, say)
            if result["status"] == "SUCCEEDED":
                set_read_only(world.database_url, False)  # the runbook promoted the replica
            if not report_outcome(world, result, PRIMARY_REGION, DR_REGION, say):
                return EXIT_STOPPED
            if failback:
                back = build_failback(moto, world, directory, nodes, environment="drillback")
                say(f"Failback runbook (DrFailbackStateMachine, {PRIMARY_REGION}):")
                result = run_runbook(back, "DrFailbackStateMachine", FAILBACK, say)
                if not report_outcome(back, result, DR_REGION, PRIMARY_REGION, say):
                    return EXIT_STOPPED
            say(f"Drill passed in {time.perf_counter() - began:.1f} s.")
            return EXIT_OK
        finally:
            nodes.stop()
            os.environ.pop("AWS_ENDPOINT_URL", None)


def _positive(text: str) -> int:
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError("at least 2 orders (two make a trade)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--failback", action="store_true", help="run the failback runbook afterwards")
    parser.add_argument(
        "--orders", type=_positive, default=24, help="orders the old primary trades before the failover"
    )


def main(args: argparse.Namespace) -> int:
    """Run the drill with parsed arguments (see :func:`add_arguments`)."""
    # Keep the handlers' INFO logs and traces off the drill's report.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

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
