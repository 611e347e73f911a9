"""docs/deploy.md documents every platform parameter and every nested stack."""

from __future__ import annotations

import re

from tests.infra.templates import ROOT, ROOT_TEMPLATE, nested_template_paths

GUIDE = (ROOT / "docs" / "deploy.md").read_text()


def _platform_parameters() -> list[str]:
    """Root parameters between the `# ---- platform ----` markers of the Parameters section."""
    text = (ROOT / ROOT_TEMPLATE).read_text()
    block = text.split("  # ---- platform ----", 1)[1].split("  # ---- end platform ----", 1)[0]
    return re.findall(r"^  ([A-Za-z0-9]+):$", block, re.MULTILINE)


def test_guide_documents_every_platform_parameter() -> None:
    parameters = ["Environment", *_platform_parameters()]
    assert len(parameters) > 20
    missing = [name for name in parameters if f"`{name}`" not in GUIDE]
    assert not missing, missing


def test_guide_names_every_nested_stack_and_the_cost_drivers() -> None:
    for path in nested_template_paths():
        assert path in GUIDE, path
    for driver in ("Dedicated", "NAT gateways", "Interface endpoints", "RDS", "Kinesis", "VPN", "Fargate"):
        assert driver in GUIDE, driver
