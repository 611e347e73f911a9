"""stacks/containers.yaml: ECS Fargate trading engines behind an internal ALB, with auto scaling."""

from __future__ import annotations

from tests.infra.templates import load, properties, resource

CONTAINERS = load("stacks/containers.yaml")


def test_fargate_cluster_with_container_insights() -> None:
    cluster = properties(CONTAINERS, "Cluster")
    assert {"Name": "containerInsights", "Value": "enhanced"} in cluster["ClusterSettings"]
    assert "FARGATE" in cluster["CapacityProviders"]


def test_trading_engine_service_runs_the_matching_node_on_fargate() -> None:
    task = properties(CONTAINERS, "EngineTaskDefinition")
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert task["NetworkMode"] == "awsvpc"
    (container,) = task["ContainerDefinitions"]
    assert container["Command"][:4] == ["python", "-m", "meridian_hotpath", "serve"]
    assert container["ReadonlyRootFilesystem"] is True
    service = properties(CONTAINERS, "EngineService")
    assert service["LaunchType"] == "FARGATE"
    assert service["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] == "DISABLED"
    assert service["LoadBalancers"][0]["TargetGroupArn"] == {"Ref": "EngineTargetGroup"}
    assert service["DeploymentConfiguration"]["DeploymentCircuitBreaker"] == {
        "Enable": True,
        "Rollback": True,
    }


def test_internal_alb_with_health_checks() -> None:
    alb = properties(CONTAINERS, "LoadBalancer")
    assert (alb["Type"], alb["Scheme"]) == ("application", "internal")
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["access_logs.s3.enabled"] == "true"
    target = properties(CONTAINERS, "EngineTargetGroup")
    assert (target["HealthCheckPath"], target["Port"]) == ("/healthz", 9101)


def test_https_with_a_certificate_else_http_with_a_written_reason() -> None:
    https, http = resource(CONTAINERS, "HttpsListener"), resource(CONTAINERS, "HttpListener")
    assert https["Condition"] == "HasCertificate"
    assert https["Properties"]["Protocol"] == "HTTPS"
    assert https["Properties"]["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")
    assert http["Condition"] == "HasNoCertificate"
    skipped = {s["id"]: s["comment"] for s in http["Metadata"]["checkov"]["skip"]}
    assert "CKV_AWS_2" in skipped
    assert "internal" in skipped["CKV_AWS_2"]


def test_service_scales_on_cpu_and_on_market_volatility() -> None:
    cpu = properties(CONTAINERS, "EngineCpuScalingPolicy")
    assert cpu["PolicyType"] == "TargetTrackingScaling"
    assert (
        cpu["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"][
            "PredefinedMetricType"
        ]
        == "ECSServiceAverageCPUUtilization"
    )
    step = properties(CONTAINERS, "EngineVolatilityScalingPolicy")
    assert step["PolicyType"] == "StepScaling"
    alarm = properties(CONTAINERS, "EngineHighVolatilityAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("Meridian/Hotpath", "MarketVolatility")
    assert alarm["AlarmActions"] == [{"Ref": "EngineVolatilityScalingPolicy"}]
    target = properties(CONTAINERS, "EngineScalableTarget")
    assert target["ScalableDimension"] == "ecs:service:DesiredCount"


def test_outputs_let_the_monitoring_stack_attach_to_the_cluster_and_alb() -> None:
    assert {"ClusterArn", "ListenerArn", "ServiceDiscoveryNamespaceId", "LoadBalancerDnsName"} <= set(
        CONTAINERS["Outputs"]
    )
