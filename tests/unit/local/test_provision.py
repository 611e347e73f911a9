"""Provisioning a SAM template into moto server: resources, wiring, nested stacks, placeholders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from meridian_local.cloud.intrinsics import Resolver, references
from meridian_local.cloud.provision import Provisioner

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Environment: {Type: String, Default: dev}
  WithArchive: {Type: String, Default: "false"}
Conditions:
  HasArchive: !Equals [!Ref WithArchive, "true"]
Resources:
  Net:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  Bus:
    Type: AWS::Events::EventBus
    Properties: {Name: !Sub "trading-${Environment}"}
  DeadLetters:
    Type: AWS::SQS::Queue
    Properties: {MessageRetentionPeriod: 1209600}
  Work:
    Type: AWS::SQS::Queue
    Properties:
      DelaySeconds: 0
      VisibilityTimeout: 60
      RedrivePolicy: {deadLetterTargetArn: !GetAtt DeadLetters.Arn, maxReceiveCount: 3}
  TradesRule:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: !Ref Bus
      EventPattern: {detail-type: [trade.executed.v1]}
      Targets: [{Id: work, Arn: !GetAtt Work.Arn}]
  Book:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      TimeToLiveSpecification: {AttributeName: expires_at, Enabled: true}
  Archive:
    Type: AWS::S3::Bucket
    Condition: HasArchive
  Data:
    Type: AWS::Serverless::Application
    Properties:
      Location: nested.yaml
      Parameters: {Prefix: !Ref Environment}
  Consumer:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.11
      CodeUri: functions/consumer/
      Handler: app.lambda_handler
      Environment:
        Variables:
          BOOK_TABLE: !Ref Book
          ARCHIVE: !GetAtt Data.Outputs.BucketName
          VPC: !Ref Net
      Events:
        FromWork:
          Type: SQS
          Properties:
            Queue: !GetAtt Work.Arn
            BatchSize: 5
            FunctionResponseTypes: [ReportBatchItemFailures]
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: flow.asl.json
      DefinitionSubstitutions: {TableName: !Ref Book}
      Policies: [{DynamoDBCrudPolicy: {TableName: !Ref Book}}]
Outputs:
  BusName: {Value: !Ref Bus}
"""

NESTED = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  Prefix: {Type: String}
Resources:
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Sub "${Prefix}-archive"
      VersioningConfiguration: {Status: Enabled}
Outputs:
  BucketName: {Value: !Ref Bucket}
"""

FLOW = {
    "StartAt": "Put",
    "States": {
        "Put": {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:putItem",
            "Parameters": {"TableName": "${TableName}", "Item": {"pk": {"S": "x"}}},
            "End": True,
        }
    },
}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def template(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (tmp_path / "nested.yaml").write_text(NESTED)
    (tmp_path / "flow.asl.json").write_text(json.dumps(FLOW))
    return tmp_path / "template.yaml"


def client(service: str, endpoint: str) -> Any:
    make: Any = boto3.client
    return make(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="k",
        aws_secret_access_key="s",
    )


def test_template_resources_exist_and_are_wired(
    endpoint: str, template: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("meridian_local.cloud.provision.REPO_ROOT", template.parent)
    stack = Provisioner(endpoint, stack_name="t1").provision(template, {"Environment": "qa"})

    assert stack.outputs == {"BusName": "trading-qa"}
    assert stack.skipped["Net"] == "AWS::EC2::VPC"
    assert "Archive" not in stack.created  # condition false

    sqs = client("sqs", endpoint)
    attrs = sqs.get_queue_attributes(QueueUrl=stack.refs["Work"], AttributeNames=["All"])["Attributes"]
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": stack.attributes[("DeadLetters", "Arn")],
        "maxReceiveCount": 3,
    }
    assert attrs["VisibilityTimeout"] == "60"

    # the rule really routes: an event on the bus arrives in the queue
    client("events", endpoint).put_events(
        Entries=[
            {"Source": "s", "DetailType": "trade.executed.v1", "Detail": "{}", "EventBusName": "trading-qa"}
        ]
    )
    messages = sqs.receive_message(QueueUrl=stack.refs["Work"], WaitTimeSeconds=1)["Messages"]
    assert json.loads(messages[0]["Body"])["detail-type"] == "trade.executed.v1"

    function = stack.functions[stack.refs["Consumer"]]
    assert function.handler == "app.lambda_handler"
    assert function.code_dir == template.parent / "functions/consumer"
    assert function.environment["BOOK_TABLE"] == stack.refs["Book"]
    assert function.environment["ARCHIVE"] == "qa-archive"
    assert function.environment["VPC"] == "local-unprovisioned-Net"
    [mapping] = stack.mappings
    assert (mapping.function, mapping.batch_size, mapping.report_batch_item_failures) == (
        function.name,
        5,
        True,
    )
    assert mapping.source_arn == stack.attributes[("Work", "Arn")]

    versioning = client("s3", endpoint).get_bucket_versioning(Bucket="qa-archive")
    assert versioning["Status"] == "Enabled"
    definition = client("stepfunctions", endpoint).describe_state_machine(stateMachineArn=stack.refs["Flow"])[
        "definition"
    ]
    assert json.loads(definition)["States"]["Put"]["Parameters"]["TableName"] == stack.refs["Book"]


def test_resolver_evaluates_intrinsics() -> None:
    resolver = Resolver(
        {"Env": "prod", "Subnets": ["a", "b"]},
        {"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}},
        {"Queue": "https://q"},
        {("Queue", "Arn"): "arn:q"},
    )
    assert resolver.resolve({"Fn::Sub": "${Env}-${Queue.Arn}-${AWS::Region}-${!Literal}"}) == (
        "prod-arn:q-us-east-1-${Literal}"
    )
    assert resolver.resolve({"Fn::If": ["IsProd", 1, 2]}) == 1
    assert resolver.resolve({"Fn::Join": [",", {"Ref": "Subnets"}]}) == "a,b"
    assert resolver.resolve({"A": {"Ref": "AWS::NoValue"}, "B": [{"Ref": "AWS::NoValue"}, 3]}) == {"B": [3]}
    assert resolver.resolve({"Fn::Select": [1, {"Fn::Split": ["/", "x/y/z"]}]}) == "y"
    assert references({"Fn::Sub": ["${A.Arn}-${B}", {"C": {"Ref": "D"}}]}) == {"A", "B", "D"}


def test_a_secret_is_generated_as_generate_secret_string_says(endpoint: str, tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text(
        """
AWSTemplateFormatVersion: "2010-09-09"
Resources:
  Key:
    Type: AWS::SecretsManager::Secret
    Properties:
      Name: meridian/qa/matching/orders-key
      GenerateSecretString:
        SecretStringTemplate: '{"key_id": "orders", "role": "orders", "account": ""}'
        GenerateStringKey: secret
        PasswordLength: 64
        ExcludePunctuation: true
"""
    )
    stack = Provisioner(endpoint, stack_name="t2").provision(tmp_path / "secrets.yaml")
    value = client("secretsmanager", endpoint).get_secret_value(SecretId=stack.refs["Key"])["SecretString"]
    document = json.loads(value)
    assert (document["key_id"], document["role"], document["account"]) == ("orders", "orders", "")
    assert len(document["secret"]) == 64
    assert document["secret"].isalnum()
