"""IAM's decision on one action against one resource, from a principal's identity-policy statements.

What API Gateway asks IAM for every SigV4-signed request to an IAM-authorised method: may this
caller ``execute-api:Invoke`` the method ARN? Evaluated as IAM does for that case:

- ``Effect`` is ``Allow`` or ``Deny``; ``Action`` and ``Resource`` are a string or a list;
- ``*`` matches any run of characters (``/`` included), ``?`` exactly one; actions compare without
  regard to case, resources with it; a ``*`` inside an ARN segment stays within that segment, one
  that ends a segment may also span its ``:`` boundaries;
- an explicit ``Deny`` wins over every ``Allow``; without a matching ``Allow`` the answer is an
  implicit deny.

This is no general policy engine: ``NotAction``, ``NotResource`` and ``Principal`` (resource
policies) are refused when a document is read, and a ``Condition`` or a policy variable (``${...}``)
on a statement that applies to the action is refused by ``require_supported``, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

_KNOWN_KEYS = frozenset({"Sid", "Effect", "Action", "Resource", "Condition"})
_UNSUPPORTED_KEYS = ("NotAction", "NotResource", "Principal", "NotPrincipal")


class UnsupportedPolicyError(ValueError):
    """A policy this evaluator cannot decide as IAM would; it says which statement and why."""


class Decision(Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"

    @property
    def allowed(self) -> bool:
        return self is Decision.ALLOW


@dataclass(frozen=True, slots=True)
class Statement:
    sid: str
    allow: bool
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Mapping[str, Any] | None = None

    def matches(self, action: str, resource: str) -> bool:
        return any(action_matches(p, action) for p in self.actions) and any(
            resource_matches(p, resource) for p in self.resources
        )


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise UnsupportedPolicyError(f"{where} must be a non-empty string or list of strings: {value!r}")
    return tuple(items)


def parse_statements(document: Mapping[str, Any], policy_name: str = "policy") -> list[Statement]:
    """The statements of one policy document (``Statement`` may be one object or a list)."""
    raw = document.get("Statement", [])
    statements: list[Statement] = []
    for index, item in enumerate(raw if isinstance(raw, list) else [raw]):
        sid = str(item.get("Sid") or f"{policy_name}[{index}]")
        refused = [key for key in _UNSUPPORTED_KEYS if key in item]
        if refused:
            raise UnsupportedPolicyError(f"statement {sid}: {', '.join(refused)} is not evaluated here")
        unknown = sorted(set(item) - _KNOWN_KEYS)
        if unknown:
            raise UnsupportedPolicyError(f"statement {sid}: unknown element(s) {', '.join(unknown)}")
        if item.get("Effect") not in ("Allow", "Deny"):
            raise UnsupportedPolicyError(f"statement {sid}: Effect must be Allow or Deny")
        statements.append(
            Statement(
                sid=sid,
                allow=item["Effect"] == "Allow",
                actions=_strings(item.get("Action"), f"statement {sid}: Action"),
                resources=_strings(item.get("Resource"), f"statement {sid}: Resource"),
                condition=item.get("Condition") or None,
            )
        )
    return statements


def require_supported(statements: Iterable[Statement], action: str) -> None:
    """Refuse what would make a decision on ``action`` a guess: conditions, policy variables."""
    for statement in statements:
        if not any(action_matches(p, action) for p in statement.actions):
            continue
        if statement.condition:
            raise UnsupportedPolicyError(
                f"statement {statement.sid}: a Condition on {action} is not evaluated here"
            )
        variables = [r for r in statement.resources if "${" in r]
        if variables:
            raise UnsupportedPolicyError(
                f"statement {statement.sid}: policy variables are not evaluated here: {variables[0]}"
            )


def decide(statements: Sequence[Statement], action: str, resource: str) -> Decision:
    """IAM's answer for ``action`` on ``resource``: explicit deny, else allow, else implicit deny."""
    require_supported(statements, action)
    applicable = [s for s in statements if s.matches(action, resource)]
    if any(not s.allow for s in applicable):
        return Decision.EXPLICIT_DENY
    if applicable:
        return Decision.ALLOW
    return Decision.IMPLICIT_DENY


def action_matches(pattern: str, action: str) -> bool:
    """``execute-api:Inv*`` against ``execute-api:Invoke``: wildcards, any case."""
    return _action_pattern(pattern).fullmatch(action) is not None


def resource_matches(pattern: str, arn: str) -> bool:
    """A ``Resource`` entry against an ARN: wildcards, case-sensitive (see the module's rules)."""
    return _resource_pattern(pattern).fullmatch(arn) is not None


@cache
def _action_pattern(pattern: str) -> re.Pattern[str]:
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


@cache
def _resource_pattern(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for index, char in enumerate(pattern):
        if char == "*":
            ends_segment = index + 1 == len(pattern) or pattern[index + 1] == ":"
            parts.append(".*" if ends_segment else "[^:]*")
        elif char == "?":
            parts.append("[^:]")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)
