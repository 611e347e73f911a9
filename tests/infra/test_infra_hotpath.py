"""hotpath/template.yaml and hotpath/deploy/: the ultra-low-latency trading layer of the seed."""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.templates import ROOT, load, one, properties, resources
from tools.cfn_model import environment_model

HOTPATH = load("hotpath/template.yaml")
DEPLOY = ROOT / "hotpath" / "deploy"
LAUNCH = properties(HOTPATH, "NodeLaunchTemplate")["LaunchTemplateData"]


def _role_statements() -> dict[str, dict[str, Any]]:
    (policy,) = properties(HOTPATH, "NodeInstanceRole")["Policies"]
    found = {}
    for statement in policy["PolicyDocument"]["Statement"]:
        if "Fn::If" in statement:
            statement = statement["Fn::If"][1]
        found[statement["Sid"]] = statement
    return found


def _unit_line(unit: str, key: str) -> str:
    lines = [line for line in (DEPLOY / unit).read_text().splitlines() if line.startswith(f"{key}=")]
    assert len(lines) == 1, f"{unit}: {key}"
    return lines[0].split("=", 1)[1]


# ---- placement groups, C5n, dedicated tenancy, enhanced networking ----


def test_cluster_placement_group_holds_the_fleet() -> None:
    _, group = one(HOTPATH, "AWS::EC2::PlacementGroup")
    assert group["Properties"]["Strategy"] == "cluster"
    asg = properties(HOTPATH, "NodeAutoScalingGroup")
    assert asg["PlacementGroup"] == {"Ref": "NodePlacementGroup"}
    # A cluster placement group is in one AZ: the group uses the first hot-path subnet.
    assert asg["VPCZoneIdentifier"] == [{"Fn::Select": [0, {"Ref": "HotpathSubnetIds"}]}]


def test_c5n_instances_by_default() -> None:
    parameter = HOTPATH["Parameters"]["InstanceType"]
    assert parameter["Default"] == "c5n.9xlarge"
    assert all(t.startswith("c5n.") for t in parameter["AllowedValues"])
    assert LAUNCH["InstanceType"] == {"Ref": "InstanceType"}


def test_dedicated_tenancy_and_io2_journals_in_prod_and_dr_shared_gp3_in_dev() -> None:
    assert LAUNCH["Placement"]["Tenancy"] == {"Ref": "Tenancy"}
    journal = next(m for m in LAUNCH["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf")["Ebs"]
    assert journal["VolumeType"] == {"Ref": "JournalVolumeType"}
    seen = {}
    for section in ("default", "prod", "dr"):
        hotpath = environment_model(section).nested("HotpathStack")
        data = hotpath.properties("NodeLaunchTemplate")["LaunchTemplateData"]
        ebs = next(m for m in data["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf")["Ebs"]
        seen[section] = (data["Placement"]["Tenancy"], ebs["VolumeType"], ebs["VolumeSize"], ebs["Iops"])
    assert seen == {
        "default": ("default", "gp3", 50, 3000),
        "prod": ("dedicated", "io2", "200", "6000"),
        "dr": ("dedicated", "io2", "200", "6000"),
    }


def test_enhanced_networking_and_ebs_optimized() -> None:
    assert LAUNCH["EbsOptimized"] is True
    (interface,) = LAUNCH["NetworkInterfaces"]
    assert interface["InterfaceType"] == "interface"  # ENA (SR-IOV) on C5n
    assert interface["AssociatePublicIpAddress"] is False
    assert interface["Groups"] == [{"Ref": "NodeSecurityGroup"}]


def test_imdsv2_only() -> None:
    assert LAUNCH["MetadataOptions"]["HttpTokens"] == "required"
    assert LAUNCH["MetadataOptions"]["HttpPutResponseHopLimit"] == 1


def test_every_volume_is_encrypted_with_the_trading_key_and_tagged_for_snapshots() -> None:
    for mapping in LAUNCH["BlockDeviceMappings"]:
        assert mapping["Ebs"]["Encrypted"] is True
        assert mapping["Ebs"]["KmsKeyId"] == {"Ref": "TradingDataKeyArn"}
    (volume_tags,) = [t["Tags"] for t in LAUNCH["TagSpecifications"] if t["ResourceType"] == "volume"]
    assert {"Key": {"Ref": "SnapshotTagKey"}, "Value": {"Ref": "SnapshotTagValue"}} in volume_tags


# ---- NLB, PrivateLink, security groups ----


def test_internal_nlb_on_the_order_port_with_health_checks_on_the_metrics_port() -> None:
    nlb = properties(HOTPATH, "NodeLoadBalancer")
    assert nlb["Type"] == "network"
    assert nlb["Scheme"] == "internal"
    listener = properties(HOTPATH, "NodeListener")
    assert (listener["Protocol"], listener["Port"]) == ("TCP", 9001)
    target = properties(HOTPATH, "NodeTargetGroup")
    assert (target["Protocol"], target["Port"]) == ("TCP", 9001)
    # One node (dev): GET :9101/healthz. A replicated shard's check is test_infra_replicated_shards'.
    dev = environment_model("default").nested("HotpathStack").properties("NodeTargetGroup")
    assert (dev["HealthCheckProtocol"], dev["HealthCheckPort"], dev["HealthCheckPath"]) == (
        "HTTP",
        "9101",
        "/healthz",
    )
    assert properties(HOTPATH, "NodeAutoScalingGroup")["TargetGroupARNs"] == [{"Ref": "NodeTargetGroup"}]


def test_privatelink_service_accepts_by_hand_named_principals_and_an_endpoint_in_the_lambda_subnets() -> None:
    service = properties(HOTPATH, "NodeEndpointService")
    assert service["AcceptanceRequired"] is True
    assert service["NetworkLoadBalancerArns"] == [{"Ref": "NodeLoadBalancer"}]
    permissions = properties(HOTPATH, "NodeEndpointServicePermissions")
    assert permissions["AllowedPrincipals"] == {
        "Fn::If": [
            "NamesEndpointPrincipals",
            {"Ref": "EndpointAllowedPrincipalArns"},
            [{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}],
        ]
    }
    endpoint = properties(HOTPATH, "HotpathEndpoint")
    assert endpoint["VpcEndpointType"] == "Interface"
    assert endpoint["ServiceName"] == {"Fn::Sub": "com.amazonaws.vpce.${AWS::Region}.${NodeEndpointService}"}
    assert endpoint["SubnetIds"] == {"Ref": "EndpointSubnetIds"}


def test_the_load_balancer_holds_privatelink_traffic_to_its_security_group() -> None:
    balancer = properties(HOTPATH, "NodeLoadBalancer")
    assert balancer["EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic"] == "on"


def test_the_node_reads_only_the_session_key_secrets_it_is_given() -> None:
    statements = properties(HOTPATH, "NodeInstanceRole")["Policies"][0]["PolicyDocument"]["Statement"]
    (read,) = [s for s in statements if isinstance(s, dict) and s.get("Sid") == "ReadSessionKeys"]
    assert read["Action"] == "secretsmanager:GetSecretValue"
    assert read["Resource"] == {"Fn::Split": [",", {"Ref": "SessionKeySecretArns"}]}


def _ingress(group: str) -> set[tuple[int, str]]:
    return {
        (rule["FromPort"], rule["SourceSecurityGroupId"]["Ref"])
        for rule in properties(HOTPATH, group)["SecurityGroupIngress"]
    }


def test_nodes_accept_only_the_order_port_from_the_endpoint_tier_and_metrics_from_monitoring() -> None:
    # LambdaSecurityGroupId is the security stack's MatchingClientSecurityGroup (the root wires it).
    assert _ingress("EndpointSecurityGroup") == {(9001, "LambdaSecurityGroupId")}
    assert _ingress("LoadBalancerSecurityGroup") == {
        (9001, "LambdaSecurityGroupId"),
        (9001, "EndpointSecurityGroup"),  # PrivateLink traffic, held to the NLB's rules
    }
    assert _ingress("NodeSecurityGroup") == {
        (9001, "LoadBalancerSecurityGroup"),
        (9101, "LoadBalancerSecurityGroup"),
        (9101, "MonitoringSecurityGroupId"),
    }
    for rule in properties(HOTPATH, "NodeSecurityGroup")["SecurityGroupIngress"]:
        assert rule["FromPort"] == rule["ToPort"]


# ---- scaling on market volatility ----


def test_market_volatility_adds_spare_capacity_and_proposes_symbol_moves() -> None:
    alarms = resources(HOTPATH, "AWS::CloudWatch::Alarm")
    high = alarms["HighVolatilityAlarm"]["Properties"]
    assert (high["Namespace"], high["MetricName"]) == ("Meridian/Hotpath", "MarketVolatility")
    assert high["AlarmActions"] == [
        {"Fn::If": ["HasSpareCapacity", {"Ref": "ScaleOutPolicy"}, {"Ref": "AWS::NoValue"}]},
        {"Ref": "VolatilityTopic"},  # the proposal: an operator decides on a move
    ]
    assert "docs/runbooks/symbol-move.md" in high["AlarmDescription"]
    out = properties(HOTPATH, "ScaleOutPolicy")
    assert out["PolicyType"] == "StepScaling"
    # the spare group, never a shard's: a second node of a shard would be a second writer
    assert out["AutoScalingGroupName"] == {"Ref": "SpareAutoScalingGroup"}
    assert out["StepAdjustments"][0]["ScalingAdjustment"] > 0
    low = alarms["LowVolatilityAlarm"]["Properties"]["AlarmActions"]
    assert low[0] == {"Fn::If": ["HasSpareCapacity", {"Ref": "ScaleInPolicy"}, {"Ref": "AWS::NoValue"}]}
    scaling = resources(HOTPATH, "AWS::AutoScaling::ScalingPolicy").values()
    assert {p["Properties"]["AutoScalingGroupName"]["Ref"] for p in scaling} == {"SpareAutoScalingGroup"}


def test_fleet_is_single_node_and_empty_until_a_release_exists() -> None:
    asg = properties(HOTPATH, "NodeAutoScalingGroup")
    for size in ("MinSize", "MaxSize", "DesiredCapacity"):  # one writer per book: nothing scales a shard
        assert asg[size] == {
            "Fn::If": ["HasRelease", {"Fn::If": ["IsReplicated", 2, {"Ref": "NodeCount"}]}, 0]
        }
    assert HOTPATH["Parameters"]["ShardCount"]["Default"] == 1


# ---- instance profile: least privilege ----


def test_instance_role_grants_only_what_the_node_does() -> None:
    statements = _role_statements()
    metrics = statements["WildcardResourcePublishMetrics"]
    assert metrics["Action"] == "cloudwatch:PutMetricData"
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Meridian/Hotpath"}}
    kinesis = statements["PublishMarketData"]
    assert "kinesis:PutRecords" in kinesis["Action"]
    assert "${MarketDataStreamName}" in kinesis["Resource"]["Fn::Sub"]
    assert statements["ReadNodeConfiguration"]["Resource"]["Fn::Sub"].endswith(
        ":parameter/meridian/${Environment}/hotpath/*"
    )
    assert statements["ShipAndRestoreShardArchive"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${EngineStateBucketName}/${ArchivePrefix}/*"
    }
    managed = properties(HOTPATH, "NodeInstanceRole")["ManagedPolicyArns"]
    assert managed == [{"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"}]


# ---- user data: install, start, pin, tune ----


def _user_data() -> str:
    text: str = LAUNCH["UserData"]["Fn::Base64"]["Fn::Sub"]
    return text


def _rendered_user_data() -> str:
    """The user data as an instance receives it, with sample parameter values."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return {"AWS::Region": "us-east-1", "NodeMode": "active", "KernelCpuIsolation": "false"}.get(
            name, f"x-{name}"
        )

    return re.sub(r"\$\{([A-Za-z0-9:]+)\}", value, _user_data())


def test_user_data_is_the_deploy_script_inlined_by_sub() -> None:
    assert _user_data() == (DEPLOY / "user-data.sh").read_text()


def test_user_data_fits_the_ec2_limit() -> None:
    assert len(_rendered_user_data().encode()) < 16 * 1024


def test_user_data_only_substitutes_parameters_and_resources() -> None:
    known = (
        set(HOTPATH["Parameters"])
        | set(HOTPATH["Resources"])
        | {"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName"}
    )
    used = set(re.findall(r"\$\{([A-Za-z0-9:]+)\}", _user_data()))
    assert used <= known, used - known


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_user_data_and_scripts_are_valid_bash(tmp_path: Path) -> None:
    script = tmp_path / "user-data.sh"
    script.write_text(_rendered_user_data())
    for path in (script, DEPLOY / "tune-host.sh", DEPLOY / "activate.sh", DEPLOY / "build_bundle.sh"):
        subprocess.run(["bash", "-n", str(path)], check=True)


def test_user_data_installs_and_starts_the_node_as_a_systemd_service() -> None:
    text = _user_data()
    assert "cat > /etc/systemd/system/meridian-node.service" in text
    assert "systemctl enable --now meridian-node.service" in (DEPLOY / "activate.sh").read_text()
    assert '"$NODE_MODE" = "active"' in text
    assert "/opt/meridian/venv/bin/pip install" in text


def test_node_unit_runs_the_documented_command_pinned_to_the_engine_cpus() -> None:
    exec_start = _unit_line("meridian-node.service", "ExecStart")
    assert exec_start.startswith("/usr/bin/taskset -c $MERIDIAN_ENGINE_CPUS ")
    command = "-m meridian_hotpath serve --host 0.0.0.0 --port 9001 --metrics-port 9101"
    assert f"{command} --data-dir /var/lib/meridian" in exec_start


def test_node_unit_arguments_are_accepted_by_the_node_cli() -> None:
    from meridian_hotpath.cli import build_parser  # noqa: PLC0415 - the node package, imported late

    words = shlex.split(_unit_line("meridian-node.service", "ExecStart"))
    arguments = words[words.index("meridian_hotpath") + 1 :]
    environment = {  # node.env, as the bootstrap writes it for the dev environment
        "$MERIDIAN_KINESIS_STREAM": "meridian-market-data-dev",
        "$MERIDIAN_EXECUTIONS_STREAM": "meridian-executions-dev",
        "$MERIDIAN_NODE_NUMBER": "7",
        "$MERIDIAN_ACK_AFTER": "fsync",
        "$MERIDIAN_SHARD_ARGS": "",  # one node (systemd expands an empty $VAR word to no argument)
    }
    arguments = [environment.get(w, w) for w in arguments if environment.get(w, w)]
    parsed = build_parser().parse_args(arguments)
    every_interface = "0.0.0.0"  # noqa: S104 - the node listens on its ENA address behind the NLB
    assert (parsed.command, parsed.port, parsed.metrics_port) == ("serve", 9001, 9101)
    assert parsed.host == every_interface
    assert parsed.kinesis_stream == "meridian-market-data-dev"
    assert (parsed.executions_stream, parsed.node_number) == ("meridian-executions-dev", 7)
    assert (parsed.ack_after, parsed.shard) == ("fsync", None)


def test_host_tuning_disables_irqbalance_pins_irqs_and_sets_network_sysctls() -> None:
    tune = (DEPLOY / "tune-host.sh").read_text()
    assert "systemctl disable --now irqbalance.service" in tune
    assert "smp_affinity_list" in tune
    for setting in ("net.core.busy_poll", "net.core.busy_read", "net.core.rmem_max", "net.core.wmem_max"):
        assert re.search(rf"^{re.escape(setting)} = \d+", tune, re.MULTILINE), setting
    assert "CPUAffinity=" in tune  # everything else stays on the housekeeping CPUs
    assert "isolcpus=" in _user_data()  # opt-in kernel isolation (KernelCpuIsolation)


def test_journal_is_shipped_to_s3_on_a_timer_and_on_every_stop() -> None:
    assert "meridian_hotpath.archive ship" in _unit_line("meridian-node.service", "ExecStopPost")
    assert "meridian_hotpath.archive ship" in _unit_line("meridian-journal-ship.service", "ExecStart")
    assert _unit_line("meridian-journal-ship.timer", "OnUnitInactiveSec") == "10"


def test_the_periodic_ship_prunes_what_the_archive_holds_and_the_stop_ship_does_not() -> None:
    # The disk keeps the newest snapshots and the journal after them; the archive keeps everything.
    assert re.search(r"--prune-keep [1-9]", _unit_line("meridian-journal-ship.service", "ExecStart"))
    assert "--prune-keep" not in _unit_line("meridian-node.service", "ExecStopPost")


def test_release_bundle_carries_what_the_bootstrap_installs(tmp_path: Path) -> None:
    bundle = tmp_path / "node.tar.gz"
    subprocess.run([str(DEPLOY / "build_bundle.sh"), str(bundle)], check=True, capture_output=True)
    listing = subprocess.run(["tar", "-tzf", str(bundle)], check=True, capture_output=True, text=True).stdout
    for member in (
        "./meridian/protocol.py",
        "./meridian_hotpath/__main__.py",
        "./deploy/requirements-node.txt",
        "./deploy/cloudwatch_bridge.py",
        "./deploy/meridian-journal-ship.timer",
        "./deploy/cloudwatch-agent.json",
        "./setup_native.py",
        "./meridian_hotpath/engine/native.c",
        "./meridian_hotpath/engine/native_support.h",
        "./meridian_hotpath/journal_sync.c",
    ):
        assert member in listing.splitlines(), member
    assert not [name for name in listing.splitlines() if name.endswith(".so")], "the host builds its own"


@pytest.mark.integration
def test_the_bundle_builds_its_native_parts_with_gcc_alone_and_trades(tmp_path: Path) -> None:
    """What a node's bootstrap does: compile the generated C (no Cython on the host), then run."""
    bundle = tmp_path / "node.tar.gz"
    subprocess.run([str(DEPLOY / "build_bundle.sh"), str(bundle)], check=True, capture_output=True)
    app = tmp_path / "app"
    app.mkdir()
    subprocess.run(["tar", "-xzf", str(bundle), "-C", str(app)], check=True)
    without_cython = (
        "import sys, runpy; sys.modules['Cython'] = None; sys.modules['Cython.Build'] = None;"
        " sys.argv = ['setup_native.py', '--quiet', 'build_ext', '--inplace'];"
        " runpy.run_path('setup_native.py', run_name='__main__')"
    )
    subprocess.run([sys.executable, "-c", without_cython], cwd=app, check=True, capture_output=True)
    trade = (
        "import meridian_hotpath.engine.native as native, meridian_hotpath.journal_sync;"
        " from meridian.domain import DEFAULT_INSTRUMENTS;"
        " assert native.__file__.startswith(sys.argv[1]), native.__file__;"
        " e = native.MatchingEngine(DEFAULT_INSTRUMENTS);"
        " e.submit(1, 'a', 'A', 'AAPL', 2, 1, 1, 0, 5, 19000);"
        " e.submit(2, 'b', 'B', 'AAPL', 1, 1, 1, 0, 5, 19000);"
        " print(e.trade_id)"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); " + trade, str(app)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert result.stdout.strip() == "1"


def _glibc_versions(shared_object: Path) -> list[tuple[int, ...]]:
    symbols = subprocess.run(
        ["objdump", "-T", str(shared_object)], check=True, capture_output=True, text=True
    )
    found = set(re.findall(r"GLIBC_([0-9.]+)", symbols.stdout))
    return sorted(tuple(int(part) for part in version.split(".")) for version in found)


@pytest.mark.parametrize(
    ("module", "newest"),
    [
        # The engine also runs in the restore Lambda (python3.11 on Amazon Linux 2, glibc 2.26).
        ("meridian_hotpath.engine.native", (2, 26)),
        # The syncer runs on the nodes only (Amazon Linux 2023, glibc 2.34).
        ("meridian_hotpath.journal_sync", (2, 34)),
    ],
)
def test_native_parts_ask_no_newer_glibc_than_where_they_run(module: str, newest: tuple[int, int]) -> None:
    path = Path(importlib.import_module(module).__file__ or "")
    assert path.suffix == ".so"
    assert _glibc_versions(path)[-1] <= newest


# ---- the CloudWatch bridge: node metrics -> Meridian/Hotpath ----


def test_bridge_publishes_p99_latency_in_microseconds_from_the_nodes_own_metrics() -> None:
    from hotpath.deploy.cloudwatch_bridge import metric_data, parse_exposition  # noqa: PLC0415
    from meridian_hotpath.metrics import NodeMetrics  # noqa: PLC0415

    metrics = NodeMetrics()
    for _ in range(200):
        metrics.observe_latency("new_order", 0.0004)
        metrics.count_request("new_order", "accepted")
    samples = parse_exposition(metrics.exposition().decode())
    data, total = metric_data(samples, previous_requests=100.0, interval=10.0, environment="dev")
    by_name = {d["MetricName"]: d for d in data}
    assert by_name["OrderLatencyP99"]["Value"] == pytest.approx(400.0, rel=0.07)  # to bucket precision
    assert by_name["OrderLatencyP99"]["Unit"] == "Microseconds"
    assert by_name["OrderRate"]["Value"] == pytest.approx(10.0)
    assert total == 200
    assert all(d["Dimensions"] == [{"Name": "Environment", "Value": "dev"}] for d in data)
    assert "MarketVolatility" not in by_name  # published once the node exposes meridian_market_volatility


def test_bridge_forwards_market_volatility_when_the_node_exposes_it() -> None:
    from hotpath.deploy.cloudwatch_bridge import metric_data, parse_exposition  # noqa: PLC0415

    samples = parse_exposition("# TYPE meridian_market_volatility gauge\nmeridian_market_volatility 42.5\n")
    data, _ = metric_data(samples, previous_requests=None, interval=10.0, environment="prod")
    assert {"MetricName": "MarketVolatility", "Value": 42.5, "Unit": "None"}.items() <= data[-1].items()


def test_outputs_give_the_endpoint_dns_port_and_nlb() -> None:
    outputs = HOTPATH["Outputs"]
    assert outputs["EndpointPort"]["Value"] == "9001"
    assert outputs["LoadBalancerArn"]["Value"] == {"Ref": "NodeLoadBalancer"}
    assert "HotpathEndpoint" in str(outputs["EndpointDnsName"]["Value"])
