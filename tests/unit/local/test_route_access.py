"""Route access from a template: roles and their policies resolved with the local API id and stage."""

from __future__ import annotations

from typing import Any

import pytest

from meridian.iam.policy import Decision, UnsupportedPolicyError
from meridian_local.apigateway.apigw import template_access
from meridian_local.apigateway.route_access import AccessDeniedError, ExecuteApi, from_template

ACCOUNT = "123456789012"
ROUTE = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/live/"


def session(role: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:sts::{account}:assumed-role/{role}/someone"


def invoke(*routes: str, effect: str = "Allow", **extra: Any) -> dict[str, Any]:
    statement = {
        "Effect": effect,
        "Action": "execute-api:Invoke",
        "Resource": [{"Fn::Sub": ROUTE + r} for r in routes],
    }
    return {"Version": "2012-10-17", "Statement": [{**statement, **extra}]}


def template(**resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "Parameters": {"Environment": {"Type": "String", "Default": "dev"}},
        "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Environment"}, "prod"]}},
        "Resources": {
            "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "orders"}},
            "ApiliveStage": {
                "Type": "AWS::ApiGateway::Stage",
                "Properties": {"RestApiId": {"Ref": "Api"}, "StageName": "live"},
            },
            **resources,
        },
    }


def role(name: str, *documents: dict[str, Any], **extra: Any) -> dict[str, Any]:
    policies = [{"PolicyName": f"p{i}", "PolicyDocument": d} for i, d in enumerate(documents)]
    properties = {"RoleName": {"Fn::Sub": f"{name}-${{Environment}}"}, "Policies": policies}
    return {"Type": "AWS::IAM::Role", "Properties": {**properties, **extra}}


def access_for(tpl: dict[str, Any], environment: str = "dev") -> Any:
    return from_template(tpl, {"Environment": environment}, "Api", "localapi", "eu-west-1", ACCOUNT)


def test_method_arn_of_a_request() -> None:
    api = ExecuteApi("eu-west-1", ACCOUNT, "localapi", "live")
    assert (
        api.method_arn("post", "/orders")
        == f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:localapi/live/POST/orders"
    )
    assert api.method_arn("GET", "/") == f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:localapi/live/GET/"


def test_policies_resolve_with_the_local_api_id_stage_region_and_account() -> None:
    access = access_for(template(Trader=role("trader", invoke("POST/orders", "GET/orders/*"))))
    assert access.api == ExecuteApi("eu-west-1", ACCOUNT, "localapi", "live")
    [statement] = access.statements("trader-dev")
    assert statement.resources[0] == f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:localapi/live/POST/orders"
    assert access.decide(session("trader-dev"), "POST", "/orders") is Decision.ALLOW
    assert access.decide(session("trader-dev"), "GET", "/orders/ord_1") is Decision.ALLOW
    assert access.decide(session("trader-dev"), "DELETE", "/orders/ord_1") is Decision.IMPLICIT_DENY


def test_callers_without_a_role_of_the_template_have_no_permissions() -> None:
    access = access_for(template(Trader=role("trader", invoke("*"))))
    assert access.decide(session("trader-dev"), "GET", "/orders") is Decision.ALLOW
    for stranger in (
        session("trader-dev", account="210987654321"),  # the same role name in another account
        session("trader-prod"),
        f"arn:aws:iam::{ACCOUNT}:user/trader-dev",
        "anonymous",
    ):
        assert access.decide(stranger, "GET", "/orders") is Decision.IMPLICIT_DENY, stranger


def test_environment_and_conditions_decide_which_roles_exist() -> None:
    tpl = template(
        Trader=role("trader", invoke("GET/orders")),
        Auditor={**role("auditor", invoke("GET/orders")), "Condition": "IsProd"},
    )
    assert set(access_for(tpl).roles) == {"trader-dev"}
    assert set(access_for(tpl, "prod").roles) == {"trader-prod", "auditor-prod"}


def test_attached_policies_count_and_an_explicit_deny_wins() -> None:
    tpl = template(
        Ops=role("ops", invoke("*")),
        NoAdmin={
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": "no-admin",
                "Roles": [{"Ref": "Ops"}],
                "PolicyDocument": invoke("POST/admin/*", effect="Deny"),
            },
        },
    )
    access = access_for(tpl)
    assert access.decide(session("ops-dev"), "GET", "/health") is Decision.ALLOW
    assert access.decide(session("ops-dev"), "POST", "/admin/halt") is Decision.EXPLICIT_DENY
    with pytest.raises(AccessDeniedError) as refused:
        access.authorize(session("ops-dev"), "POST", "/admin/halt")
    assert refused.value.code == "ACCESS_DENIED"
    assert refused.value.message == (
        f"User: {session('ops-dev')} is not authorized to perform: execute-api:Invoke on resource: "
        f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:localapi/live/POST/admin/halt with an explicit deny"
    )
    access.authorize(session("ops-dev"), "GET", "/health")  # allowed: no exception


def test_implicit_deny_message_is_api_gateways() -> None:
    access = access_for(template(Trader=role("trader", invoke("GET/orders"))))
    with pytest.raises(AccessDeniedError) as refused:
        access.authorize(session("trader-dev"), "POST", "/orders")
    assert refused.value.message == (
        f"User: {session('trader-dev')} is not authorized to perform: execute-api:Invoke on resource: "
        f"arn:aws:execute-api:eu-west-1:{ACCOUNT}:localapi/live/POST/orders"
    )


def test_what_cannot_be_decided_here_fails_at_start() -> None:
    mfa = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    tpl = template(
        Trader=role("trader", invoke("GET/orders")),
        Risk=role("risk", invoke("GET/orders", Condition=mfa)),
        Ops=role(
            "ops", invoke("GET/health"), ManagedPolicyArns=["arn:aws:iam::aws:policy/AdministratorAccess"]
        ),
    )
    access = access_for(tpl)
    access.require_roles(["trader-dev"])
    with pytest.raises(UnsupportedPolicyError, match="Condition"):
        access.require_roles(["trader-dev", "risk-dev"])
    with pytest.raises(UnsupportedPolicyError, match="managed policies"):
        access.require_roles(["ops-dev"])
    with pytest.raises(LookupError, match="no role named nobody-dev"):
        access.require_roles(["nobody-dev"])


def test_the_api_needs_exactly_one_stage() -> None:
    tpl = template()
    del tpl["Resources"]["ApiliveStage"]
    with pytest.raises(LookupError, match="one stage"):
        access_for(tpl)


def test_the_order_apis_callers_in_template_yaml() -> None:
    access = template_access()
    assert access.api == ExecuteApi("us-east-1", ACCOUNT, "meridianapi", "v1")
    # No condition, no managed policy: every caller role's decisions can be made here.
    access.require_roles(
        [
            "meridian-trader-dev",
            "meridian-risk-officer-dev",
            "meridian-compliance-officer-dev",
            "meridian-operator-dev",
        ]
    )
