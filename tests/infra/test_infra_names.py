"""Every physical name a template sets carries the environment, so environments (and the recovery
region) can share an account: evaluated for every environment of samconfig.toml, each name property
holds the environment's name, and no two environments' resources share a name."""

from __future__ import annotations

import re

import pytest

from tools.cfn_model import environment_model, environments

# Where each resource type takes a name that must be unique in the account (or region). Types that
# take no such name (or scope it inside a named parent) are listed in UNNAMED; a new type must be
# placed in one of the two.
NAME_PROPERTIES: dict[str, tuple[str, ...]] = {
    "AWS::Backup::BackupPlan": ("BackupPlan.BackupPlanName",),
    "AWS::Backup::BackupSelection": ("BackupSelection.SelectionName",),
    "AWS::Backup::BackupVault": ("BackupVaultName",),
    "AWS::CloudTrail::Trail": ("TrailName",),
    "AWS::CloudWatch::Alarm": ("AlarmName",),
    "AWS::CloudWatch::Dashboard": ("DashboardName",),
    "AWS::CodeBuild::Project": ("Name",),
    "AWS::CodePipeline::Pipeline": ("Name",),
    "AWS::DynamoDB::Table": ("TableName",),
    "AWS::DynamoDB::GlobalTable": ("TableName",),
    "AWS::ECS::Cluster": ("ClusterName",),
    "AWS::ECS::Service": ("ServiceName",),
    "AWS::ECS::TaskDefinition": ("Family",),
    "AWS::Events::EventBus": ("Name",),
    "AWS::Events::Rule": ("Name",),
    "AWS::IAM::Role": ("RoleName",),
    "AWS::KMS::Alias": ("AliasName",),
    "AWS::Kinesis::Stream": ("Name",),
    "AWS::KinesisFirehose::DeliveryStream": ("DeliveryStreamName",),
    "AWS::Lambda::LayerVersion": ("LayerName",),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::ApiGateway::RestApi": ("Name",),
    "AWS::SNS::Topic": ("TopicName",),
    "AWS::SQS::Queue": ("QueueName",),
    "AWS::SSM::Parameter": ("Name",),
    "AWS::ServiceDiscovery::PrivateDnsNamespace": ("Name",),
    "AWS::StepFunctions::StateMachine": ("StateMachineName",),
    "AWS::WAFv2::WebACL": ("Name",),
    "AWS::XRay::Group": ("GroupName",),
    "AWS::XRay::SamplingRule": ("SamplingRule.RuleName",),
    "AWS::ApplicationAutoScaling::ScalingPolicy": ("PolicyName",),
    "AWS::CodeCommit::Repository": ("RepositoryName",),
    "AWS::ECR::Repository": ("RepositoryName",),
}
UNNAMED = {
    "AWS::ApiGateway::Account",
    "AWS::ApiGateway::Deployment",
    "AWS::ApiGateway::Stage",
    "AWS::AutoScaling::AutoScalingGroup",
    "AWS::AutoScaling::ScalingPolicy",
    "AWS::CloudFormation::Stack",
    "AWS::CloudFormation::WaitConditionHandle",
    "AWS::DLM::LifecyclePolicy",
    "AWS::EC2::EIP",
    "AWS::EC2::FlowLog",
    "AWS::EC2::InternetGateway",
    "AWS::EC2::LaunchTemplate",
    "AWS::EC2::NatGateway",
    "AWS::EC2::NetworkAcl",
    "AWS::EC2::NetworkAclEntry",
    "AWS::EC2::PlacementGroup",
    "AWS::EC2::Route",
    "AWS::EC2::RouteTable",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::SecurityGroupEgress",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::Subnet",
    "AWS::EC2::SubnetNetworkAclAssociation",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::TransitGateway",
    "AWS::EC2::TransitGatewayAttachment",
    "AWS::EC2::TransitGatewayPeeringAttachment",
    "AWS::EC2::TransitGatewayRoute",
    "AWS::EC2::TransitGatewayRouteTable",
    "AWS::EC2::TransitGatewayRouteTableAssociation",
    "AWS::EC2::TransitGatewayRouteTablePropagation",
    "AWS::EC2::VPC",
    "AWS::EC2::VPCEndpoint",
    "AWS::EC2::VPCEndpointService",
    "AWS::EC2::VPCEndpointServicePermissions",
    "AWS::EC2::VPCGatewayAttachment",
    "AWS::EC2::VPNGateway",
    "AWS::EC2::VPNGatewayRoutePropagation",
    "AWS::EC2::CustomerGateway",
    "AWS::EC2::VPNConnection",
    "AWS::DirectConnect::DirectConnectGatewayAssociation",
    "AWS::EFS::AccessPoint",
    "AWS::EFS::FileSystem",
    "AWS::EFS::MountTarget",
    "AWS::ElasticLoadBalancingV2::Listener",
    "AWS::ElasticLoadBalancingV2::ListenerRule",
    "AWS::ElasticLoadBalancingV2::LoadBalancer",
    "AWS::ElasticLoadBalancingV2::TargetGroup",
    "AWS::Events::Archive",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::Policy",
    "AWS::KMS::Key",
    "AWS::Lambda::Alias",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::Lambda::Version",
    "AWS::Logs::LogStream",
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBParameterGroup",
    "AWS::RDS::DBSubnetGroup",
    "AWS::Route53::HealthCheck",
    "AWS::Route53::RecordSet",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::SecretsManager::Secret",
    "AWS::ServiceDiscovery::Service",
    "AWS::WAFv2::LoggingConfiguration",
    "AWS::WAFv2::WebACLAssociation",
    "AWS::SNS::Subscription",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::Events::EventBusPolicy",
    "AWS::Logs::ResourcePolicy",
    "AWS::CodeStarNotifications::NotificationRule",
    "Custom::LedgerMigrations",
    "Custom::TransitGatewayAttachment",
}
SECTIONS = sorted(environments())


def _names(section: str) -> list[tuple[str, str, str, str]]:
    """(stack path, logical id, type, name) of every name property set, for one environment."""
    found = []
    for stack in environment_model(section).all_stacks():
        for lid, res in stack.resources.items():
            for path in NAME_PROPERTIES.get(res["Type"], ()):
                value: object = stack.properties(lid)
                for key in path.split("."):
                    value = value.get(key) if isinstance(value, dict) else None
                if value is not None:
                    found.append((stack.path, lid, res["Type"], str(value)))
    return found


def test_every_resource_type_is_classified() -> None:
    types = {
        res["Type"]
        for s in SECTIONS
        for st in environment_model(s).all_stacks()
        for res in st.resources.values()
    }
    unknown = types - set(NAME_PROPERTIES) - UNNAMED
    assert not unknown, (
        f"say where these types take a name (NAME_PROPERTIES) or that they take none: {unknown}"
    )


@pytest.mark.parametrize("section", SECTIONS)
def test_every_explicit_name_includes_the_environment(section: str) -> None:
    environment = environments()[section].name
    names = _names(section)
    assert len(names) > 60
    missing = [n for n in names if environment not in re.split(r"[^a-z0-9]+", n[3].lower())]
    assert not missing, f"names without the environment {environment!r}: {missing}"


def test_no_two_environments_share_a_name() -> None:
    owners: dict[tuple[str, str, str], str] = {}
    clashes = []
    for section in SECTIONS:
        region = environments()[section].region
        for _, lid, rtype, name in _names(section):
            scope = "global" if rtype in ("AWS::IAM::Role",) else region
            key = (rtype, scope, name)
            if key in owners and owners[key] != section:
                clashes.append((owners[key], section, lid, name))
            owners.setdefault(key, section)
    assert not clashes, clashes
