"""``execute-api:Invoke`` decisions for a caller, from the identity policies of its role.

A SigV4-signed request is its caller's ``execute-api:Invoke`` on the method ARN
``arn:aws:execute-api:<region>:<account>:<api id>/<stage>/<METHOD>/<path>``, decided from the
identity policies of the caller's role (``policy``), as API Gateway asks IAM. A caller is an
assumed-role session ``arn:aws:sts::<account>:assumed-role/<role>/<s>`` of the API's account; any
other caller, or a role not given here, has no policies: implicit deny. A session must also be one
its role's trust policy would have let STS issue to the user it was issued to (``trust``): the
template's roles bind the session name to the caller's verified name.

The local API Gateway builds one from the template (``meridian_local.apigateway.route_access``); the
streaming gateway asks the same question for the REST route a channel stands for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meridian.iam import trust as trust_policy
from meridian.iam.policy import (
    Decision,
    Statement,
    UnsupportedPolicyError,
    decide,
    parse_statements,
    require_supported,
)
from meridian.iam.trust import SessionRequest

INVOKE = "execute-api:Invoke"
_ASSUMED_ROLE = re.compile(r"^arn:aws[a-z-]*:sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/.+$")


class AccessDeniedError(Exception):
    """IAM does not allow the caller this route; ``message`` is API Gateway's."""

    code = "ACCESS_DENIED"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ExecuteApi:
    """The REST API stage whose methods callers invoke."""

    region: str
    account: str
    api_id: str
    stage: str
    partition: str = "aws"

    def method_arn(self, method: str, path: str) -> str:
        """``.../<api id>/<stage>/<METHOD>/<path>``: the resource IAM decides on for a request."""
        prefix = f"arn:{self.partition}:execute-api:{self.region}:{self.account}:{self.api_id}"
        return f"{prefix}/{self.stage}/{method.upper()}/{path.lstrip('/')}"


@dataclass(frozen=True, slots=True)
class RolePolicies:
    """A role's identity policies as (name, document), or why they cannot be evaluated here, and its
    trust policy."""

    documents: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    unsupported: str = ""
    trust: Mapping[str, Any] | None = None


class RoleAccess:
    """``execute-api:Invoke`` decisions for callers, from their roles' policies."""

    def __init__(self, api: ExecuteApi, roles: Mapping[str, RolePolicies]) -> None:
        self.api = api
        self.roles = dict(roles)
        self._statements: dict[str, list[Statement]] = {}

    def statements(self, role: str) -> list[Statement]:
        """The role's statements (none for a role not declared); UnsupportedPolicyError if undecidable."""
        if role not in self._statements:
            policies = self.roles.get(role, RolePolicies())
            if policies.unsupported:
                raise UnsupportedPolicyError(f"role {role}: {policies.unsupported}")
            found = [s for name, doc in policies.documents for s in parse_statements(doc, name)]
            require_supported(found, INVOKE)
            self._statements[role] = found
        return self._statements[role]

    def require_roles(self, roles: Iterable[str]) -> None:
        """Fail at start, not per request: each role is declared and its policies can be decided."""
        for role in roles:
            if role not in self.roles:
                raise LookupError(f"the template declares no role named {role}")
            self.statements(role)

    def role_of(self, principal: str) -> str | None:
        """The role of an assumed-role session of the API's account; None for any other caller."""
        match = _ASSUMED_ROLE.match(principal)
        if match is None or match["account"] != self.api.account:
            return None
        return match["role"]

    def check_session(self, principal: str, user: str | None) -> None:
        """Raise AccessDeniedError unless the role's trust policy lets ``user`` hold this session."""
        match = _ASSUMED_ROLE.match(principal)
        role = self.role_of(principal)
        if match is None or role is None:
            return  # not an assumed role of this account: it has no policies here (implicit deny)
        trust = self.roles.get(role, RolePolicies()).trust
        session = principal.rsplit("/", 1)[1]
        if trust is None or not trust_policy.allows(trust, SessionRequest(session, user=user)):
            caller = user or "an unknown caller"
            raise AccessDeniedError(
                f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role} with the "
                f"session name {session}: the role's trust policy binds the session name to the caller's name"
            )

    def decide(self, principal: str, method: str, path: str) -> Decision:
        role = self.role_of(principal)
        statements = self.statements(role) if role is not None else []
        return decide(statements, INVOKE, self.api.method_arn(method, path))

    def authorize(self, principal: str, method: str, path: str) -> None:
        """Return if IAM allows the call; raise AccessDeniedError with API Gateway's message if not."""
        decision = self.decide(principal, method, path)
        if decision.allowed:
            return
        message = (
            f"User: {principal} is not authorized to perform: {INVOKE} on resource: "
            f"{self.api.method_arn(method, path)}"
        )
        if decision is Decision.EXPLICIT_DENY:
            message += " with an explicit deny"
        raise AccessDeniedError(message)
