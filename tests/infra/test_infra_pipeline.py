"""stacks/pipeline.yaml and buildspec.yml: CodeCommit, CodeBuild, CodePipeline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.infra.templates import ROOT, ROOT_TEMPLATE, as_list, load, load_yaml, properties, resource

PIPELINE = load("stacks/pipeline.yaml")
BUILDSPEC = load_yaml("buildspec.yml")


def _commands() -> list[str]:
    return [c for phase in BUILDSPEC["phases"].values() for c in phase.get("commands", [])]


def _actions() -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    for stage in properties(PIPELINE, "Pipeline")["Stages"]:
        for action in stage["Actions"]:
            actions.extend(a for a in ([action] if "Fn::If" not in action else action["Fn::If"][1:]))
    return actions


def test_codecommit_repository_encrypted_unless_a_connection_is_used() -> None:
    repository = resource(PIPELINE, "Repository")
    assert repository["Condition"] == "UsesCodeCommit"
    assert repository["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["PipelineKey", "Arn"]}


def test_codebuild_runs_the_repository_buildspec_with_encrypted_artifacts() -> None:
    project = properties(PIPELINE, "BuildProject")
    assert project["Source"] == {"Type": "CODEPIPELINE", "BuildSpec": "buildspec.yml"}
    assert project["EncryptionKey"] == {"Fn::GetAtt": ["PipelineKey", "Arn"]}
    assert project["Environment"]["PrivilegedMode"] is True  # the Docker daemon, for the gateway image


def test_pipeline_stages_source_test_staging_approval_production() -> None:
    pipeline = properties(PIPELINE, "Pipeline")
    assert [s["Name"] for s in pipeline["Stages"]] == ["Source", "Test", "Staging", "Approval", "Production"]
    providers = [a["ActionTypeId"]["Provider"] for a in _actions()]
    assert providers == [
        "CodeCommit",
        "CodeStarSourceConnection",
        "CodeBuild",
        "CloudFormation",
        "CloudFormation",
        "CloudFormation",
        "Manual",
        "CloudFormation",
    ]
    # Every deployment is a change set: created (with the deploy role and the packaged template),
    # then executed; production's is created before the approval, so the approver sees it.
    deploys = [
        (a["Configuration"]["ActionMode"], a["Configuration"]["StackName"]["Ref"], a.get("RunOrder", 1))
        for a in _actions()
        if a["ActionTypeId"]["Provider"] == "CloudFormation"
    ]
    assert deploys == [
        ("CHANGE_SET_REPLACE", "StagingStackName", 1),
        ("CHANGE_SET_EXECUTE", "StagingStackName", 2),
        ("CHANGE_SET_REPLACE", "ProductionStackName", 1),
        ("CHANGE_SET_EXECUTE", "ProductionStackName", 1),
    ]
    approval = [a for s in pipeline["Stages"] if s["Name"] == "Approval" for a in s["Actions"]]
    assert [(a["Name"], a.get("RunOrder", 1)) for a in approval] == [
        ("CreateProductionChangeSet", 1),
        ("ApproveProduction", 2),
    ]
    creates = [
        a["Configuration"] for a in _actions() if a["Configuration"].get("ActionMode") == "CHANGE_SET_REPLACE"
    ]
    assert all(d["RoleArn"] == {"Fn::GetAtt": ["DeployRole", "Arn"]} for d in creates)
    assert [d["TemplateConfiguration"] for d in creates] == [
        "Packaged::deploy/staging.json",
        "Packaged::deploy/prod.json",
    ]
    executes = [
        a["Configuration"] for a in _actions() if a["Configuration"].get("ActionMode") == "CHANGE_SET_EXECUTE"
    ]
    assert [d["ChangeSetName"] for d in executes] == [d["ChangeSetName"] for d in creates]
    assert pipeline["ArtifactStore"]["EncryptionKey"] == {
        "Type": "KMS",
        "Id": {"Fn::GetAtt": ["PipelineKey", "Arn"]},
    }


def test_pipeline_and_build_roles_are_scoped_to_their_resources() -> None:
    """Every statement names its resources; the one exception is the registry login (no resource
    type exists for it), written down with its reason, and the images go to the gateway's
    repositories only."""
    for role in ("PipelineRole", "BuildRole", "SourceChangeRole"):
        exemptions = resource(PIPELINE, role).get("Metadata", {}).get("Meridian", {}).get("Exemptions", {})
        for policy in properties(PIPELINE, role)["Policies"]:
            for statement in policy["PolicyDocument"]["Statement"]:
                for concrete in as_list(statement.get("Fn::If", [None, statement])[1]):
                    if "*" in as_list(concrete.get("Resource")):
                        assert (role, concrete["Action"]) == ("BuildRole", "ecr:GetAuthorizationToken")
                        assert exemptions[concrete["Sid"]], concrete
    statements = properties(PIPELINE, "BuildRole")["Policies"][0]["PolicyDocument"]["Statement"]
    (push,) = [s for s in statements if "ecr:PutImage" in s["Action"]]
    assert push["Resource"]["Fn::Sub"].endswith(":repository/meridian-gateway-*")
    assert properties(PIPELINE, "BuildProject")["Environment"]["PrivilegedMode"] is True  # docker build
    trust = properties(PIPELINE, "DeployRole")["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "cloudformation.amazonaws.com"}


def test_buildspec_runs_make_test_then_sam_build_then_sam_package() -> None:
    commands = _commands()
    order = [
        next(i for i, c in enumerate(commands) if re.search(pattern, c))
        for pattern in (r"^make test$", r"^make build$", r"sam package")
    ]
    assert order == sorted(order)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^build:.*\n\t.*sam build --template-file template.yaml", makefile, re.MULTILINE)
    assert set(BUILDSPEC["artifacts"]["files"]) == {
        "packaged.yaml",
        "deploy/staging.json",
        "deploy/prod.json",
    }


def test_buildspec_writes_stage_parameters_the_root_template_accepts(tmp_path: Path) -> None:
    (post_build,) = BUILDSPEC["phases"]["post_build"]["commands"]
    shutil.copy(ROOT / "samconfig.toml", tmp_path / "samconfig.toml")
    # What the build project gives the build (its EnvironmentVariables), plus CodeBuild's own.
    project = {v["Name"] for v in properties(PIPELINE, "BuildProject")["Environment"]["EnvironmentVariables"]}
    assert {"ARTIFACT_BUCKET", "ARTIFACT_KEY_ARN", "PERMISSIONS_BOUNDARY_ARN"} <= project
    environment = {
        **os.environ,
        "NODE_RELEASE_URI": "s3://artifacts/releases/meridian-node-abc.tar.gz",
        "ARTIFACT_KEY_ARN": "arn:aws:kms:us-east-1:111122223333:key/example",
        "PERMISSIONS_BOUNDARY_ARN": "arn:aws:iam::111122223333:policy/meridian-dev-permissions-boundary",
        "CODEBUILD_RESOLVED_SOURCE_VERSION": "abc",
    }
    script = post_build.replace("python3.11 -", f"{sys.executable} -", 1)
    subprocess.run(["bash", "-c", script], cwd=tmp_path, env=environment, check=True)
    accepted = set(load(ROOT_TEMPLATE)["Parameters"])
    for stage in ("staging", "prod"):  # no image pushed: no gateway service
        assert (
            "GatewayImageUri"
            not in json.loads((tmp_path / "deploy" / f"{stage}.json").read_text())["Parameters"]
        )
    # Only staging's repository existed when the image was pushed (prod's first deploy creates it).
    image = "111122223333.dkr.ecr.us-east-1.amazonaws.com/meridian-gateway-staging:abc"
    (tmp_path / "deploy" / "gateway-images.json").write_text(json.dumps({"staging": image}))
    subprocess.run(["bash", "-c", script], cwd=tmp_path, env=environment, check=True)
    staging = json.loads((tmp_path / "deploy" / "staging.json").read_text())["Parameters"]
    prod = json.loads((tmp_path / "deploy" / "prod.json").read_text())["Parameters"]
    assert staging["GatewayImageUri"] == image
    assert "GatewayImageUri" not in prod
    for stage in ("staging", "prod"):
        config = json.loads((tmp_path / "deploy" / f"{stage}.json").read_text())
        assert config["Parameters"]["Environment"] == stage
        assert config["Parameters"]["HotpathReleaseS3Uri"] == environment["NODE_RELEASE_URI"]
        assert config["Parameters"]["PermissionsBoundaryArn"] == environment["PERMISSIONS_BOUNDARY_ARN"]
        assert set(config["Parameters"]) <= accepted, set(config["Parameters"]) - accepted
