"""`make drill` end to end: the DR failover rehearsal as a subprocess, on its own moto and PostgreSQL."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from meridian.ledger import latest_version

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
RTO = re.compile(
    r"^RTO \((first failed health probe|runbook start) to first order accepted\): (\d+\.\d+) s "
    r"\(target 30 s; recorded as Meridian/Runbooks RecoveryTimeSeconds\)$",
    re.M,
)
STEP = re.compile(r"^    (\S[\w ,()-]*?)\s+(\d+\.\d+) s$", re.M)
INTEGRITY = re.compile(r"^Integrity: ok; trades us-east-1 (\d+) = us-west-2 (\d+); (.*)$", re.M)
ACTIVE_BOOK = re.compile(r"active_book:(\w+) ok \(seq \d+: restored ([0-9a-f]{16}), active ([0-9a-f]{16})\)")
LEDGER = re.compile(
    r"ledger_checksum ok \(trades up to seq \d+: here (\d+) ([0-9a-f]{16}), "
    r"old primary (\d+) ([0-9a-f]{16})\)"
)
REPLICA = re.compile(
    r"^Ledger replica \(us-west-2\): read-only; LedgerMigrations \(Mode verify\) found schema version "
    r"(\d+), applied none \(read replica\)$",
    re.M,
)


def _run_drill(*args: str) -> subprocess.CompletedProcess[str]:
    # Not under pytest's basetemp: PostgreSQL runs as an unprivileged user when the tests run as root.
    state = Path(tempfile.mkdtemp(prefix="meridian-drill-"))
    env = {**os.environ, "MERIDIAN_STATE_DIR": str(state)}
    for name in ("AWS_ENDPOINT_URL", "DATABASE_URL"):
        env.pop(name, None)
    try:
        return subprocess.run(
            [sys.executable, "-m", "meridian_local", "drill", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _check_integrity(section: str) -> None:
    integrity = INTEGRITY.search(section)
    assert integrity is not None, section
    assert integrity.group(1) == integrity.group(2)
    assert int(integrity.group(1)) > 0
    books = ACTIVE_BOOK.findall(integrity.group(3))
    assert "AAPL" in {symbol for symbol, _, _ in books}, integrity.group(0)
    assert all(restored == active for _, restored, active in books), integrity.group(0)
    ledger = LEDGER.search(integrity.group(3))
    assert ledger is not None, integrity.group(0)
    assert ledger.group(1, 2) == ledger.group(3, 4), integrity.group(0)


def _check_recovery_time(section: str, measured_from: str) -> None:
    rto = RTO.search(section)
    assert rto is not None, section
    assert rto.group(1) == measured_from
    # The steps printed under the figure partition it: their times add up to it (each rounded to 1 ms).
    steps = dict(STEP.findall(section[rto.end() :].split("\n  the client", 1)[0]))
    assert "first order accepted" in steps, section
    assert abs(sum(float(v) for v in steps.values()) - float(rto.group(2))) < 0.001 * (len(steps) + 1), steps


def test_drill_fails_over_by_itself_and_back_reporting_rto_steps_and_integrity() -> None:
    done = _run_drill("--failback")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    failover, _, failback = done.stdout.partition("Failback runbook")
    assert failback, output
    # The DR region deploys as a dr deploy does: its read-only ledger's schema is verified, not migrated.
    replica = REPLICA.search(output)
    assert replica is not None, output
    assert int(replica.group(1)) == latest_version()
    # Detected and triggered, not started by hand: one runbook for however many alarms fired.
    assert re.search(r"^Cut at \S+: the primary's order API and matching node stopped$", failover, re.M)
    assert re.search(r"^  first failed probe: meridian-drill-\S+ at \S+$", failover, re.M), failover
    assert re.search(r"^Automatic failover \(us-west-2; unhealthy for \d+ s, switch on\):$", failover, re.M)
    assert len(re.findall(r"failover runbook auto-\S+ started", failover)) == 1, failover
    assert re.search(r"trigger \w+: failed over$", failover, re.M), failover
    for state_name in (
        "HaltTrading",
        "RestoreMatchingEngine",
        "PromoteReplica",
        "SwitchTraffic",
        "ValidateIntegrity",
        "ResumeTrading",
        "AwaitFirstOrder",
        "FirstOrderAccepted",
        "MeasureRecoveryTime",
    ):
        assert re.search(rf"^\s+\+\s*\d+\.\d+ s\s+{state_name}$", failover, re.M), failover
        assert re.search(rf"^\s+\+\s*\d+\.\d+ s\s+{state_name}$", failback, re.M), failback
    assert re.search(r"^  first order accepted in us-west-2: drill-\d+ ", failover, re.M), failover
    assert re.search(r"^  first order accepted in us-east-1: drill-\d+ ", failback, re.M), failback
    _check_recovery_time(failover, "first failed health probe")
    _check_recovery_time(failback, "runbook start")
    _check_integrity(failover)
    _check_integrity(failback)
    assert re.search(r"^Drill passed in \d+\.\d s\.$", done.stdout, re.M), output


def test_drill_rejects_bad_arguments() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "meridian_local", "drill", "--orders", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
