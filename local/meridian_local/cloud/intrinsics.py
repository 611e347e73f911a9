"""Evaluate CloudFormation intrinsic functions against known parameters and resource values.

The local platform provisions only the resource types it can stand up here; every other resource
still resolves (to a clearly marked placeholder), so references to it never break evaluation.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

NO_VALUE = object()
_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")

Attribute = Callable[[str, str], Any]


class IntrinsicError(ValueError):
    """A template expression that cannot be evaluated."""


class Resolver:
    def __init__(
        self,
        parameters: dict[str, Any],
        conditions: dict[str, Any],
        refs: dict[str, Any],
        attributes: dict[tuple[str, str], Any],
        region: str = "us-east-1",
        account: str = "123456789012",
        stack_name: str = "meridian-local",
        decided: dict[str, bool] | None = None,
    ) -> None:
        """``decided`` fixes conditions whatever the parameters say (a local stack playing the dr
        role under a unique environment name)."""
        self.parameters = dict(parameters)
        self.parameters.update(
            {
                "AWS::Region": region,
                "AWS::AccountId": account,
                "AWS::Partition": "aws",
                "AWS::StackName": stack_name,
                "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/local",
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::NotificationARNs": [],
            }
        )
        self.refs = refs
        self.attributes = attributes
        self._condition_defs = conditions
        self._condition_values: dict[str, bool] = dict(decided or {})

    # ---- conditions -------------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            if name not in self._condition_defs:
                raise IntrinsicError(f"unknown condition {name}")
            self._condition_values[name] = bool(self.resolve(self._condition_defs[name]))
        return self._condition_values[name]

    # ---- values -----------------------------------------------------------------------------

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        return f"local-unprovisioned-{name}"

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if (logical_id, attribute) in self.attributes:
            return self.attributes[(logical_id, attribute)]
        return f"local-unprovisioned-{logical_id}.{attribute}"

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else self.resolve(arg)
                return self.get_att(parts[0], parts[1])
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                sep, items = arg
                return str(sep).join(str(v) for v in self.resolve(items))
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                left, right = self.resolve(arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(arg))
            if key == "Fn::Or":
                return any(self.resolve(arg))
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Select":
                index, items = self.resolve(arg)
                if not isinstance(items, list) or not -len(items) <= int(index) < len(items):
                    return f"local-unresolved-Fn::Select-{index}"  # e.g. over a placeholder's parts
                return items[int(index)]
            if key == "Fn::Split":
                sep, text = self.resolve(arg)
                return str(text).split(sep)
            if key == "Fn::GetAZs":
                region = self.resolve(arg) or self.parameters["AWS::Region"]
                return [f"{region}a", f"{region}b", f"{region}c"]
            if key == "Fn::Base64":
                return base64.b64encode(str(self.resolve(arg)).encode()).decode()
            if key == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg))
            if key == "Fn::Cidr":
                _, count, _ = self.resolve(arg)
                return [f"local-unresolved-cidr-{i}" for i in range(int(count))]
            if key in ("Fn::ImportValue", "Fn::FindInMap", "Fn::Transform"):
                return f"local-unresolved-{key}"
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE}

    def _sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, extra = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            text, extra = arg, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name in extra:
                return str(extra[name])
            if "." in name and name.split(".", 1)[0] not in self.parameters:
                logical_id, attribute = name.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            value = self.ref(name)
            return ",".join(map(str, value)) if isinstance(value, list) else str(value)

        return _SUB_VAR.sub(replace, str(text)).replace("${!", "${")


def references(node: Any) -> set[str]:
    """Logical ids a template fragment refers to (Ref, GetAtt, ${...} in Sub)."""
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value.split(".", 1)[0] if isinstance(value, str) else str(value[0]))
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= {m.split(".", 1)[0].strip() for m in _SUB_VAR.findall(str(text))}
                if isinstance(value, list):
                    found |= references(value[1])
            else:
                found |= references(value)
    return found
