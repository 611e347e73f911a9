"""Read Meridian's SAM templates the way CloudFormation would: parse, inline local files, transform.

Used by the local platform (to provision what the template declares) and by the template tests.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
from samcli.lib.cfn_language_extensions.sam_integration import expand_language_extensions as _expand
from samcli.yamlhelper import yaml_parse
from samtranslator.feature_toggle.feature_toggle import FeatureToggle, FeatureToggleConfigProvider
from samtranslator.metrics.metrics import DummyMetricsPublisher
from samtranslator.metrics.metrics import Metrics as TranslatorMetrics
from samtranslator.model.api.api_generator import FEATURE_FLAG_NORMALIZED_OPENAPI_VERSION
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

REPO_ROOT = Path(__file__).resolve().parents[3]
ROOT_TEMPLATE = REPO_ROOT / "template.yaml"
LOCAL_ARTIFACT_BUCKET = "meridian-local-artifacts"


class _AnyManagedPolicy(dict[str, str]):
    """Managed-policy lookup for offline transforms: every AWS managed policy name maps to its ARN."""

    def get(self, key: str, default: Any = None) -> str:
        return f"arn:aws:iam::aws:policy/{key}"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __getitem__(self, key: str) -> str:
        return self.get(key)


def load(path: Path | str = ROOT_TEMPLATE) -> dict[str, Any]:
    """Parse a template, understanding the short intrinsic forms (!Ref, !Sub, ...)."""
    parsed: dict[str, Any] = yaml_parse(Path(path).read_text())
    return parsed


def _read_local(base: Path, location: str) -> Any:
    path = (base / location).resolve()
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else yaml_parse(text)


def _is_local(uri: Any) -> bool:
    return isinstance(uri, str) and not uri.startswith("s3://")


def inline_local_files(template: dict[str, Any], base: Path = REPO_ROOT) -> dict[str, Any]:
    """What `sam build`/`sam package` do to local paths, without uploading anything.

    State machine definitions and API definitions are inlined (their content matters locally);
    code locations become S3 URIs in a local artifact bucket (the code itself runs in-process).
    """
    out = copy.deepcopy(template)
    globals_function = out.get("Globals", {}).get("Function", {})
    if _is_local(globals_function.get("CodeUri")):
        globals_function["CodeUri"] = f"s3://{LOCAL_ARTIFACT_BUCKET}/{globals_function['CodeUri']}"
    for resource in out.get("Resources", {}).values():
        kind, props = resource.get("Type"), resource.setdefault("Properties", {})
        if kind == "AWS::Serverless::Function" and _is_local(props.get("CodeUri")):
            props["CodeUri"] = f"s3://{LOCAL_ARTIFACT_BUCKET}/{props['CodeUri']}"
        elif kind == "AWS::Serverless::LayerVersion" and _is_local(props.get("ContentUri")):
            props["ContentUri"] = f"s3://{LOCAL_ARTIFACT_BUCKET}/{props['ContentUri']}"
        elif kind == "AWS::Serverless::StateMachine" and _is_local(props.get("DefinitionUri")):
            props["Definition"] = _read_local(base, props.pop("DefinitionUri"))
        elif kind in ("AWS::Serverless::Api", "AWS::Serverless::HttpApi"):
            if _is_local(props.get("DefinitionUri")):
                props["DefinitionBody"] = _read_local(base, props.pop("DefinitionUri"))
            body = props.get("DefinitionBody")
            if isinstance(body, dict) and "Fn::Transform" in body:
                params = body["Fn::Transform"].get("Parameters", {})
                if _is_local(params.get("Location")):
                    props["DefinitionBody"] = _read_local(base, params["Location"])
        elif kind in ("AWS::Serverless::Application",) and _is_local(props.get("Location")):
            props["Location"] = f"s3://{LOCAL_ARTIFACT_BUCKET}/{props['Location']}"
    return out


def transform(
    template: dict[str, Any], parameters: dict[str, str] | None = None, region: str = "us-east-1"
) -> dict[str, Any]:
    """Apply the SAM transform (aws-sam-translator) offline; returns plain CloudFormation."""
    if "Transform" not in template:
        return copy.deepcopy(template)
    session = boto3.session.Session(region_name=region)
    # The translator times itself into a metrics cache; published (to its dummy publisher) at the
    # end, it does not warn of "unpublished metrics" when it is collected.
    timings = TranslatorMetrics("ServerlessTransform", DummyMetricsPublisher())
    translator = Translator(
        managed_policy_map=None, sam_parser=Parser(), plugins=[], boto_session=session, metrics=timings
    )
    try:
        translated: dict[str, Any] = translator.translate(
            sam_template=copy.deepcopy(template),
            parameter_values=dict(parameters or {}),
            feature_toggle=_feature_toggle(region),
            get_managed_policy_map=_AnyManagedPolicy,
        )
    finally:
        timings.publish()
    return translated


class _KnownFeatures(FeatureToggleConfigProvider):  # type: ignore[misc] # samtranslator ships untyped for mypy here
    """The translator's feature flags, each declared and off for this stage (as without a config,
    but declared: an undeclared flag is a warning on every transform)."""

    @property
    def config(self) -> dict[str, Any]:
        return {FEATURE_FLAG_NORMALIZED_OPENAPI_VERSION: {}}


def _feature_toggle(region: str) -> FeatureToggle:
    return FeatureToggle(_KnownFeatures(), stage="local", account_id="123456789012", region=region)


def expand_language_extensions(
    template: dict[str, Any], parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """Expand ``AWS::LanguageExtensions`` (Fn::ForEach, ...) as CloudFormation does first."""
    if "AWS::LanguageExtensions" not in _as_list(template.get("Transform")):
        return template
    values = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", **(parameters or {})}
    result = _expand(template, values, enabled=True)
    expanded: dict[str, Any] = result.expanded_template
    transforms = [t for t in _as_list(expanded.get("Transform")) if t != "AWS::LanguageExtensions"]
    if transforms:
        expanded["Transform"] = transforms
    else:
        expanded.pop("Transform", None)
    return expanded


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def load_transformed(
    path: Path | str = ROOT_TEMPLATE, parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    path = Path(path)
    expanded = expand_language_extensions(load(path), parameters)
    return transform(inline_local_files(expanded, path.parent), parameters)
