"""`make drill-node` end to end: the shard's primary killed under load on a local platform of the
drill's own; every acknowledged order on the new primary once, the old primary back as the standby,
every trade in the ledger once. Run as a subprocess, stopped by its id whatever happens."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.integration.local.test_make_run import stop_tree

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
ACKED = re.compile(
    r"^  ok  (\d+) orders acknowledged by node-a: (\d+) on node-b \(re-sent: DUPLICATE\), 0 missing", re.M
)
PROMOTION = re.compile(r"^  first order accepted by node-b: (\d+\.\d+) s after the kill", re.M)
LEDGER = re.compile(
    r"^  ok  ledger: (\d+) trades, one per execution id, as many as node-b made \((\d+)\)", re.M
)


def _drill(*args: str) -> tuple[int, str]:
    # Not under pytest's basetemp: PostgreSQL runs as an unprivileged user when the tests run as root.
    state = Path(tempfile.mkdtemp(prefix="meridian-node-drill-"))
    env = {**os.environ, "MERIDIAN_STATE_DIR": str(state)}
    for name in ("AWS_ENDPOINT_URL", "DATABASE_URL"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "meridian_local", "drill-node", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=600)
        return process.returncode, output
    finally:
        stop_tree(process, signal.SIGTERM)  # a hang: the drill stops its platform on SIGTERM
        shutil.rmtree(state, ignore_errors=True)


def test_the_primary_dies_under_load_and_nothing_acknowledged_or_traded_is_lost() -> None:
    code, output = _drill("--rate", "500", "--seconds", "1.5")
    assert code == 0, output
    acked = ACKED.search(output)
    assert acked is not None, output
    assert int(acked[1]) == int(acked[2]) > 0
    promotion = PROMOTION.search(output)
    assert promotion is not None, output
    assert "took over shard A from node-a in epoch 2" in output
    assert "node-a rejoined as the standby of node-b (epoch 2, in sync)" in output
    ledger = LEDGER.search(output)
    assert ledger is not None, output
    assert int(ledger[1]) == int(ledger[2]) > 0
    assert output.rstrip().endswith("Node failover drill: passed")


@pytest.mark.parametrize("args", [["--rate", "0"], ["--seconds", "-1"]])
def test_bad_arguments_are_exit_2_before_anything_starts(args: list[str]) -> None:
    code, output = _drill(*args)
    assert code == 2
    assert "must be positive" in output
