"""stacks/containers.yaml: the ECS Fargate cluster, the streaming gateway behind the internal ALB."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.templates import load, properties, resource
from tools.cfn_model import StackModel, environments

CONTAINERS = load("stacks/containers.yaml")


def test_fargate_cluster_with_container_insights() -> None:
    cluster = properties(CONTAINERS, "Cluster")
    assert {"Name": "containerInsights", "Value": "enhanced"} in cluster["ClusterSettings"]
    assert "FARGATE" in cluster["CapacityProviders"]


def test_the_fargate_service_is_the_streaming_gateway_and_matching_runs_on_the_hot_path_only() -> None:
    """The engine task definition nothing sent work to is gone: every task definition and service
    of the stack is the gateway's, and nothing in it runs the matching node."""
    kinds = ("AWS::ECS::TaskDefinition", "AWS::ECS::Service")
    ecs = {lid: r for lid, r in CONTAINERS["Resources"].items() if r["Type"] in kinds}
    assert set(ecs) == {"GatewayTaskDefinition", "GatewayService"}
    assert "meridian_hotpath" not in str(ecs)
    assert not [name for name in CONTAINERS["Parameters"] if name.startswith("Engine")]


def test_internal_alb_with_health_checks() -> None:
    alb = properties(CONTAINERS, "LoadBalancer")
    assert (alb["Type"], alb["Scheme"]) == ("application", "internal")
    attributes = {a["Key"]: a["Value"] for a in alb["LoadBalancerAttributes"]}
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["access_logs.s3.enabled"] == "true"
    default = properties(CONTAINERS, "HttpsListener")["DefaultActions"]
    assert [action["Type"] for action in default] == ["fixed-response"]  # only named paths are served
    assert default[0]["FixedResponseConfig"]["StatusCode"] == "404"


def test_the_https_listener_uses_a_tls13_policy() -> None:
    https = resource(CONTAINERS, "HttpsListener")
    assert https["Condition"] == "HasCertificate"
    assert https["Properties"]["Protocol"] == "HTTPS"
    assert https["Properties"]["SslPolicy"].startswith("ELBSecurityPolicy-TLS13")


CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/0c0ffee0-0000-4000-8000-000000000000"


def _listeners(model: StackModel) -> list[dict[str, Any]]:
    return [model.properties(lid) for lid in model.of_type("AWS::ElasticLoadBalancingV2::Listener")]


@pytest.mark.parametrize("certificate", ["", CERTIFICATE])
@pytest.mark.parametrize("section", sorted(environments()))
def test_the_internal_alb_never_serves_grafana_in_clear_text(section: str, certificate: str) -> None:
    """Grafana's login, Prometheus and the gateway: HTTPS through the ALB or nothing."""
    environment = environments()[section]
    root = StackModel(
        "template.yaml",
        {**environment.parameters, "AlbCertificateArn": certificate},
        environment.region,
        environment.stack_name,
        environment.name,
    )
    containers, monitoring = root.nested("ContainersStack"), root.nested("MonitoringStack")
    listeners = _listeners(containers)
    assert all(listener["Protocol"] == "HTTPS" for listener in listeners)
    assert all(listener["Port"] == 443 for listener in listeners)
    assert len(listeners) == (1 if certificate else 0)
    ingress = containers.properties("LoadBalancerSecurityGroup")["SecurityGroupIngress"]
    assert {(r["FromPort"], r["ToPort"]) for r in ingress} == {(443, 443)}
    rules = monitoring.of_type("AWS::ElasticLoadBalancingV2::ListenerRule")
    assert bool(rules) == bool(certificate)
    for lid in rules:
        assert monitoring.properties(lid)["ListenerArn"] == containers.ref("HttpsListener")
    grafana = monitoring.properties("GrafanaService")
    assert bool(grafana.get("LoadBalancers")) == bool(certificate)
    environment_variables = {
        e["Name"]: e["Value"]
        for e in monitoring.properties("GrafanaTaskDefinition")["ContainerDefinitions"][0]["Environment"]
    }
    assert environment_variables["GF_SERVER_ROOT_URL"].startswith("https://")
    assert environment_variables["GF_SECURITY_COOKIE_SECURE"] == "true"


def test_outputs_let_the_monitoring_stack_attach_to_the_cluster_and_alb() -> None:
    assert {"ClusterArn", "ListenerArn", "ServiceDiscoveryNamespaceId", "LoadBalancerDnsName"} <= set(
        CONTAINERS["Outputs"]
    )
