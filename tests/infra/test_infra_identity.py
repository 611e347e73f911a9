"""template.yaml: who may be whom. The order API maps an assumed-role session to a person by its
session name, so every role that may invoke the API lets a caller assume it only under the caller's
verified name (security review, issue 14 item 1)."""

from __future__ import annotations

from typing import Any

from tests.infra.templates import ROOT_TEMPLATE, as_list, resources, transformed

TEMPLATE = transformed(ROOT_TEMPLATE)


def _api_roles() -> dict[str, dict[str, Any]]:
    """The roles with an identity policy allowing execute-api:Invoke (the user types' roles)."""
    found = {}
    for logical_id, role in resources(TEMPLATE, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            statements = as_list(policy.get("PolicyDocument", {}).get("Statement", []))
            if "execute-api:Invoke" in [a for s in statements for a in as_list(s.get("Action"))]:
                found[logical_id] = role
    return found


def test_the_user_types_are_the_roles_that_invoke_the_api() -> None:
    assert set(_api_roles()) == {"TraderRole", "RiskOfficerRole", "ComplianceOfficerRole", "OperatorRole"}


def test_a_role_session_of_the_api_is_named_for_its_callers_verified_identity() -> None:
    for logical_id, role in _api_roles().items():
        statements = as_list(role["Properties"]["AssumeRolePolicyDocument"]["Statement"])
        names = set()
        for statement in statements:
            assert statement["Effect"] == "Allow"
            session = statement["Condition"]["StringEquals"]["sts:RoleSessionName"]  # none without one
            names.add(session)
            if session == "${aws:SourceIdentity}":  # the identity provider's, carried through chaining
                assert "sts:SetSourceIdentity" in as_list(statement["Action"])
                assert statement["Condition"]["StringEquals"]["sts:SourceIdentity"] == "${aws:SourceIdentity}"
        assert names == {"${aws:username}", "${aws:SourceIdentity}"}, logical_id


def test_officers_and_operators_still_need_mfa_as_iam_users() -> None:
    for logical_id in ("RiskOfficerRole", "ComplianceOfficerRole", "OperatorRole"):
        statements = as_list(_api_roles()[logical_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"])
        iam_users = [
            s
            for s in statements
            if s["Condition"]["StringEquals"]["sts:RoleSessionName"] == "${aws:username}"
        ]
        assert iam_users[0]["Condition"]["Bool"] == {"aws:MultiFactorAuthPresent": "true"}
