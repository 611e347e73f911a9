"""The streaming gateway in AWS: its ECR repository, its Fargate service behind the ALB on /stream,
its task role, its scaling, and the order-updates topic the trading bus feeds it; rendered for an
environment (``tools.cfn_model``) with an image and a certificate, and without."""

from __future__ import annotations

from typing import Any

import pytest

from meridian_gateway.config import GatewaySettings
from meridian_local.gateway_server import PATTERN as LOCAL_PATTERN
from tests.infra.templates import as_list
from tools.cfn_model import StackModel, environments

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/meridian-gateway-dev:0c0ffee"
CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0c0ffee0-0000-4000-8000-000000000000"


def model(image: str = IMAGE, certificate: str = CERTIFICATE, section: str = "default") -> StackModel:
    environment = environments()[section]
    overrides = {"GatewayImageUri": image, "AlbCertificateArn": certificate}
    return StackModel("template.yaml", {**environment.parameters, **overrides}, environment.region,
                      environment.stack_name, environment.name)  # fmt: skip


ROOT = model()
CONTAINERS = ROOT.nested("ContainersStack")


def _statements() -> dict[str, dict[str, Any]]:
    (policy,) = CONTAINERS.properties("GatewayTaskRole")["Policies"]
    return {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}


def test_the_image_repository_scans_on_push_keeps_tags_and_encrypts_with_the_data_key() -> None:
    repository = CONTAINERS.properties("GatewayRepository")
    assert repository["RepositoryName"] == "meridian-gateway-dev"
    assert repository["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert repository["ImageTagMutability"] == "IMMUTABLE"
    assert repository["EncryptionConfiguration"] == {
        "EncryptionType": "KMS",
        "KmsKey": ROOT.nested("SecurityStack").output("TradingDataKeyArn"),
    }
    assert CONTAINERS.output("GatewayRepositoryUri") == CONTAINERS.get_att(
        "GatewayRepository", "RepositoryUri"
    )


def test_the_task_runs_as_a_non_root_user_on_a_read_only_root_with_encrypted_retained_logs() -> None:
    task = CONTAINERS.properties("GatewayTaskDefinition")
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["TaskRoleArn"] == CONTAINERS.get_att("GatewayTaskRole", "Arn")
    (container,) = task["ContainerDefinitions"]
    assert container["Image"] == IMAGE
    assert container["User"] == "10001:10001"
    assert container["ReadonlyRootFilesystem"] is True
    assert container["LinuxParameters"]["Capabilities"] == {"Drop": ["ALL"]}
    assert container["PortMappings"] == [{"ContainerPort": 8080, "Protocol": "tcp"}]
    logs = container["LogConfiguration"]
    assert logs["LogDriver"] == "awslogs"
    assert logs["Options"]["awslogs-group"] == CONTAINERS.ref("GatewayLogGroup")
    group = CONTAINERS.properties("GatewayLogGroup")
    assert group["KmsKeyId"] == ROOT.nested("SecurityStack").output("LogsKeyArn")
    assert int(group["RetentionInDays"]) >= 30


def test_the_tasks_settings_name_the_platforms_stream_topic_table_api_and_roles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The task's environment, read by the gateway's own settings: every name resolves to the
    resource the root template creates (a misspelt variable would leave a default)."""
    (container,) = CONTAINERS.properties("GatewayTaskDefinition")["ContainerDefinitions"]
    for variable in container["Environment"]:
        monkeypatch.setenv(variable["Name"], str(variable["Value"]))
    settings = GatewaySettings()
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)  # noqa: S104 - in the task, behind the ALB
    assert settings.market_data_stream == ROOT.nested("StreamingStack").properties("MarketDataStream")["Name"]
    assert settings.order_updates_topic_arn == ROOT.ref("OrderUpdatesTopic")
    assert settings.order_queue_url == ""  # each task makes its own queue on the topic
    assert settings.queue_name_prefix == "meridian-gateway-dev"
    assert settings.queue_kms_key == ROOT.nested("SecurityStack").output("TradingDataKeyArn")
    assert settings.principals_table == ROOT.properties("PrincipalsTable")["TableName"]
    assert (settings.api_id, settings.api_stage) == (ROOT.ref("OrdersApi"), "v1")
    roles = ("TraderRole", "RiskOfficerRole", "ComplianceOfficerRole", "OperatorRole")
    assert settings.role_names.split(",") == [ROOT.properties(r)["RoleName"] for r in roles]


def test_the_task_role_reads_the_stream_keeps_its_own_queues_and_reads_the_api_roles_alone() -> None:
    statements = _statements()
    arn = "arn:aws:{}:us-east-1:123456789012:{}"
    stream = ROOT.nested("StreamingStack").get_att("MarketDataStream", "Arn")
    assert statements["ReadTheMarketDataStream"]["Resource"] == stream
    assert set(as_list(statements["ReadTheMarketDataStream"]["Action"])) == {
        "kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:ListShards",
        "kinesis:GetShardIterator", "kinesis:GetRecords",
    }  # fmt: skip
    subscribe = statements["SubscribeItsQueuesToTheOrderUpdates"]
    assert (subscribe["Action"], subscribe["Resource"]) == ("sns:Subscribe", ROOT.ref("OrderUpdatesTopic"))
    assert subscribe["Condition"] == {
        "StringEquals": {"sns:Protocol": "sqs"},
        "StringLike": {"sns:Endpoint": arn.format("sqs", "meridian-gateway-dev-*")},
    }
    assert statements["ItsOwnQueues"]["Resource"] == arn.format("sqs", "meridian-gateway-dev-*")
    assert all(a.startswith("sqs:") for a in as_list(statements["ItsOwnQueues"]["Action"]))
    assert statements["WhoIsCalling"] == {
        "Sid": "WhoIsCalling", "Effect": "Allow", "Action": "dynamodb:GetItem",
        "Resource": ROOT.get_att("PrincipalsTable", "Arn"),
    }  # fmt: skip
    roles = statements["TheApiRolesPolicies"]
    assert all(a.split(":")[1].startswith(("Get", "List")) for a in as_list(roles["Action"]))
    assert as_list(roles["Resource"]) == [
        ROOT.get_att(r, "Arn")
        for r in ("TraderRole", "RiskOfficerRole", "ComplianceOfficerRole", "OperatorRole")
    ]
    security = ROOT.nested("SecurityStack")
    assert statements["DecryptTheStreamTableAndQueues"]["Action"] == "kms:Decrypt"
    assert as_list(statements["DecryptTheStreamTableAndQueues"]["Resource"]) == [
        security.output("MarketDataKeyArn"), security.output("TradingDataKeyArn")
    ]  # fmt: skip
    # The one statement on every resource is the one IAM gives no resource to.
    starred = [s for s in statements.values() if "*" in as_list(s["Resource"])]
    assert [(s["Sid"], s["Action"]) for s in starred] == [("WildcardUnsubscribeItsQueues", "sns:Unsubscribe")]
    assert all(s["Effect"] == "Allow" and "*" not in str(s["Action"]) for s in statements.values())


def test_websocket_on_the_https_listener_reaches_the_tasks_health_checked_on_healthz() -> None:
    rule = CONTAINERS.properties("GatewayListenerRule")
    assert rule["ListenerArn"] == CONTAINERS.ref("HttpsListener")
    assert rule["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/stream"]}}]
    target = CONTAINERS.ref("GatewayTargetGroup")
    assert rule["Actions"] == [{"Type": "forward", "TargetGroupArn": target}]
    assert CONTAINERS.properties("HttpsListener")["Protocol"] == "HTTPS"
    group = CONTAINERS.properties("GatewayTargetGroup")
    assert (group["Port"], group["HealthCheckPath"], group["TargetType"]) == (8080, "/healthz", "ip")
    service = CONTAINERS.properties("GatewayService")
    assert service["LoadBalancers"] == [
        {"ContainerName": "gateway", "ContainerPort": 8080, "TargetGroupArn": target}
    ]
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert network["SecurityGroups"] == [CONTAINERS.ref("GatewaySecurityGroup")]
    ingress = CONTAINERS.properties("GatewayFromLoadBalancerIngress")
    assert (ingress["FromPort"], ingress["SourceSecurityGroupId"]) == (
        8080, CONTAINERS.ref("LoadBalancerSecurityGroup")
    )  # fmt: skip


def test_without_a_certificate_or_an_image_nothing_is_half_wired() -> None:
    bare = model(certificate="").nested("ContainersStack")
    assert "GatewayListenerRule" not in bare.resources
    assert "LoadBalancers" not in bare.properties("GatewayService")
    assert "GatewayConnectionsScalingPolicy" not in bare.resources  # no ALB metric to follow
    imageless = model(image="").nested("ContainersStack")
    assert "GatewayRepository" in imageless.resources
    assert not {"GatewayTaskDefinition", "GatewayService", "GatewayScalableTarget"} & set(imageless.resources)


def test_the_service_scales_on_cpu_and_on_connections_per_task() -> None:
    target = CONTAINERS.properties("GatewayScalableTarget")
    assert target["ResourceId"].endswith("/meridian-dev-gateway")
    cpu = CONTAINERS.properties("GatewayCpuScalingPolicy")["TargetTrackingScalingPolicyConfiguration"]
    assert cpu["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ECSServiceAverageCPUUtilization"
    connections = CONTAINERS.properties("GatewayConnectionsScalingPolicy")
    config = connections["TargetTrackingScalingPolicyConfiguration"]
    assert int(config["TargetValue"]) == 2000
    metrics = {m["Id"]: m for m in config["CustomizedMetricSpecification"]["Metrics"]}
    alb = metrics["connections"]["MetricStat"]["Metric"]
    assert (alb["Namespace"], alb["MetricName"]) == ("AWS/ApplicationELB", "ActiveConnectionCount")
    dimensions = {d["Name"]: d["Value"] for d in alb["Dimensions"]}
    assert dimensions["TargetGroup"] == CONTAINERS.get_att("GatewayTargetGroup", "TargetGroupFullName")
    assert metrics["tasks"]["MetricStat"]["Metric"]["MetricName"] == "RunningTaskCount"
    assert [m["Id"] for m in metrics.values() if m["ReturnData"]] == ["per_task"]
    assert "connections" in metrics["per_task"]["Expression"]


def test_the_trading_bus_feeds_order_updates_to_the_gateways_topic_alone() -> None:
    rule = ROOT.properties("OrderUpdatesRule")
    assert rule["EventBusName"] == ROOT.ref("TradingEventBus")
    assert rule["EventPattern"] == LOCAL_PATTERN  # what make run's gateway queue gets, too
    (target,) = rule["Targets"]
    assert target["Arn"] == ROOT.ref("OrderUpdatesTopic")
    topic = ROOT.properties("OrderUpdatesTopic")
    assert topic["KmsMasterKeyId"] == ROOT.nested("SecurityStack").output("TradingDataKeyArn")
    statements = {
        s["Sid"]: s for s in ROOT.properties("OrderUpdatesTopicPolicy")["PolicyDocument"]["Statement"]
    }
    publish = statements["OnlyTheOrderUpdatesRulePublishes"]
    assert publish["Principal"] == {"Service": "events.amazonaws.com"}
    assert publish["Condition"] == {"ArnEquals": {"aws:SourceArn": ROOT.get_att("OrderUpdatesRule", "Arn")}}
    assert statements["TlsOnly"]["Effect"] == "Deny"
    containers = ROOT.properties("ContainersStack")["Parameters"]
    assert containers["OrderUpdatesTopicArn"] == ROOT.ref("OrderUpdatesTopic")
