"""Would STS have issued this session? A role's trust policy, checked for a local session.

In AWS a role session exists only if its trust policy allowed the ``sts:AssumeRole`` that made
it; the order API then takes the session name for the person. The roles of template.yaml allow it
only when the session name is the caller's verified name (``sts:RoleSessionName`` equal to
``${aws:username}``, or to the federated person's ``${aws:SourceIdentity}``). Local credentials
say which user each session was issued to, and the local gateway refuses a session its role's
trust policy would not have allowed, so the local platform keeps the same rule.

Evaluated: ``Allow`` statements for ``sts:AssumeRole`` and their ``StringEquals``, ``StringLike``
and ``Bool`` conditions over ``sts:RoleSessionName``, ``sts:SourceIdentity``, ``aws:username``,
``aws:SourceIdentity`` and ``aws:MultiFactorAuthPresent``, with those keys as policy variables.
A variable without a value makes its statement not apply, as in IAM. Anything else is refused
(``UnsupportedPolicyError``), never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meridian.iam.policy import UnsupportedPolicyError, action_matches

_KEYS = frozenset(
    {
        "sts:RoleSessionName",
        "sts:SourceIdentity",
        "aws:username",
        "aws:SourceIdentity",
        "aws:MultiFactorAuthPresent",
    }
)
_VARIABLE = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """An AssumeRole as STS would see it: who asks, and the session it asks for."""

    session_name: str
    user: str | None = None  # the calling IAM user's name (aws:username)
    source_identity: str | None = None  # set by a federated person's identity provider
    mfa: bool = True  # local users count as signed in with MFA

    def context(self) -> dict[str, str]:
        values = {
            "sts:RoleSessionName": self.session_name,
            "aws:MultiFactorAuthPresent": "true" if self.mfa else "false",
        }
        if self.user is not None:
            values["aws:username"] = self.user
        if self.source_identity is not None:
            values["aws:SourceIdentity"] = values["sts:SourceIdentity"] = self.source_identity
        return values


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resolve(pattern: str, context: Mapping[str, str]) -> str | None:
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        name = match.group(1)
        if name not in _KEYS:
            raise UnsupportedPolicyError(f"policy variable ${{{name}}} is not evaluated here")
        if name not in context:
            missing = True
            return ""
        return context[name]

    resolved = _VARIABLE.sub(substitute, pattern)
    return None if missing else resolved


def _like(pattern: str, value: str) -> bool:
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.fullmatch("".join(parts), value, re.DOTALL) is not None


def _holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        if operator not in ("StringEquals", "StringLike", "Bool"):
            raise UnsupportedPolicyError(f"condition operator {operator} is not evaluated here")
        for key, expected in tests.items():
            if key not in _KEYS:
                raise UnsupportedPolicyError(f"condition key {key} is not evaluated here")
            actual = context.get(key)
            if actual is None:
                return False
            wanted = [_resolve(str(v), context) for v in _list(expected)]
            if operator == "Bool":
                if actual.lower() not in [w.lower() for w in wanted if w is not None]:
                    return False
            elif operator == "StringEquals":
                if actual not in wanted:
                    return False
            elif not any(w is not None and _like(w, actual) for w in wanted):
                return False
    return True


def allows(trust_policy: Mapping[str, Any], request: SessionRequest) -> bool:
    """Whether the trust policy lets this caller assume the role with this session name."""
    context = request.context()
    for statement in _list(trust_policy.get("Statement", [])):
        if statement.get("Effect") == "Deny":
            raise UnsupportedPolicyError("Deny statements in a trust policy are not evaluated here")
        if not any(action_matches(str(a), "sts:AssumeRole") for a in _list(statement.get("Action", []))):
            continue
        if _holds(statement.get("Condition") or {}, context):
            return True
    return False
