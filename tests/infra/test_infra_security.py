"""stacks/security.yaml: KMS keys per data class, tier security groups, WAF, CloudTrail."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest

from tests.infra.templates import as_list, branches, load, properties, resources
from tools.cfn_model import StackModel, environment_model, environments

SECURITY = load("stacks/security.yaml")
DATA_CLASS_KEYS = ("TradingDataKey", "MarketDataKey", "ComplianceKey", "LogsKey")


def _key_statements(key: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = properties(SECURITY, key)["KeyPolicy"]["Statement"]
    return statements


def _service_principals(key: str) -> set[str]:
    found = set()
    for statement in _key_statements(key):
        for service in as_list(statement.get("Principal", {}).get("Service")):
            found.add(service["Fn::Sub"] if isinstance(service, dict) else service)
    return found


def test_a_rotating_customer_managed_key_per_data_class() -> None:
    keys = resources(SECURITY, "AWS::KMS::Key")
    assert set(DATA_CLASS_KEYS) <= set(keys)
    for key in DATA_CLASS_KEYS:
        assert keys[key]["Properties"]["EnableKeyRotation"] is True
        # Kept when the stack is deleted; removed (scheduled for deletion) when its own create fails.
        assert keys[key]["DeletionPolicy"] == "RetainExceptOnCreate"
    aliases = {a["Properties"]["TargetKeyId"]["Ref"] for a in resources(SECURITY, "AWS::KMS::Alias").values()}
    assert aliases == set(DATA_CLASS_KEYS)


def test_key_policies_let_the_services_use_the_keys() -> None:
    assert "logs.${AWS::Region}.amazonaws.com" in _service_principals("LogsKey")
    assert "cloudwatch.amazonaws.com" in _service_principals("LogsKey")  # alarms -> encrypted alert topic
    assert "cloudtrail.amazonaws.com" in _service_principals("ComplianceKey")
    assert {"events.amazonaws.com", "sns.amazonaws.com"} <= _service_principals("TradingDataKey")
    # Market data travels on Kinesis, DynamoDB and S3 only: no service delivers it to a queue or topic.
    assert _service_principals("MarketDataKey") == {"firehose.amazonaws.com"}
    autoscaling = [
        s
        for s in _key_statements("TradingDataKey")
        if "AWSServiceRoleForAutoScaling" in str(s.get("Principal", {}).get("AWS", ""))
    ]
    assert any(s["Action"] == "kms:CreateGrant" for s in autoscaling), (
        "encrypted EBS for Auto Scaling launches"
    )


def test_service_statements_are_scoped_to_this_account() -> None:
    for key in DATA_CLASS_KEYS:
        for statement in _key_statements(key):
            if statement.get("Sid") in (
                "ServicesDeliveringToEncryptedQueuesAndTopics",
                "FirehoseArchivingTheStream",
            ):
                assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {
                    "Ref": "AWS::AccountId"
                }


def test_security_groups_per_tier() -> None:
    groups = resources(SECURITY, "AWS::EC2::SecurityGroup")
    assert {
        "MarketDataSecurityGroup",
        "ComplianceSecurityGroup",
        "LambdaSecurityGroup",
        "MatchingClientSecurityGroup",
        "MonitoringSecurityGroup",
    } == set(groups)
    assert "SecurityGroupIngress" not in groups["LambdaSecurityGroup"]["Properties"]
    # The order port is the hot-path nodes' alone (their own stack): no group here admits it.
    for name, group in groups.items():
        ports = {r["FromPort"] for r in group["Properties"].get("SecurityGroupIngress", [])}
        assert 9001 not in ports, name


def test_only_the_matching_client_group_reaches_the_order_port() -> None:
    groups = resources(SECURITY, "AWS::EC2::SecurityGroup")
    lambda_ports = {r["FromPort"] for r in groups["LambdaSecurityGroup"]["Properties"]["SecurityGroupEgress"]}
    assert 9001 not in lambda_ports
    client = groups["MatchingClientSecurityGroup"]["Properties"]
    assert [(r["FromPort"], r["ToPort"]) for r in client["SecurityGroupEgress"]] == [(9001, 9001)]
    assert "SecurityGroupIngress" not in client


def test_waf_web_acl_with_managed_rule_groups_and_a_rate_rule() -> None:
    acl = properties(SECURITY, "OrderApiWebAcl")
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    managed = {
        r["Statement"]["ManagedRuleGroupStatement"]["Name"]
        for r in acl["Rules"]
        if "ManagedRuleGroupStatement" in r["Statement"]
    }
    assert managed == {
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesSQLiRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    }
    (rate,) = [r for r in acl["Rules"] if "RateBasedStatement" in r["Statement"]]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    assert rate["Statement"]["RateBasedStatement"]["Limit"] == {"Ref": "WafRateLimitPerIp"}
    assert len({r["Priority"] for r in acl["Rules"]}) == len(acl["Rules"])
    logging = properties(SECURITY, "OrderApiWebAclLogging")
    assert {"SingleHeader": {"Name": "authorization"}} in logging["RedactedFields"]


def test_cloudtrail_multi_region_validated_and_encrypted() -> None:
    trail = properties(SECURITY, "AuditTrail")
    assert trail["IsMultiRegionTrail"] is True
    assert trail["EnableLogFileValidation"] is True
    assert trail["IncludeGlobalServiceEvents"] is True
    assert trail["IsLogging"] is True
    assert trail["KMSKeyId"] == {"Fn::GetAtt": ["ComplianceKey", "Arn"]}
    assert trail["S3BucketName"] == {"Ref": "CloudTrailBucket"}
    assert trail["CloudWatchLogsLogGroupArn"]


def test_cloudtrail_bucket_is_immutable_and_access_logged() -> None:
    bucket = properties(SECURITY, "CloudTrailBucket")
    assert bucket["ObjectLockEnabled"] is True
    assert bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"] == {
        "Fn::If": ["IsProd", "COMPLIANCE", "GOVERNANCE"]
    }
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}
    statements = properties(SECURITY, "CloudTrailBucketPolicy")["PolicyDocument"]["Statement"]
    writes = [s for s in statements if s.get("Sid") == "CloudTrailWrite"]
    assert writes[0]["Condition"]["StringEquals"]["aws:SourceArn"]


def test_access_log_bucket_accepts_s3_and_alb_logs_only() -> None:
    raw = properties(SECURITY, "AccessLogsBucketPolicy")["PolicyDocument"]["Statement"]
    statements = [concrete for s in raw for concrete in branches(s)]
    allowed = {s["Sid"] for s in statements if s["Effect"] == "Allow"}
    assert allowed == {
        "S3ServerAccessLogDelivery",
        "LoadBalancerAccessLogDelivery",
        "LoadBalancerAccessLogDeliveryByRegionAccount",
    }


def _security_stack(region: str) -> StackModel:
    return StackModel(
        "stacks/security.yaml",
        {"Environment": "dev", "VpcId": "vpc-1", "VpcCidr": "10.0.0.0/16"},
        region,
        "meridian-dev-SecurityStack",
        "dev",
    )


def test_alb_log_delivery_is_granted_in_every_region_load_balancing_runs_in() -> None:
    """Older regions deliver from a regional AWS account, newer ones only from the service principal:
    the mapping names every region botocore knows, so a deploy never fails at a missing map key."""
    regions = set(botocore.session.get_session().get_available_regions("elbv2"))
    mapping = SECURITY["Mappings"]["ElbLogDelivery"]
    assert regions <= set(mapping), sorted(regions - set(mapping))
    for region, principals in (("us-east-1", 2), ("us-west-2", 2), ("ap-south-2", 1), ("mx-central-1", 1)):
        security = _security_stack(region)
        document = security.properties("AccessLogsBucketPolicy")["PolicyDocument"]
        delivering = [
            s for s in document["Statement"] if s["Sid"].startswith("LoadBalancerAccessLogDelivery")
        ]
        assert len(delivering) == principals, region
        assert delivering[0]["Principal"] == {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}
    legacy = _security_stack("us-east-1").properties("AccessLogsBucketPolicy")["PolicyDocument"]["Statement"]
    assert {"AWS": "arn:aws:iam::127311923021:root"} in [s.get("Principal") for s in legacy]


# An ordinary trading client over REST: a few orders, cancels and reads a second, with bursts.
ORDINARY_CLIENT_REQUESTS_PER_SECOND = 50
WAF_WINDOW_SECONDS = 300  # a rate-based statement without EvaluationWindowSec counts 5 minutes


@pytest.mark.parametrize("section", sorted(environments()))
def test_the_waf_rate_limit_admits_an_ordinary_trading_client_and_stays_below_the_stage(section: str) -> None:
    """The per-IP limit is the root's WafRateLimitPerIp (docs/deploy.md), not the security stack's own
    default: it lets a trading client through and cuts one address off before it takes the stage."""
    root = environment_model(section)
    security = root.nested("SecurityStack")
    (rule,) = [
        r for r in security.properties("OrderApiWebAcl")["Rules"] if "RateBasedStatement" in r["Statement"]
    ]
    statement = rule["Statement"]["RateBasedStatement"]
    assert statement.get("EvaluationWindowSec", WAF_WINDOW_SECONDS) == WAF_WINDOW_SECONDS
    limit = int(statement["Limit"])
    assert limit == int(root.parameters["WafRateLimitPerIp"])
    per_second = limit / WAF_WINDOW_SECONDS
    assert per_second >= ORDINARY_CLIENT_REQUESTS_PER_SECOND, per_second
    assert per_second < int(root.parameters["OrderApiThrottlingRateLimit"])
