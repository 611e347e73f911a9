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


def test_the_security_section_says_what_every_role_can_and_cannot_do() -> None:
    section = GUIDE.split("## Security: what each role can and cannot do", 1)[1].split("\n## ", 1)[0]
    for role in ("TraderRole", "RiskOfficerRole", "ComplianceOfficerRole", "OperatorRole", "DeployRole"):
        assert f"`{role}`" in section, role
    migrations = (ROOT / "layers/shared/meridian/ledger/migrations").glob("*.sql")
    database_roles = set(re.findall(r"'(meridian_[a-z_]+)'", "".join(p.read_text() for p in migrations)))
    assert len(database_roles) >= 6
    for role in database_roles:
        assert f"`{role}`" in section, role
    for topic in (
        "permissions boundary",
        "verify-full",
        "meridian.executions",
        "HTTPS only",
        "WafRateLimitPerIp",
    ):
        assert topic in section, topic
