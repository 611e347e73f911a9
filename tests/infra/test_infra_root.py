"""template.yaml: nested stacks wired through their interfaces, Globals, environments."""

from __future__ import annotations

import shlex
import tomllib
from typing import Any

import pytest

from tests.infra.templates import (
    ROOT,
    ROOT_TEMPLATE,
    load,
    nested_stacks,
    nested_template_paths,
    references,
    resources,
    transformed,
)

TEMPLATE = load(ROOT_TEMPLATE)
NESTED = nested_stacks(TEMPLATE)
SAMCONFIG = tomllib.loads((ROOT / "samconfig.toml").read_text())
ENVIRONMENTS = ("default", "staging", "prod", "dr")


def _overrides(environment: str) -> dict[str, str]:
    text = SAMCONFIG[environment]["deploy"]["parameters"]["parameter_overrides"]
    return dict(item.split("=", 1) for item in shlex.split(text))


def test_every_nested_template_is_a_nested_stack_of_the_root() -> None:
    assert sorted(path for path, _ in NESTED.values()) == sorted(nested_template_paths())
    assert {name: path for name, (path, _) in NESTED.items()} == {
        "NetworkStack": "stacks/network.yaml",
        "SecurityStack": "stacks/security.yaml",
        "DataStack": "stacks/data.yaml",
        "StreamingStack": "stacks/streaming.yaml",
        "HotpathStack": "hotpath/template.yaml",
        "ContainersStack": "stacks/containers.yaml",
        "ObservabilityStack": "stacks/observability.yaml",
        "MonitoringStack": "stacks/monitoring.yaml",
        "DrStack": "stacks/dr.yaml",
        "PipelineStack": "stacks/pipeline.yaml",
    }


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_sam_cli_reads_every_nested_stack() -> None:
    """What `sam build` and `sam package` need: the CLI's own stack provider parses the whole tree."""
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider  # noqa: PLC0415 - slow import

    stacks, _ = SamLocalStackProvider.get_stacks(str(ROOT / ROOT_TEMPLATE))
    assert {stack.stack_path for stack in stacks} == {"", *NESTED}


@pytest.mark.parametrize("stack", sorted(NESTED))
def test_root_passes_exactly_the_parameters_a_nested_stack_declares(stack: str) -> None:
    path, passed = NESTED[stack]
    declared = load(path).get("Parameters", {})
    assert set(passed) <= set(declared), set(passed) - set(declared)
    required = {name for name, spec in declared.items() if "Default" not in spec}
    assert required <= set(passed), required - set(passed)


def test_every_nested_output_the_root_reads_exists() -> None:
    outputs = {name: set(load(path).get("Outputs", {})) for name, (path, _) in NESTED.items()}
    for kind, target in references(TEMPLATE):
        parts = target.split(".")
        if kind == "GetAtt" and parts[0] in NESTED:
            assert parts[1] == "Outputs", target
            assert parts[2] in outputs[parts[0]], f"{target}: {parts[0]} has no output {parts[2]}"


def test_functions_run_in_the_vpc_with_xray_tracing() -> None:
    function_globals = TEMPLATE["Globals"]["Function"]
    assert function_globals["Tracing"] == "Active"
    vpc = function_globals["VpcConfig"]
    assert vpc["SubnetIds"] == {
        "Fn::Split": [",", {"Fn::GetAtt": ["NetworkStack", "Outputs.PrivateSubnetIds"]}]
    }
    assert vpc["SecurityGroupIds"] == [{"Fn::GetAtt": ["SecurityStack", "Outputs.LambdaSecurityGroupId"]}]
    functions = resources(transformed(ROOT_TEMPLATE), "AWS::Lambda::Function")
    assert functions
    for name, function in functions.items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}, name
        assert "VpcConfig" in function["Properties"], name


def test_shared_layer_is_kept() -> None:
    layer = TEMPLATE["Resources"]["SharedLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/shared/"


def test_conditions_for_primary_dr_hosted_zone_and_pipeline() -> None:
    assert {"IsPrimary", "IsDr", "HasHostedZone", "CreatesPipeline"} <= set(TEMPLATE["Conditions"])
    assert TEMPLATE["Resources"]["PipelineStack"]["Condition"] == "CreatesPipeline"
    dr = TEMPLATE["Resources"]["DrStack"]["Properties"]["Parameters"]
    assert dr["FailoverRole"] == {"Fn::If": ["IsDr", "SECONDARY", "PRIMARY"]}


def test_every_root_parameter_has_a_default_so_guided_deploys_ask_little() -> None:
    missing = [name for name, spec in TEMPLATE["Parameters"].items() if "Default" not in spec]
    assert not missing, missing


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_samconfig_environments_only_set_parameters_the_root_declares(environment: str) -> None:
    overrides = _overrides(environment)
    assert set(overrides) <= set(TEMPLATE["Parameters"]), set(overrides) - set(TEMPLATE["Parameters"])
    expected = "dev" if environment == "default" else environment
    assert overrides["Environment"] == expected


def test_dr_environment_is_a_warm_standby_in_another_region() -> None:
    dr: dict[str, Any] = SAMCONFIG["dr"]["deploy"]["parameters"]
    prod: dict[str, Any] = SAMCONFIG["prod"]["deploy"]["parameters"]
    assert dr["region"] != prod["region"]
    assert _overrides("dr")["HotpathNodeMode"] == "standby"
    assert _overrides("prod")["SecondaryRegion"] == dr["region"]
