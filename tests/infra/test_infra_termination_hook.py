"""A terminating matching node stops cleanly before its instance goes (#13: an acknowledged order
must not be lost with a volume deleted on termination).

Every shard's Auto Scaling group holds a terminating instance with the lifecycle hook
``meridian-ship-journal`` for longer than the node takes to stop (final snapshot, and on a one-node
shard the journal shipped with its active segment); the node's role may complete that hook on its
own environment's groups only; the bootstrap installs the watcher, and the watcher stops the node
before it lets the termination go on.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.templates import ROOT
from tests.infra.test_infra_fleet import GROUPS, _shard_groups, fleet
from tools.cfn_model import StackModel

HOOK = "meridian-ship-journal"
WATCH = (ROOT / "hotpath/deploy/termination-watch.sh").read_text()
USER_DATA = (ROOT / "hotpath/deploy/user-data.sh").read_text()
ACTIVATE = (ROOT / "hotpath/deploy/activate.sh").read_text()
NODE_UNIT_STOP_S = int(re.search(r"^TimeoutStopSec=(\d+)$", USER_DATA, re.M).group(1))  # type: ignore[union-attr]


def _node_role_statements(model: StackModel) -> list[dict[str, Any]]:
    policies = model.properties("NodeInstanceRole")["Policies"]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"] if isinstance(s, dict)]


@pytest.mark.parametrize("shards", [1, 4])
def test_every_shard_group_holds_a_terminating_node_until_it_has_stopped(shards: int) -> None:
    model = fleet("prod", shards)
    groups = _shard_groups(model)
    assert set(groups) == {GROUPS[n] for n in range(1, shards + 1)}
    for name in groups:
        hooks = model.properties(name)["LifecycleHookSpecificationList"]
        (hook,) = [h for h in hooks if h["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"]
        assert hook["LifecycleHookName"] == HOOK
        assert int(hook["HeartbeatTimeout"]) >= 2 * NODE_UNIT_STOP_S  # the stop, then the ship
        assert hook["DefaultResult"] == "CONTINUE"  # a watcher that never answers delays, never keeps
    assert "LifecycleHookSpecificationList" not in model.properties("SpareAutoScalingGroup")


def test_a_node_completes_the_hook_only_on_its_own_environments_groups() -> None:
    model = fleet("prod", 2)
    completes = [
        s for s in _node_role_statements(model) if "autoscaling:CompleteLifecycleAction" in str(s["Action"])
    ]
    (statement,) = completes
    assert statement["Action"] == "autoscaling:CompleteLifecycleAction"
    assert statement["Condition"] == {
        "StringEquals": {"autoscaling:ResourceTag/meridian:environment": "prod"}
    }
    assert ":autoScalingGroupName/" in str(statement["Resource"])
    for name in _shard_groups(model):
        tags = {t["Key"]: t["Value"] for t in model.properties(name)["Tags"]}
        assert tags["meridian:environment"] == "prod"  # the tag the condition reads


def test_the_watcher_stops_the_node_before_it_lets_the_termination_go_on() -> None:
    stop = WATCH.index("systemctl stop meridian-journal-ship.timer meridian-node.service")
    complete = WATCH.index("aws autoscaling complete-lifecycle-action")
    assert WATCH.index("target-lifecycle-state") < stop < complete
    assert f"--lifecycle-hook-name {HOOK}" in WATCH
    assert "--lifecycle-action-result CONTINUE" in WATCH
    # Installed by the bootstrap, started with the node on every active node.
    assert "cat > /usr/local/sbin/meridian-termination-watch" in USER_DATA
    assert "cat > /etc/systemd/system/meridian-termination-watch.service" in USER_DATA
    assert "meridian-termination-watch.service" in ACTIVATE
    # The node's stop ships a one-node shard's journal, active segment included.
    assert re.search(r"^ExecStopPost=.*archive ship --include-active", USER_DATA, re.M)
