"""The person behind an IAM principal, for rules about people rather than roles (four eyes).

A Meridian role's session name is its caller's verified name: the roles' trust policies allow a
session only under the caller's own IAM user name or the source identity their identity provider
set (template.yaml, docs/deploy.md). So one person in two roles (trader and compliance officer)
is one person here, under both role ARNs.
"""

from __future__ import annotations

import re

_SESSION = re.compile(r"^arn:aws[a-z-]*:sts::\d{12}:(?:assumed-role/[^/]+|federated-user)/(?P<name>.+)$")
_USER = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:user/(?:.*/)?(?P<name>[^/]+)$")


def person_of(principal: str) -> str:
    """The session's (or IAM user's) name; any other principal stands for itself."""
    match = _SESSION.match(principal) or _USER.match(principal)
    return match["name"] if match else principal


def same_person(a: str, b: str) -> bool:
    return bool(a) and bool(b) and person_of(a) == person_of(b)
