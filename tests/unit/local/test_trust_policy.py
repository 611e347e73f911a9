"""The roles' trust policies, as the local gateway evaluates them: a session's name is its caller's
verified name (an IAM user's own name, or a federated person's source identity), never a choice."""

from __future__ import annotations

from typing import Any

import pytest

from meridian.iam.policy import UnsupportedPolicyError
from meridian.iam.trust import SessionRequest, allows
from meridian_local.apigateway.apigw import template_access

ROLES = (
    "meridian-trader-dev",
    "meridian-risk-officer-dev",
    "meridian-compliance-officer-dev",
    "meridian-operator-dev",
)


@pytest.fixture(scope="module")
def trust() -> dict[str, Any]:
    access = template_access()
    return {role: access.roles[role].trust for role in ROLES}


@pytest.mark.parametrize("role", ROLES)
def test_an_iam_user_gets_a_session_under_their_own_name_only(trust: dict[str, Any], role: str) -> None:
    assert allows(trust[role], SessionRequest("alice", user="alice"))
    assert not allows(
        trust[role], SessionRequest("alice", user="mallory")
    )  # AssumeRole --role-session-name alice
    assert not allows(trust[role], SessionRequest("alice"))  # a role session without a source identity


@pytest.mark.parametrize("role", ROLES)
def test_a_federated_person_gets_a_session_under_their_source_identity_only(
    trust: dict[str, Any], role: str
) -> None:
    assert allows(trust[role], SessionRequest("dora@example.com", source_identity="dora@example.com"))
    assert not allows(trust[role], SessionRequest("alice", source_identity="dora@example.com"))


@pytest.mark.parametrize("role", ROLES[1:])
def test_officers_and_operators_sign_in_with_mfa(trust: dict[str, Any], role: str) -> None:
    assert not allows(trust[role], SessionRequest("rita", user="rita", mfa=False))


def test_what_is_not_evaluated_is_refused_not_guessed() -> None:
    statement = {
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
    }
    with pytest.raises(UnsupportedPolicyError):
        allows({"Statement": [statement]}, SessionRequest("alice", user="alice"))
