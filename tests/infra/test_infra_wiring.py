"""template.yaml: the application sections (order API, runbooks, post-trade) use what the nested
stacks provide (network, security group, keys, buckets, database, routing table) instead of
parameters or stand-ins of their own."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Mapping
from typing import Any

from meridian_local.cloud.sam_env import DECLARED_FOR_LOCAL
from tests.infra.templates import (
    HOTPATH_TEMPLATE,
    ROOT,
    ROOT_TEMPLATE,
    STREAM_NAMES,
    STREAMING_TEMPLATE,
    Template,
    as_list,
    exemptions,
    load,
    policy_documents,
    properties,
    references,
    resources,
    transformed,
)
from tools.cfn_model import environment_model

TEMPLATE = load(ROOT_TEMPLATE)
STREAMING = load(STREAMING_TEMPLATE)
STREAMING_PARAMETERS = TEMPLATE["Resources"]["StreamingStack"]["Properties"]["Parameters"]

PRIVATE_SUBNETS = {"Fn::Split": [",", {"Fn::GetAtt": ["NetworkStack", "Outputs.PrivateSubnetIds"]}]}
LAMBDA_SECURITY_GROUP = {"Fn::GetAtt": ["SecurityStack", "Outputs.LambdaSecurityGroupId"]}
MATCHING_CLIENT_SECURITY_GROUP = {"Fn::GetAtt": ["SecurityStack", "Outputs.MatchingClientSecurityGroupId"]}
# The functions that talk to the matching port, each with its session key's secret (by role).
MATCHING_CLIENTS = {
    "OrdersApiFunction": "MatchingOrdersKeySecret",
    "RouteApprovedOrderFunction": "MatchingOrdersKeySecret",
    "ValidateIntegrityFunction": "MatchingAdminKeySecret",
    "SymbolMoveFunction": "MatchingAdminKeySecret",
}
# A matching client that also reads a second key: the symbol move halts and exports with the admin
# key and places the copies and cancels with the orders key (MERIDIAN_HOTPATH_ORDERS_KEY_SECRET_ARN).
SECOND_SESSION_KEYS = {"SymbolMoveFunction": "MatchingOrdersKeySecret"}
# Functions that write the routing table (the symbol move switches a symbol's route).
ROUTE_WRITERS = {"SymbolMoveFunction"}
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())


def _overrides(environment: str) -> dict[str, str]:
    text = SAMCONFIG[environment]["deploy"]["parameters"]["parameter_overrides"]
    return dict(item.split("=", 1) for item in shlex.split(text))


def _functions() -> dict[str, dict[str, Any]]:
    return resources(transformed(ROOT_TEMPLATE), "AWS::Lambda::Function")


def test_every_function_runs_in_the_private_subnets_with_the_lambda_security_group() -> None:
    """Unconditionally: a function may leave the VPC only with a written OutsideVpc exemption."""
    functions = _functions()
    posting = {"LedgerFunction", "SurveillanceFunction", "MarketDataFunction", "ExecutionsFunction"}
    assert {*posting, "MigrationsFunction"} <= set(functions)
    wrong = {}
    for name, function in functions.items():
        if exemptions(function.get("Metadata", {})).get("OutsideVpc"):
            continue
        vpc = function["Properties"].get("VpcConfig")
        groups = [LAMBDA_SECURITY_GROUP]
        if name in MATCHING_CLIENTS:
            groups.append(MATCHING_CLIENT_SECURITY_GROUP)  # the only ones that reach 9001
        if vpc != {"SubnetIds": PRIVATE_SUBNETS, "SecurityGroupIds": groups}:
            wrong[name] = vpc
    assert not wrong, f"functions outside the Globals VpcConfig: {wrong}"


# ---- the routing table -------------------------------------------------------------------------

PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
}
ROUTES_ENV = "MERIDIAN_ROUTES_PARAMETER"


def _render(value: Any, names: Mapping[str, Any]) -> Any:
    """``value`` with its intrinsics evaluated; ``names`` gives Ref targets and GetAtt ``Res.Attr``."""
    if isinstance(value, list):
        return [_render(item, names) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or not next(iter(value)).startswith(("Ref", "Fn::")):
        return {key: _render(inner, names) for key, inner in value.items()}
    ((function, argument),) = value.items()
    if function == "Ref":
        return names[argument]
    if function == "Fn::GetAtt":
        return names[argument if isinstance(argument, str) else ".".join(argument)]
    if function == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        scope = {**names, **{key: _render(inner, names) for key, inner in variables.items()}}
        return re.sub(r"\$\{([^}!][^}]*)\}", lambda match: str(scope[match.group(1)]), text)
    if function == "Fn::Join":
        separator, items = argument
        return separator.join(str(item) for item in _render(items, names))
    if function == "Fn::Split":
        separator, text = argument
        return str(_render(text, names)).split(separator)
    if function == "Fn::Select":
        index, items = argument
        return _render(items, names)[int(_render(index, names))]
    if function == "Fn::If":  # as the dev environment decides it
        condition, when_true, when_false = argument
        chosen = when_true if environment_model("default").condition(condition) else when_false
        return _render(chosen, names)
    raise AssertionError(f"cannot evaluate {function}")


def _root_names() -> dict[str, Any]:
    """Pseudo parameters and the root's parameters (defaults, then the dev environment's overrides)."""
    names: dict[str, Any] = dict(PSEUDO_PARAMETERS)
    names.update({name: spec.get("Default", "") for name, spec in TEMPLATE["Parameters"].items()})
    names.update(_overrides("default"))
    return names


def _routes_parameter_name() -> str:
    """The SSM parameter the hot-path stack creates: its RoutesParameterName output, followed home."""
    hotpath = load(HOTPATH_TEMPLATE)
    assert hotpath["Outputs"]["RoutesParameterName"]["Value"] == {"Ref": "RoutesParameter"}
    assert properties(hotpath, "RoutesParameter")["Name"] == {"Ref": "RoutesParameterName"}
    name = str(environment_model("default").nested("HotpathStack").properties("RoutesParameter")["Name"])
    assert name == "/meridian/dev/matching/routes", name  # every environment its own parameter
    return name


def _role_statements(template: Template, owner: str, key: str = "Role") -> list[dict[str, Any]]:
    """Every statement (both sides of an Fn::If) of the inline policies of ``owner``'s role."""
    role = properties(template, owner)[key]["Fn::GetAtt"][0]
    return [
        statement
        for document in policy_documents(template)
        if document.logical_id == role
        for statement in document.statements()
    ]


def test_functions_that_route_orders_read_exactly_the_routing_parameter() -> None:
    template = transformed(ROOT_TEMPLATE)
    routes = _routes_parameter_name()
    names = {**_root_names(), "HotpathStack.Outputs.RoutesParameterName": routes}
    expected_arn = f"arn:aws:ssm:us-east-1:123456789012:parameter{routes}"
    routing = {
        name
        for name, function in _functions().items()
        if ROUTES_ENV in function["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert {"OrdersApiFunction", "RouteApprovedOrderFunction"} <= routing
    for name in sorted(routing):
        ssm = [
            statement
            for statement in _role_statements(template, name)
            if statement.get("Effect") == "Allow"
            and any(str(action).startswith("ssm:") for action in as_list(statement.get("Action")))
        ]
        granted = {
            (str(action), str(arn))
            for statement in ssm
            for action in as_list(statement["Action"])
            for arn in as_list(_render(statement.get("Resource"), names))
        }
        expected = {("ssm:GetParameter", expected_arn)}
        if name in ROUTE_WRITERS:
            expected.add(("ssm:PutParameter", expected_arn))
        assert granted == expected, f"{name}: {sorted(granted)}"
        variables = properties(template, name)["Environment"]["Variables"]
        assert _render(variables[ROUTES_ENV], names) == routes, name


class _Named(dict[str, Any]):
    """Names for ``_render`` where any other resource renders as its own logical id."""

    def __missing__(self, key: str) -> str:
        return key


def test_the_order_api_answers_the_order_flows_approval_step() -> None:
    """The approval route reads/decides OrderApprovals items and answers the waiting task."""
    template = transformed(ROOT_TEMPLATE)
    variables = properties(template, "OrdersApiFunction")["Environment"]["Variables"]
    assert variables["ORDER_APPROVALS_TABLE"] == {"Ref": "OrderApprovalsTable"}
    names = _Named({**_root_names(), "OrderApprovalsTable.Arn": "approvals-table-arn"})
    granted = {
        (str(action), str(arn))
        for statement in _role_statements(template, "OrdersApiFunction")
        if statement.get("Effect") == "Allow"
        for action in as_list(statement.get("Action"))
        if str(action).startswith(("states:", "dynamodb:GetItem", "dynamodb:UpdateItem"))
        for arn in as_list(_render(statement.get("Resource"), names))
        if "approvals" in str(arn) or str(action).startswith("states:")
    }
    # Step Functions authorizes SendTask* on "*" only: a scoped ARN would be AccessDenied.
    assert granted == {
        ("dynamodb:GetItem", "approvals-table-arn"),
        ("dynamodb:UpdateItem", "approvals-table-arn"),
        ("states:SendTaskSuccess", "*"),
        ("states:SendTaskFailure", "*"),
        ("states:SendTaskHeartbeat", "*"),
    }


# ---- keys and the market-data archive ----------------------------------------------------------


def _output(stack: str, name: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [stack, f"Outputs.{name}"]}


def test_market_data_stream_uses_the_key_the_matching_nodes_are_granted() -> None:
    encryption = properties(STREAMING, "MarketDataStream")["StreamEncryption"]
    assert encryption == {"EncryptionType": "KMS", "KeyId": {"Ref": "MarketDataKeyArn"}}
    assert STREAMING_PARAMETERS["MarketDataKeyArn"] == _output("SecurityStack", "MarketDataKeyArn")
    hotpath = TEMPLATE["Resources"]["HotpathStack"]["Properties"]["Parameters"]
    assert hotpath["MarketDataStreamName"] == STREAM_NAMES["MarketDataStream"]
    assert hotpath["MarketDataKeyArn"] == STREAMING_PARAMETERS["MarketDataKeyArn"]


def test_market_data_archive_is_the_data_stacks_bucket() -> None:
    destination = properties(STREAMING, "MarketDataFirehose")["ExtendedS3DestinationConfiguration"]
    archive = _output("DataStack", "MarketDataArchiveBucketArn")
    assert STREAMING_PARAMETERS["MarketDataArchiveBucketArn"] == archive
    assert destination["BucketARN"] == {"Ref": "MarketDataArchiveBucketArn"}
    assert destination["EncryptionConfiguration"]["KMSEncryptionConfig"]["AWSKMSKeyARN"] == {
        "Ref": "MarketDataKeyArn"
    }
    assert STREAMING_PARAMETERS["MarketDataKeyArn"] == _output("SecurityStack", "MarketDataKeyArn")
    role = properties(STREAMING, "MarketDataFirehoseRole")["Policies"][0]["PolicyDocument"]["Statement"]
    write = next(statement for statement in role if statement.get("Sid") == "WriteTheArchive")
    targets = {target for value in write["Resource"] for target in references(value)}
    assert targets == {("Ref", "MarketDataArchiveBucketArn")}, targets
    assert not resources(TEMPLATE, "AWS::S3::Bucket"), "the root keeps no stand-in bucket"
    assert not resources(STREAMING, "AWS::S3::Bucket"), "nor does the streaming stack"


# Where each resource type of the root names its encryption key.
_KEY_PROPERTIES = {
    "AWS::SQS::Queue": ("KmsMasterKeyId",),
    "AWS::SNS::Topic": ("KmsMasterKeyId",),
    "AWS::Kinesis::Stream": ("StreamEncryption", "KeyId"),
    "AWS::DynamoDB::Table": ("SSESpecification", "KMSMasterKeyId"),
    "AWS::Logs::LogGroup": ("KmsKeyId",),
}
SECURITY_KEYS = {"TradingDataKeyArn", "MarketDataKeyArn", "ComplianceKeyArn", "LogsKeyArn"}


def test_every_encrypted_resource_uses_a_security_stack_key() -> None:
    assert not resources(TEMPLATE, "AWS::KMS::Key"), "the security stack owns the keys"
    checked, wrong = [], {}
    # A global table: this region's replica with this region's key, the other region's with that
    # region's key of the same kind (the other stack's output, given as a parameter).
    peer_keys = {
        "TradingDataKeyArn": "TablesReplicaTradingDataKeyArn",
        "MarketDataKeyArn": "TablesReplicaMarketDataKeyArn",
    }
    for name, table in resources(TEMPLATE, "AWS::DynamoDB::GlobalTable").items():
        checked.append(name)
        here, peer = table["Properties"]["Replicas"]
        key = here["SSESpecification"]["KMSMasterKeyId"]
        kind = key["Fn::GetAtt"][1].removeprefix("Outputs.")
        if here["Region"] != {"Ref": "AWS::Region"} or key != _output("SecurityStack", kind):
            wrong[name] = here
        peer_replica = peer["Fn::If"][1]
        if peer_replica["SSESpecification"]["KMSMasterKeyId"] != {"Ref": peer_keys.get(kind, "?")}:
            wrong[name] = peer_replica
    for resource_type, path in _KEY_PROPERTIES.items():
        for name, resource in resources(TEMPLATE, resource_type).items():
            value: Any = resource.get("Properties", {})
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if value is None:
                continue  # unencrypted log groups carry their own checkov reason
            checked.append(name)
            if value not in [_output("SecurityStack", key) for key in SECURITY_KEYS]:
                wrong[name] = value
    # The streams: a key parameter of the streaming stack, which the root fills from the security stack.
    for name, stream in resources(STREAMING, "AWS::Kinesis::Stream").items():
        checked.append(name)
        key = stream["Properties"]["StreamEncryption"]["KeyId"]
        parameter = key.get("Ref") if isinstance(key, dict) else None
        if parameter not in SECURITY_KEYS or STREAMING_PARAMETERS[parameter] != _output(
            "SecurityStack", parameter
        ):
            wrong[name] = key
    assert {"LedgerQueue", "TradingAlertsTopic", "ComplianceAlertsTopic", "MarketDataTable"} <= set(checked)
    assert {"MarketDataStream", "ExecutionsStream"} <= set(checked)
    assert not wrong, wrong
    compliance_topic = properties(TEMPLATE, "ComplianceAlertsTopic")["KmsMasterKeyId"]
    assert compliance_topic == _output("SecurityStack", "ComplianceKeyArn")


def test_compliance_report_runbook_uses_only_its_alert_topics_key() -> None:
    """It publishes to ComplianceAlerts (SNS encrypts with that topic's key) and touches no other key."""
    template = transformed(ROOT_TEMPLATE)
    kms = [
        statement
        for statement in _role_statements(template, "ComplianceReportStateMachine", "RoleArn")
        if statement.get("Effect") == "Allow"
        and any(str(action).startswith("kms:") for action in as_list(statement.get("Action")))
    ]
    topic_key = properties(template, "ComplianceAlertsTopic")["KmsMasterKeyId"]
    assert kms
    for statement in kms:
        assert as_list(statement["Resource"]) == [topic_key], statement


# ---- parameters and what the functions' environments name ----------------------------------------

OPERATOR_CHOICES_HEADING = "#### Resources named by the operator"
# Variables whose value names a resource (a table, a bucket, a host, an ARN ...); Powertools' are labels.
RESOURCE_VARIABLE = re.compile(r"_(TABLE|BUCKET|HOST|ARN|URL|PARAMETER|NAME|QUEUE|TOPIC|STREAM)$")


def _operator_choices() -> set[str]:
    """Parameters docs/deploy.md lists as naming a resource on purpose (an operator choice)."""
    guide = (ROOT / "docs" / "deploy.md").read_text()
    assert OPERATOR_CHOICES_HEADING in guide
    section = guide.split(OPERATOR_CHOICES_HEADING, 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `([A-Za-z0-9]+)` \|", section, re.MULTILINE))


def test_the_variables_declared_for_sam_local_are_empty_in_aws() -> None:
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert {name: variables.get(name) for name in DECLARED_FOR_LOCAL} == dict.fromkeys(DECLARED_FOR_LOCAL, "")


def test_every_root_parameter_is_used() -> None:
    body = {key: value for key, value in TEMPLATE.items() if key != "Parameters"}
    used = {target for kind, target in references(body) if kind == "Ref"}
    assert not set(TEMPLATE["Parameters"]) - used, sorted(set(TEMPLATE["Parameters"]) - used)


def test_function_environments_name_resources_of_the_template_or_its_nested_stacks() -> None:
    """Not a free parameter that duplicates what a resource or a nested stack's output already is."""
    template = transformed(ROOT_TEMPLATE)
    choices = _operator_choices()
    assert choices
    assert choices <= set(TEMPLATE["Parameters"]), choices - set(TEMPLATE["Parameters"])
    checked, free = 0, {}
    for name, function in _functions().items():
        for variable, value in function["Properties"].get("Environment", {}).get("Variables", {}).items():
            if variable.startswith("POWERTOOLS_") or not RESOURCE_VARIABLE.search(variable):
                continue
            if variable in DECLARED_FOR_LOCAL and value == "":  # sam local invoke's hook (sam_env)
                continue
            checked += 1
            targets = list(references(value))
            unresolved = [
                target
                for kind, target in targets
                if not (kind == "Ref" and (target.startswith("AWS::") or target in choices))
                and target.split(".")[0] not in template["Resources"]
            ]
            if unresolved or not targets:
                free[f"{name} {variable}"] = unresolved or value
    assert checked > 30
    assert not free, f"variables naming a parameter instead of a resource or stack output: {free}"


def _migration_roles() -> set[str]:
    """The database roles the ledger migrations create (one per function)."""
    sql = "".join(
        p.read_text() for p in sorted((ROOT / "layers/shared/meridian/ledger/migrations").glob("*.sql"))
    )
    return set(re.findall(r"'(meridian_[a-z_]+)'", sql))


def test_ledger_connections_come_from_the_data_stack_as_each_functions_own_role() -> None:
    """Each function connects as its own database role with IAM authentication (rds-db:connect on
    exactly that user of this region's instance); only the migrations read the master secret."""
    template = transformed(ROOT_TEMPLATE)
    secret = {
        "Fn::If": [
            "LedgerDbSecretGiven",
            {"Ref": "LedgerDbSecretArn"},
            _output("DataStack", "DbMasterSecretArn"),
        ]
    }
    connecting = {
        name: function["Properties"]["Environment"]["Variables"]
        for name, function in _functions().items()
        if "DB_HOST" in function["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert {
        "OrdersApiFunction",
        "LedgerFunction",
        "SurveillanceFunction",
        "MigrationsFunction",
        "ComplianceExportFunction",
        "ComplianceVerifyFunction",
        "ValidateIntegrityFunction",
    } == set(connecting)
    roles = _migration_roles()
    used: dict[str, set[str]] = {}
    for name, variables in connecting.items():
        assert variables["DB_HOST"] == _output("DataStack", "DbEndpointAddress"), name
        assert variables["DB_NAME"] == _output("DataStack", "DbName"), name
        user = variables["DB_USER"]
        assert user in roles, (name, user)
        used.setdefault(user, set()).add(name)
        statements = _role_statements(template, name)
        connects = [s for s in statements if "rds-db:connect" in as_list(s.get("Action"))]
        own = [s for s in connects if "DbResourceId" in json.dumps(s["Resource"])]
        assert len(own) == 1, name
        assert json.dumps(own[0]["Resource"]).count(f"/{user}") == 1, name
        readable = [
            s
            for s in statements
            if "secretsmanager:GetSecretValue" in as_list(s.get("Action"))
            and set(references(s.get("Resource"))) != {("Ref", MATCHING_CLIENTS.get(name))}  # its session key
        ]
        if name == "MigrationsFunction":
            assert variables["DB_SECRET_ARN"] == secret
            assert {t for s in readable for t in references(s.get("Resource"))} == set(references(secret))
        else:
            assert "DB_SECRET_ARN" not in variables, name
            assert not readable or name == "ValidateIntegrityFunction", name
    # One role per function (the two compliance steps are one function's code, one role).
    assert used.pop("meridian_compliance") == {"ComplianceExportFunction", "ComplianceVerifyFunction"}
    assert all(len(functions) == 1 for functions in used.values()), used
    assert set(used) | {"meridian_compliance"} == roles


def test_each_matching_client_reads_its_own_session_key_and_no_other_function_any() -> None:
    template = transformed(ROOT_TEMPLATE)
    for name, function in _functions().items():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        statements = _role_statements(template, name)
        keys = {
            target
            for s in statements
            if "secretsmanager:GetSecretValue" in as_list(s.get("Action"))
            for _, target in references(s.get("Resource"))
            if target.startswith("Matching")
        }
        secret = MATCHING_CLIENTS.get(name)
        second = SECOND_SESSION_KEYS.get(name)
        assert keys == {k for k in (secret, second) if k}, name
        assert variables.get("MERIDIAN_HOTPATH_KEY_SECRET_ARN") == ({"Ref": secret} if secret else None), name
        orders_key = variables.get("MERIDIAN_HOTPATH_ORDERS_KEY_SECRET_ARN")
        assert orders_key == ({"Ref": second} if second else None), name
