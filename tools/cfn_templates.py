"""Load Meridian's CloudFormation/SAM templates as plain data.

``load(path)`` parses a template with cfn-lint's YAML loader (it understands ``!Ref``, ``!Sub``,
``!GetAtt`` ... and returns the long forms). ``transformed(path)`` also applies the SAM transform, as
CloudFormation would, after replacing local artifact paths (``CodeUri: functions/x/``) with S3
locations the way ``sam validate`` does. Results are cached, so treat them as read-only.
"""

from __future__ import annotations

import copy
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from cfnlint.decode.cfn_yaml import load as cfn_yaml_load

ROOT = Path(__file__).resolve().parents[1]
ROOT_TEMPLATE = "template.yaml"
HOTPATH_TEMPLATE = "hotpath/template.yaml"
REGION = "us-east-1"

Template = dict[str, Any]


def nested_template_paths() -> list[str]:
    """Every nested stack template (stacks/*.yaml and the hot path), repository-relative."""
    paths = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "stacks").glob("*.yaml"))
    return [*paths, HOTPATH_TEMPLATE]


def all_template_paths() -> list[str]:
    return [ROOT_TEMPLATE, *nested_template_paths()]


@cache
def load(path: str) -> Template:
    """The template at ``path`` (relative to the repository) as plain dicts and lists."""
    # Round-trip through JSON so callers get builtin dict/list/str, not cfn-lint's node types.
    parsed: Template = json.loads(json.dumps(cfn_yaml_load(str(ROOT / path))))
    return parsed


class _NoManagedPolicies:
    """The translator asks for the account's managed-policy ARNs only to expand bare names."""

    def load(self) -> dict[str, str]:
        return {}


_LOCAL_ARTIFACTS = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
    "AWS::Serverless::Api": "DefinitionUri",
    "AWS::Serverless::HttpApi": "DefinitionUri",
    "AWS::Serverless::Application": "Location",
}


def _with_s3_artifacts(template: Template) -> Template:
    template = copy.deepcopy(template)
    for name, resource in template.get("Resources", {}).items():
        key = _LOCAL_ARTIFACTS.get(resource.get("Type", ""))
        properties = resource.get("Properties", {})
        if (
            key
            and isinstance(properties.get(key), str)
            and not properties[key].startswith(("s3://", "https://"))
        ):
            local = properties[key]
            if key == "Location":
                properties[key] = f"https://s3.{REGION}.amazonaws.com/meridian-artifacts/{local}"
            else:
                properties[key] = f"s3://meridian-artifacts/{name}/{local}"
    return template


@cache
def transformed(path: str = ROOT_TEMPLATE, parameters: tuple[tuple[str, str], ...] = ()) -> Template:
    """``path`` after the SAM transform (templates without it come back unchanged).

    ``parameters`` are the values CloudFormation would hand the transform (it resolves a few
    properties with them, a layer's name for one); without them it uses the defaults.
    """
    from samtranslator.translator.transform import transform  # noqa: PLC0415 - slow import, only here

    template = load(path)
    transforms = template.get("Transform", [])
    if "AWS::Serverless-2016-10-31" not in (transforms if isinstance(transforms, list) else [transforms]):
        return template
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    result: Template = transform(_with_s3_artifacts(template), dict(parameters), _NoManagedPolicies())
    return result
