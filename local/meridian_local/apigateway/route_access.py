"""Per-route IAM authorization of the local API Gateway: what API Gateway asks IAM in AWS.

A SigV4-signed request is its caller's ``execute-api:Invoke`` on the method ARN
``arn:aws:execute-api:<region>:<account>:<api id>/<stage>/<METHOD>/<path>``, decided from the
identity policies of the caller's role (``meridian.iam.access``, shared with the streaming
gateway); a refusal is API Gateway's 403 ``ACCESS_DENIED`` and the function is not invoked.

The roles and their policies are the template's, read from the template model the local platform
provisions (``sam_template.load_transformed``, resolved by ``intrinsics.Resolver`` with the same
parameters), with the API's ``Ref`` standing for the local API id and the stage its ``Stage``
resource names. A caller is an assumed-role session ``arn:aws:sts::<account>:assumed-role/<role>/<s>``
of the API's account; any other caller, or a role the template does not declare, has no policies
here: implicit deny. A role's identity policies are its inline ``Policies`` and each
``AWS::IAM::Policy`` / ``AWS::IAM::ManagedPolicy`` naming it in ``Roles``; ``ManagedPolicyArns``
(documents outside the template) make its decisions unsupported rather than guessed.

Methods of the API's definition (the REST API's ``Body``) that are unauthenticated MOCK integrations
(``apigw_mock``) are answered by API Gateway itself: IAM is not asked and no function runs;
``gateway_answer`` gives their fixed response.

A session must also be one its role's trust policy would have let STS issue to the user it was
issued to (``meridian.iam.trust``): the template's roles bind the session name to the caller's verified
name, and ``check_session`` refuses a session that breaks that rule, as AWS never issues one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meridian.iam.access import (
    INVOKE,
    AccessDeniedError,
    ExecuteApi,
    RoleAccess,
    RolePolicies,
)
from meridian_local.apigateway.apigw_mock import MockResponse, mock_responses
from meridian_local.cloud.intrinsics import Resolver
from meridian_local.cloud.sam_template import load_transformed

__all__ = ["INVOKE", "AccessDeniedError", "ExecuteApi", "RolePolicies", "RouteAccess", "from_template"]

_POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")


class RouteAccess(RoleAccess):
    """The local API Gateway's decisions: IAM's per route, and its own answer to MOCK methods."""

    def __init__(
        self,
        api: ExecuteApi,
        roles: Mapping[str, RolePolicies],
        mocks: Mapping[tuple[str, str], MockResponse] | None = None,
    ) -> None:
        super().__init__(api, roles)
        self.mocks = dict(mocks or {})

    def gateway_answer(self, method: str, path: str) -> MockResponse | None:
        """API Gateway's own answer to an unauthenticated MOCK method; None when IAM decides the route."""
        return self.mocks.get((method.upper(), path))


def from_template(
    template: Mapping[str, Any],
    parameters: Mapping[str, str],
    api_logical_id: str,
    api_id: str,
    region: str,
    account: str,
    stack_name: str = "meridian-local",
) -> RouteAccess:
    """The route access a (SAM-transformed) template grants, with ``api_logical_id`` as ``api_id``."""
    params = {k: v.get("Default", "") for k, v in template.get("Parameters", {}).items()}
    params.update(parameters)
    refs: dict[str, Any] = {api_logical_id: api_id}
    resolver = Resolver(params, template.get("Conditions", {}), refs, {}, region, account, stack_name)
    resources = {
        lid: res
        for lid, res in template.get("Resources", {}).items()
        if "Condition" not in res or resolver.condition(res["Condition"])
    }
    api = ExecuteApi(region, account, api_id, _stage_of(resources, api_logical_id, resolver))
    documents: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    unsupported: dict[str, str] = {}
    trusts: dict[str, Mapping[str, Any]] = {}
    for lid, res in resources.items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        props = resolver.resolve(res.get("Properties", {}))
        name = str(props.get("RoleName") or f"{stack_name}-{lid}"[:64])
        refs[lid] = name
        documents[name] = [(p["PolicyName"], p["PolicyDocument"]) for p in props.get("Policies", [])]
        if props.get("AssumeRolePolicyDocument"):
            trusts[name] = props["AssumeRolePolicyDocument"]
        if props.get("ManagedPolicyArns"):
            unsupported[name] = f"managed policies are not read here: {props['ManagedPolicyArns']}"
    for lid, res in resources.items():
        if res["Type"] in _POLICY_TYPES:
            props = resolver.resolve(res.get("Properties", {}))
            for role in props.get("Roles", []):
                documents.setdefault(str(role), []).append((lid, props["PolicyDocument"]))
    roles = {
        name: RolePolicies(tuple(docs), unsupported.get(name, ""), trusts.get(name))
        for name, docs in documents.items()
    }
    return RouteAccess(api, roles, mock_responses(_definition_of(resources, api_logical_id)))


def from_template_file(
    path: Path,
    parameters: Mapping[str, str],
    api_logical_id: str,
    api_id: str,
    region: str,
    account: str,
) -> RouteAccess:
    """``from_template`` over the template at ``path``, transformed as the local platform does."""
    return from_template(
        load_transformed(path, dict(parameters)), parameters, api_logical_id, api_id, region, account
    )


def _stage_of(resources: Mapping[str, Any], api_logical_id: str, resolver: Resolver) -> str:
    stages = [
        str(resolver.resolve(res["Properties"]["StageName"]))
        for res in resources.values()
        if res["Type"] == "AWS::ApiGateway::Stage"
        and res.get("Properties", {}).get("RestApiId") == {"Ref": api_logical_id}
    ]
    if len(stages) != 1:
        raise LookupError(f"{api_logical_id} should have one stage in the template, has {stages}")
    return stages[0]


def _definition_of(resources: Mapping[str, Any], api_logical_id: str) -> Mapping[str, Any]:
    """The REST API's OpenAPI definition (its ``Body``), as the SAM transform left it."""
    body: Mapping[str, Any] = resources.get(api_logical_id, {}).get("Properties", {}).get("Body", {})
    return body
