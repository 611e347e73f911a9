"""gateway/publish_image.sh, the pipeline's image step, against stand-in `aws` and `docker` commands
(no Docker daemon or AWS account here): it builds once, pushes to the stages whose repository
exists, never re-pushes an immutable tag, and says which stages have their image."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "gateway" / "publish_image.sh"
REGISTRY = "111122223333.dkr.ecr.eu-west-1.amazonaws.com"

FAKE_AWS = """#!/usr/bin/env bash
echo "aws $*" >>"$CALLS"
case "$1 $2" in
  "sts get-caller-identity") echo 111122223333 ;;
  "ecr get-login-password") echo token ;;
  "ecr describe-repositories")
    for existing in $EXISTING; do [[ " $* " == *" meridian-gateway-$existing "* ]] && exit 0; done
    exit 254 ;;
  "ecr describe-images")
    for pushed in $PUSHED; do
      repo="${pushed%%:*}"; tag="${pushed#*:}"
      [[ " $* " == *" meridian-gateway-$repo "* && " $* " == *" imageTag=$tag "* ]] && exit 0
    done
    exit 254 ;;
esac
"""
FAKE_DOCKER = """#!/usr/bin/env bash
[[ "$1" == login ]] && cat >/dev/null
echo "docker $*" >>"$CALLS"
"""


def publish(tmp_path: Path, *args: str, existing: str = "", pushed: str = "") -> tuple[int, list[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("aws", FAKE_AWS), ("docker", FAKE_DOCKER)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    calls, images = tmp_path / "calls.log", tmp_path / "images.json"
    calls.write_text("")
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "AWS_REGION": "eu-west-1",
        "CALLS": str(calls),
        "EXISTING": existing,
        "PUSHED": pushed,
        "GATEWAY_IMAGES_FILE": str(images),
    }
    run = subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    return run.returncode, calls.read_text().splitlines(), images.read_text() if images.exists() else ""


def test_it_builds_once_and_pushes_to_the_stages_whose_repository_exists(tmp_path: Path) -> None:
    code, calls, images = publish(tmp_path, "abc123", "staging", "prod", existing="staging")
    assert code == 0
    docker = [c for c in calls if c.startswith("docker")]
    assert docker == [
        f"docker login --username AWS --password-stdin {REGISTRY}",
        "docker build --pull -f gateway/Dockerfile -t meridian-gateway:abc123 .",
        f"docker tag meridian-gateway:abc123 {REGISTRY}/meridian-gateway-staging:abc123",
        f"docker push {REGISTRY}/meridian-gateway-staging:abc123",
    ]
    assert json.loads(images) == {"staging": f"{REGISTRY}/meridian-gateway-staging:abc123"}


def test_an_image_already_pushed_for_the_commit_is_used_not_pushed_again(tmp_path: Path) -> None:
    code, calls, images = publish(
        tmp_path, "abc123", "staging", "prod", existing="staging prod", pushed="prod:abc123"
    )
    assert code == 0
    pushes = [c for c in calls if c.startswith("docker push")]
    assert pushes == [f"docker push {REGISTRY}/meridian-gateway-staging:abc123"]
    assert sum(c.startswith("docker build") for c in calls) == 1
    assert json.loads(images) == {
        "staging": f"{REGISTRY}/meridian-gateway-staging:abc123",
        "prod": f"{REGISTRY}/meridian-gateway-prod:abc123",
    }


def test_with_no_repository_yet_nothing_is_built_and_no_stage_gets_an_image(tmp_path: Path) -> None:
    code, calls, images = publish(tmp_path, "abc123", "staging", "prod")
    assert code == 0
    assert not [c for c in calls if c.startswith("docker")]
    assert json.loads(images) == {}


@pytest.mark.parametrize("args", [[], ["abc123"], ["bad tag!", "staging"]])
def test_bad_arguments_are_exit_2_before_any_call(tmp_path: Path, args: list[str]) -> None:
    code, calls, images = publish(tmp_path, *args)
    assert code == 2
    assert calls == []
    assert images == ""
