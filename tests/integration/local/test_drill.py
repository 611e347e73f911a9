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
    r"^RTO \(halt to resume\): (\d+\.\d+) s .*recorded as Meridian/Runbooks RecoveryTimeSeconds", re.M
)
INTEGRITY = re.compile(r"^Integrity: ok; trades us-east-1 (\d+) = us-west-2 (\d+); (.*)$", re.M)
BOOK = re.compile(r"(\w+) checksum primary ([0-9a-f]{16}) = restored ([0-9a-f]{16})")
REPLICA = re.compile(
    r"^Ledger replica \(us-west-2\): read-only; LedgerMigrations \(Mode verify\) found schema version "
    r"(\d+), applied none \(read replica\)$",
    re.M,
)


def test_drill_runs_the_failover_runbook_and_reports_rto_and_integrity() -> None:
    # Not under pytest's basetemp: PostgreSQL runs as an unprivileged user when the tests run as root.
    state = Path(tempfile.mkdtemp(prefix="meridian-drill-"))
    env = {**os.environ, "MERIDIAN_STATE_DIR": str(state)}
    for name in ("AWS_ENDPOINT_URL", "DATABASE_URL"):
        env.pop(name, None)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "meridian_local", "drill"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    finally:
        shutil.rmtree(state, ignore_errors=True)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # The DR region deploys as a dr deploy does: its read-only ledger's schema is verified, not migrated.
    replica = REPLICA.search(output)
    assert replica is not None, output
    assert int(replica.group(1)) == latest_version()
    for state_name in (
        "HaltTrading",
        "PromoteReplica",
        "SwitchTraffic",
        "ValidateIntegrity",
        "ResumeTrading",
    ):
        assert re.search(rf"^\s+\+\s*\d+\.\d+ s\s+{state_name}$", output, re.M), output
    rto = RTO.search(output)
    assert rto is not None, output
    assert float(rto.group(1)) > 0, output
    integrity = INTEGRITY.search(output)
    assert integrity is not None, output
    assert integrity.group(1) == integrity.group(2)
    assert int(integrity.group(1)) > 0
    books = BOOK.findall(integrity.group(3))
    assert books, integrity.group(0)
    assert all(primary == restored for _, primary, restored in books), integrity.group(0)
    assert "AAPL" in {symbol for symbol, _, _ in books}


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
