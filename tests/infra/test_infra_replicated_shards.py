"""Replicated matching shards on AWS (hot path ReplicatedShards): a primary and a hot standby per
shard, a DynamoDB lease, TCP 9002 between the two nodes and nothing else, the node started with its
shard flags, a Rule refusing replica acknowledgements without a standby, the NLB checking the order
port only the primary listens on, and alarms on what the pair reports.

Checked on the templates as environments deploy them (``tools.cfn_model``): dev runs one node, prod
runs the pair; the hot path is also evaluated with a release, which is when the fleet has nodes.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.infra.node_bootstrap import node_identity
from tests.infra.templates import ROOT, load
from tools.cfn_model import StackModel, environment_model

HOTPATH = load("hotpath/template.yaml")
ROOT_TEMPLATE = load("template.yaml")
USER_DATA = (ROOT / "hotpath" / "deploy" / "user-data.sh").read_text()
RELEASE = "s3://meridian-releases-prod/node/1.0.0.tar.gz"


def hotpath(section: str, **overrides: str) -> StackModel:
    """The hot-path stack of ``section``, with a release (so the fleet has nodes) and overrides."""
    nested = environment_model(section).nested("HotpathStack")
    parameters = {
        name: ",".join(map(str, value)) if isinstance(value, list) else value
        for name, value in nested.parameters.items()
    }
    parameters |= {"NodeReleaseS3Uri": RELEASE, **overrides}
    return StackModel(nested.path, parameters, nested.region, nested.stack_name, nested.environment)


def _statements(model: StackModel) -> dict[str, dict[str, Any]]:
    (policy,) = model.properties("NodeInstanceRole")["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ---- 1. the lease table ----


@pytest.mark.parametrize(("section", "protected"), [("default", False), ("prod", True)])
def test_one_lease_table_per_deployment_encrypted_with_the_trading_key_and_recoverable(
    section: str, protected: bool
) -> None:
    model = hotpath(section)
    (table_id,) = model.of_type("AWS::DynamoDB::Table")
    assert table_id == "LeaseTable"
    table = model.properties("LeaseTable")
    assert table["TableName"] == f"meridian-shard-leases-{model.environment}"
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "shard", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "shard", "AttributeType": "S"}]
    assert table["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": model.parameters["TradingDataKeyArn"],
    }
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["DeletionProtectionEnabled"] is protected
    # Epochs only grow: a stack deletion or replacement keeps the table (and its epochs).
    raw = HOTPATH["Resources"]["LeaseTable"]
    assert (raw["DeletionPolicy"], raw["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")


def test_the_lease_item_the_node_writes_fits_the_tables_key() -> None:
    from meridian_hotpath.lease import Lease, _item  # noqa: PLC0415 - the node package, imported late

    item = _item(Lease("default", "i-0abc", 3, 1_764_000_000_000, "10.0.4.10:9001", "10.0.4.10:9002"))
    (key,) = HOTPATH["Resources"]["LeaseTable"]["Properties"]["KeySchema"]
    assert set(item[key["AttributeName"]]) == {"S"}


# ---- 2. node IAM: the lease table's ARN, three actions ----


def test_replicated_nodes_may_get_put_and_update_the_lease_table_and_nothing_else_of_dynamodb() -> None:
    model = hotpath("prod")
    statements = _statements(model)
    lease = statements["HoldTheShardLease"]
    assert lease["Effect"] == "Allow"
    assert sorted(lease["Action"]) == ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    assert lease["Resource"] == model.get_att("LeaseTable", "Arn")
    assert lease["Resource"].endswith(":table/meridian-shard-leases-prod")
    for sid, statement in statements.items():
        actions = _as_list(statement["Action"])
        assert all(a != "*" and not a.startswith("dynamodb:*") for a in actions), sid
        if sid != "HoldTheShardLease":
            assert not [a for a in actions if a.startswith("dynamodb:")], sid
    # The table's key, used through DynamoDB only.
    kms = statements["EncryptTheShardLease"]
    assert kms["Resource"] == model.parameters["TradingDataKeyArn"]
    assert kms["Condition"] == {"StringEquals": {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"}}


def test_a_single_node_gets_no_lease_permissions() -> None:
    statements = _statements(hotpath("default"))
    assert "HoldTheShardLease" not in statements
    assert "EncryptTheShardLease" not in statements


# ---- 3. network: 9002 from the node group to the node group, nothing else ----


def _rules_on_port(model: StackModel, port: int) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for kind in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"):
        for lid in model.of_type(kind):
            rule = model.properties(lid)
            if int(rule.get("FromPort", -1)) <= port <= int(rule.get("ToPort", -1)):
                found.append((lid, rule))
    for lid in model.of_type("AWS::EC2::SecurityGroup"):
        props = model.properties(lid)
        for direction in ("SecurityGroupIngress", "SecurityGroupEgress"):
            for rule in props.get(direction, []):
                everything = str(rule["IpProtocol"]) == "-1" and rule.get("CidrIp") != "127.0.0.1/32"
                if everything or int(rule.get("FromPort", -1)) <= port <= int(rule.get("ToPort", -1)):
                    found.append((f"{lid}.{direction}", rule))
    return found


def test_the_replication_port_is_open_from_the_node_group_to_itself_only() -> None:
    model = hotpath("prod")
    nodes = model.ref("NodeSecurityGroup")
    rules = dict(_rules_on_port(model, 9002))
    assert set(rules) == {"NodeReplicationIngress", "NodeReplicationEgress"}
    ingress, egress = rules["NodeReplicationIngress"], rules["NodeReplicationEgress"]
    assert (ingress["GroupId"], ingress["SourceSecurityGroupId"]) == (nodes, nodes)
    assert (egress["GroupId"], egress["DestinationSecurityGroupId"]) == (nodes, nodes)
    for rule in (ingress, egress):
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 9002, 9002)
        assert "CidrIp" not in rule


def test_a_single_node_opens_no_replication_port() -> None:
    assert _rules_on_port(hotpath("default"), 9002) == []


def test_the_node_is_told_the_port_the_security_groups_open() -> None:
    assert "--replication-port 9002 " in USER_DATA
    assert HOTPATH["Outputs"]["ReplicationPort"]["Value"] == "9002"


# ---- 4. the node's command line, the fleet, the NLB ----


def _shard_arguments(replicated: str, tmp_path: Path) -> list[str]:
    """Run the bootstrap's identity and shard blocks as shard 1's instance (its group's tags and
    IMDSv2 answered by a stub); the node.env line it writes, sourced as activate.sh sources it, gives
    MERIDIAN_SHARD_ARGS."""
    identity = node_identity(tmp_path, replicated)
    assert identity["status"] == "0", identity
    return identity["shard_args"].split()


def _exec_start_arguments(shard_arguments: list[str], ack_after: str) -> list[str]:
    (exec_start,) = [
        line.split("=", 1)[1]
        for line in (ROOT / "hotpath" / "deploy" / "meridian-node.service").read_text().splitlines()
        if line.startswith("ExecStart=")
    ]
    words = shlex.split(exec_start)
    environment = {
        "$MERIDIAN_KINESIS_STREAM": ["meridian-market-data-prod"],
        "$MERIDIAN_EXECUTIONS_STREAM": ["meridian-executions-prod"],
        "$MERIDIAN_NODE_NUMBER": ["1"],
        "$MERIDIAN_ACK_AFTER": [ack_after],
        "$MERIDIAN_SHARD_ARGS": shard_arguments,  # systemd splits an unbraced $VAR at whitespace
    }
    expanded: list[str] = []
    for word in words[words.index("meridian_hotpath") + 1 :]:
        expanded += environment.get(word, [word])
    return expanded


def test_a_replicated_node_starts_with_its_shard_lease_instance_id_private_ip_and_ack_mode(
    tmp_path: Path,
) -> None:
    from meridian_hotpath.cli import _shard, build_parser  # noqa: PLC0415 - the node package

    shard = _shard_arguments("true", tmp_path)
    assert shard == [
        "--shard", "default",
        "--lease-table", "meridian-shard-leases-prod",
        "--node-id", "i-0123456789abcdef0",
        "--advertise", "10.0.4.37",
        "--replication-port", "9002",
        "--lease-ttl-ms", "2000",
    ]  # fmt: skip
    parser = build_parser()
    args = parser.parse_args(_exec_start_arguments(shard, "replica"))
    assert (args.ack_after, args.shard) == ("replica", "default")
    assert args.lease_table == "meridian-shard-leases-prod"
    config = _shard(parser, args)
    assert config is not None
    assert (config.node_id, config.advertise_host, config.replication_port) == (
        "i-0123456789abcdef0",
        "10.0.4.37",
        9002,
    )
    assert config.client_address == "10.0.4.37:9001"  # what the lease tells clients
    assert config.ttl_ms == 2000


def test_a_single_node_starts_without_shard_flags_and_the_node_refuses_replica_without_them(
    tmp_path: Path,
) -> None:
    from meridian_hotpath.cli import _shard, build_parser  # noqa: PLC0415 - the node package

    assert _shard_arguments("false", tmp_path) == []
    parser = build_parser()
    args = parser.parse_args(_exec_start_arguments([], "fsync"))
    assert (args.ack_after, args.shard, _shard(parser, args)) == ("fsync", None, None)
    with pytest.raises(SystemExit) as refused:
        _shard(parser, parser.parse_args(_exec_start_arguments([], "replica")))
    assert refused.value.code == 2


def test_the_bootstrap_passes_the_stacks_replication_parameters() -> None:
    assert "REPLICATED='${ReplicatedShards}'\n" in USER_DATA
    assert 'if [ "$REPLICATED" = "true" ]; then' in USER_DATA
    assert "X-aws-ec2-metadata-token" in USER_DATA  # IMDSv2 (the launch template requires tokens)
    for name in ("LeaseTable", "LeaseTtlMs", "AckAfter"):
        assert f"${{{name}}}" in USER_DATA, name
    # the shard's lease key is its group's tag: ShardName for shard 1, ShardName-<n> for the others
    assert "SHARD_NAME=$(imds tags/instance/meridian:shard)" in USER_DATA
    tags = {
        tag["Key"]: tag["Value"] for tag in HOTPATH["Resources"]["NodeAutoScalingGroup"]["Properties"]["Tags"]
    }
    assert tags["meridian:shard"] == {"Ref": "ShardName"}


@pytest.mark.parametrize(
    ("section", "nodes", "check"),
    [("default", 1, "ELB"), ("prod", 2, "EC2")],
)
def test_a_replicated_shard_is_two_nodes_in_the_cluster_placement_group(
    section: str, nodes: int, check: str
) -> None:
    model = hotpath(section)
    asg = model.properties("NodeAutoScalingGroup")
    assert (int(asg["MinSize"]), int(asg["DesiredCapacity"])) == (nodes, nodes)
    if nodes == 2:
        assert int(asg["MaxSize"]) == 2  # volatility scale-out cannot add a third
    # One AZ: a cluster placement group cannot span AZs (see the template's reason).
    assert asg["PlacementGroup"] == model.ref("NodePlacementGroup")
    assert asg["VPCZoneIdentifier"] == [model.parameters["HotpathSubnetIds"][0]]
    # The standby is unhealthy to the NLB by design: the pair is replaced on EC2 status checks.
    assert asg["HealthCheckType"] == check


def test_rolling_updates_keep_one_node_of_a_pair_in_service_and_wait_for_the_new_one() -> None:
    update = HOTPATH["Resources"]["NodeAutoScalingGroup"]["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert update["MaxBatchSize"] == 1
    assert update["MinInstancesInService"] == {"Fn::If": ["IsReplicated", 1, 0]}
    assert update["WaitOnResourceSignals"] == {"Fn::If": ["IsReplicated", True, False]}
    assert update["PauseTime"] == {"Fn::If": ["IsReplicated", "PT20M", "PT0S"]}
    # The signal: cfn-signal from the bootstrap, allowed on this stack only.
    model = hotpath("prod")
    signal = _statements(model)["SignalRollingUpdates"]
    assert signal["Action"] == "cloudformation:SignalResource"
    assert signal["Resource"] == f"arn:aws:cloudformation:us-east-1:123456789012:stack/{model.stack_name}/*"
    assert '--resource "$SCALING_GROUP"' in USER_DATA  # the group's logical id, from its tag
    assert "aws-cfn-bootstrap" in USER_DATA  # the package that installs cfn-signal


def _readiness(tmp_path: Path, node_mode: str, leases: list[str]) -> tuple[str, int]:
    """Run the bootstrap's readiness block: ``aws`` answers the lease reads in turn (its last
    answer from then on), cfn-signal and sleep are stubs. Returns (signal exit code, reads)."""
    lines = USER_DATA.splitlines()
    start = lines.index("  READY=no LEASE=none") - 1
    end = start + lines[start:].index("fi") + 1
    block = "\n".join(lines[start:end]).replace("/opt/aws/bin/cfn-signal", "cfn_signal")
    names = {"LeaseTable": "meridian-shard-leases-prod", "AWS::StackName": "hp"}
    block = re.sub(r"\$\{([\w:]+)\}", lambda m: names[m.group(1)], block)
    answers = tmp_path / "answers"
    answers.write_text("\n".join(leases) + "\n")
    script = tmp_path / "ready.sh"
    script.write_text(
        "set -euo pipefail\n"
        f"REPLICATED=true NODE_MODE={node_mode} REGION=us-east-1 INSTANCE_ID=i-0me\n"
        "SHARD_NAME=default SCALING_GROUP=NodeAutoScalingGroup\n"
        f"READS={tmp_path / 'reads'}; : > $READS\n"
        # $(aws ...) runs in a subshell: the reads are counted in a file
        'aws() { [[ "$*" == *"--table-name meridian-shard-leases-prod"* ]] || return 9;'
        ' [[ "$*" == *\'"S": "default"\'* ]] || return 8; echo x >> $READS;'
        f' n=$(wc -l < $READS); sed -n "$(( n < {len(leases)} ? n : {len(leases)} ))p" {answers}; }}\n'
        "sleep() { :; }\n"
        'cfn_signal() { echo "signal $2 $*"; }\n'
        f"{block}\n"
        'echo "reads $(wc -l < $READS)"\n'
    )
    out = subprocess.run(["bash", str(script)], check=True, capture_output=True, text=True).stdout
    (signal,) = [line for line in out.splitlines() if line.startswith("signal ")]
    assert "--stack hp --resource NodeAutoScalingGroup" in signal
    (reads,) = [line for line in out.splitlines() if line.startswith("reads ")]
    return signal.split()[1], int(reads.split()[1])


@pytest.mark.parametrize(
    ("node_mode", "leases", "signal", "reads"),
    [
        ("active", ["i-0me\tFalse"], "0", 1),  # this node took the lease: it is the primary
        ("active", ["i-0other\tFalse", "i-0other\tFalse", "i-0other\tTrue"], "0", 3),  # caught up
        ("active", ["i-0other\tFalse"], "1", 200),  # never in sync: the update must not go on
        ("active", [""], "1", 200),  # the lease unreadable
        ("active", ["i-0mega\tFalse"], "1", 200),  # another node whose id starts like this one's
        ("standby", ["i-0other\tFalse"], "0", 0),  # DR standby: waits for the runbook, not the lease
    ],
)
def test_a_replicated_node_signals_the_rolling_update_once_it_leads_or_follows_in_sync(
    tmp_path: Path, node_mode: str, leases: list[str], signal: str, reads: int
) -> None:
    assert _readiness(tmp_path, node_mode, leases) == (signal, reads)


def test_the_nlb_checks_the_order_port_only_the_primary_listens_on_as_fast_as_nlb_allows() -> None:
    target = hotpath("prod").properties("NodeTargetGroup")
    assert (target["HealthCheckProtocol"], target["HealthCheckPort"]) == ("TCP", "traffic-port")
    assert "HealthCheckPath" not in target
    # NLB's lower bounds (elbv2 CreateTargetGroup): interval 5 s, timeout 2 s, thresholds 2.
    assert (target["HealthCheckIntervalSeconds"], target["HealthCheckTimeoutSeconds"]) == (5, 2)
    assert (target["HealthyThresholdCount"], target["UnhealthyThresholdCount"]) == (2, 2)
    # ... and the NLB may open that port on the nodes.
    ingress = hotpath("prod").properties("NodeSecurityGroup")["SecurityGroupIngress"]
    assert {"IpProtocol": "tcp", "FromPort": 9001, "ToPort": 9001}.items() <= next(
        r for r in ingress if r["FromPort"] == 9001
    ).items()


# ---- the Rule: replica modes need a standby ----


def _rule_refuses(template: dict[str, Any], rule_id: str, model: StackModel) -> bool:
    rule = template["Rules"][rule_id]
    if not model.value(rule["RuleCondition"]):
        return False
    return not all(model.value(a["Assert"]) for a in rule["Assertions"])


@pytest.mark.parametrize(
    ("ack_after", "replicated", "refused"),
    [
        ("fsync", "false", False),
        ("async", "false", False),
        ("replica", "false", True),
        ("replica+fsync", "false", True),
        ("replica", "true", False),
        ("replica+fsync", "true", False),
        ("fsync", "true", False),
    ],
)
def test_a_rule_refuses_replica_acknowledgements_without_a_replicated_shard(
    ack_after: str, replicated: str, refused: bool
) -> None:
    model = hotpath("default", AckAfter=ack_after, ReplicatedShards=replicated)
    assert _rule_refuses(HOTPATH, "ReplicaAcknowledgementNeedsAStandby", model) is refused
    root = StackModel(
        "template.yaml",
        {"HotpathAckAfter": ack_after, "HotpathReplicatedShards": replicated},
        "us-east-1",
        "meridian-dev",
        "dev",
    )
    assert _rule_refuses(ROOT_TEMPLATE, "HotpathReplicaAcknowledgementNeedsAStandby", root) is refused


def test_the_ack_modes_the_templates_allow_are_the_nodes() -> None:
    from meridian_hotpath.commit import AckMode  # noqa: PLC0415 - the node package

    modes = sorted(mode.value for mode in AckMode)
    assert sorted(HOTPATH["Parameters"]["AckAfter"]["AllowedValues"]) == modes
    assert sorted(ROOT_TEMPLATE["Parameters"]["HotpathAckAfter"]["AllowedValues"]) == modes


def test_prod_and_staging_replicate_and_answer_after_the_replica_dev_and_dr_run_one_node() -> None:
    seen = {}
    for section in ("default", "staging", "prod", "dr"):
        model = environment_model(section).nested("HotpathStack")
        seen[section] = (model.parameters["ReplicatedShards"], model.parameters["AckAfter"])
    assert seen == {
        "default": ("false", "fsync"),
        "staging": ("true", "replica"),
        "prod": ("true", "replica"),
        "dr": ("false", "fsync"),
    }


# ---- 5. alarms ----

REPLICATION_ALARMS = {
    # alarm: (metric, statistic, comparison, threshold parameter or value)
    "ReplicationLagAlarm": ("ReplicationLagRecords", "Maximum", "GreaterThanThreshold"),
    "ReplicaChecksumMismatchAlarm": ("ReplicaChecksumMismatches", "Maximum", "GreaterThanThreshold"),
    "ShardTakeoverAlarm": ("LeaseEpochChanges", "Sum", "GreaterThanThreshold"),
    "NoStandbyAlarm": ("ReplicationConnected", "Maximum", "LessThanThreshold"),
}


def test_a_replicated_shard_alarms_on_lag_mismatch_takeover_and_a_missing_standby() -> None:
    observability = environment_model("prod").nested("ObservabilityStack")
    alarms = observability.of_type("AWS::CloudWatch::Alarm")
    topic = observability.ref("AlertTopic")
    for alarm_id, (metric, statistic, comparison) in REPLICATION_ALARMS.items():
        assert alarm_id in alarms, alarm_id
        alarm = observability.properties(alarm_id)
        assert (alarm["Namespace"], alarm["MetricName"]) == ("Meridian/Hotpath", metric), alarm_id
        assert alarm["Dimensions"] == [{"Name": "Environment", "Value": "prod"}], alarm_id
        assert (alarm["Statistic"], alarm["ComparisonOperator"]) == (statistic, comparison), alarm_id
        # The bridge puts every 10 s at standard resolution, stored per minute: 60 s periods.
        assert alarm["Period"] == 60, alarm_id
        assert alarm["TreatMissingData"] == "notBreaching", alarm_id
        assert alarm["AlarmActions"] == [topic], alarm_id
    assert observability.properties("ReplicaChecksumMismatchAlarm")["Threshold"] == 0
    assert observability.properties("ShardTakeoverAlarm")["Threshold"] == 0
    standby = observability.properties("NoStandbyAlarm")
    counts = (standby["Threshold"], standby["EvaluationPeriods"], standby["DatapointsToAlarm"])
    assert tuple(map(int, counts)) == (1, 5, 5)  # StandbyMissingMinutes, one-minute periods
    lag = observability.properties("ReplicationLagAlarm")
    assert (int(lag["Threshold"]), lag["EvaluationPeriods"], lag["DatapointsToAlarm"]) == (1000, 3, 3)


def test_a_single_node_environment_has_no_replication_alarms() -> None:
    alarms = environment_model("default").nested("ObservabilityStack").of_type("AWS::CloudWatch::Alarm")
    assert not set(REPLICATION_ALARMS) & set(alarms)


def test_the_bridge_publishes_what_the_alarms_read_from_the_nodes_gauges() -> None:
    from hotpath.deploy.cloudwatch_bridge import parse_exposition, replication_metric_data  # noqa: PLC0415

    primary = parse_exposition(
        "meridian_role_primary 1.0\nmeridian_lease_epoch 4.0\n"
        "meridian_replication_connected 0.0\nmeridian_replication_lag_records 1500.0\n"
    )
    data, epoch = replication_metric_data(primary, previous_epoch=3.0, environment="prod")
    values = {d["MetricName"]: d["Value"] for d in data}
    assert values == {
        "ReplicationConnected": 0.0,
        "ReplicationLagRecords": 1500.0,
        "LeaseEpoch": 4.0,
        "LeaseEpochChanges": 1.0,
    }
    assert epoch == 4.0
    again, _ = replication_metric_data(primary, previous_epoch=epoch, environment="prod")
    assert {d["MetricName"]: d["Value"] for d in again}["LeaseEpochChanges"] == 0.0
    standby = parse_exposition("meridian_lease_epoch 4.0\nmeridian_replica_checksum_mismatches 1.0\n")
    data, _ = replication_metric_data(standby, previous_epoch=None, environment="prod")
    values = {d["MetricName"]: d["Value"] for d in data}
    assert values == {"ReplicaChecksumMismatches": 1.0, "LeaseEpoch": 4.0}
    single = parse_exposition("meridian_requests_total 3.0\n")
    assert replication_metric_data(single, previous_epoch=None, environment="dev") == ([], None)


class _Metrics(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_: Any) -> None:
        pass


def _unit_command(unit: str, key: str) -> list[str]:
    """A unit's command as systemd runs it: its words, ``$$`` an escaped dollar."""
    text = (ROOT / "hotpath" / "deploy" / unit).read_text()
    (line,) = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]
    return [word.replace("$$", "$") for word in shlex.split(line.removeprefix("-"))]


@pytest.mark.parametrize(
    ("shard_args", "exposition", "ships"),
    [
        ("", b"meridian_requests_total 1.0\n", True),  # one node
        ("", b"", True),  # one node, its metrics unavailable: ships as before
        ("--shard default", b"meridian_role_primary 1.0\n", True),  # the primary
        ("--shard default", b"meridian_role_primary 0.0\n", False),  # the standby
        ("--shard default", None, False),  # a pair's node whose metrics do not answer
    ],
)
def test_only_the_primary_ships_a_replicated_shards_archive(
    shard_args: str, exposition: bytes | None, ships: bool
) -> None:
    condition = _unit_command("meridian-journal-ship.service", "ExecCondition")
    server = HTTPServer(("127.0.0.1", 0), _Metrics)
    _Metrics.body = exposition or b""
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    if exposition is None:
        server.server_close()  # nothing listens there
    else:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"PATH": os.environ["PATH"], "MERIDIAN_SHARD_ARGS": shard_args, "MERIDIAN_METRICS_URL": url}
        result = subprocess.run(condition, env=env, capture_output=True, check=False)
    finally:
        if exposition is not None:
            server.shutdown()
            server.server_close()
    # ExecCondition: 0 runs the unit, 1-254 skips it (not a failure).
    assert (result.returncode == 0) is ships, result
    assert result.returncode < 255


@pytest.mark.parametrize(("shard_args", "ships"), [("", True), ("--shard default", False)])
def test_a_replicated_shards_node_does_not_ship_when_it_stops(shard_args: str, ships: bool) -> None:
    command = _unit_command("meridian-node.service", "ExecStopPost")
    assert command[command.index("-m") + 1 : command.index("-m") + 3] == ["meridian_hotpath.archive", "ship"]
    # The shipper itself replaced by echo: what runs is what would have shipped.
    command[command.index("/opt/meridian/venv/bin/python")] = "echo"
    env = {"PATH": os.environ["PATH"], "MERIDIAN_SHARD_ARGS": shard_args}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert ("meridian_hotpath.archive ship" in result.stdout) is ships
