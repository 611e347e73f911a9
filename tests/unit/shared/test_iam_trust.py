"""Trust-policy decisions (``meridian.iam.trust``) beyond the template's own: wildcards, Bool, a
missing variable, and what is refused rather than guessed."""

from __future__ import annotations

from typing import Any

import pytest

from meridian.iam.policy import UnsupportedPolicyError
from meridian.iam.trust import SessionRequest, allows


def policy(
    condition: dict[str, Any], action: Any = "sts:AssumeRole", effect: str = "Allow"
) -> dict[str, Any]:
    return {"Statement": [{"Effect": effect, "Action": action, "Condition": condition}]}


def test_string_like_bool_and_unset_variables() -> None:
    like = policy({"StringLike": {"sts:RoleSessionName": "desk-?-*"}})
    assert allows(like, SessionRequest("desk-a-alice"))
    assert not allows(like, SessionRequest("alice"))
    mfa = policy({"Bool": {"aws:MultiFactorAuthPresent": "TRUE"}})
    assert allows(mfa, SessionRequest("alice"))
    assert not allows(mfa, SessionRequest("alice", mfa=False))
    federated = policy({"StringEquals": {"sts:RoleSessionName": "${aws:SourceIdentity}"}})
    assert not allows(federated, SessionRequest("alice", user="alice"))  # no source identity: no match
    assert allows(federated, SessionRequest("alice", source_identity="alice"))
    unset = policy({"StringEquals": {"sts:SourceIdentity": "alice"}})
    assert not allows(unset, SessionRequest("alice", user="alice"))
    assert not allows(policy({}, action="sts:TagSession"), SessionRequest("alice"))


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (policy({"NumericEquals": {"aws:username": "1"}}), "operator NumericEquals"),
        (policy({"StringEquals": {"aws:PrincipalTag/desk": "a"}}), "condition key"),
        (policy({"StringEquals": {"sts:RoleSessionName": "${aws:PrincipalTag/x}"}}), "policy variable"),
        (policy({}, effect="Deny"), "Deny statements"),
    ],
)
def test_what_is_not_evaluated_is_refused(document: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnsupportedPolicyError, match=reason):
        allows(document, SessionRequest("alice", user="alice"))
