"""docs/deploy.md's "First deploy" and "Costs to expect" sections hold to the templates: the cost
table is what tools/cost_table.py computes from them, and the deploy order names only parameters,
outputs and samconfig sections that exist, in an order that works (prod before dr)."""

from __future__ import annotations

import re

from tests.infra.templates import ROOT, ROOT_TEMPLATE, load
from tools import cost_table
from tools.cfn_model import environments

GUIDE = (ROOT / "docs" / "deploy.md").read_text()
TEMPLATE = load(ROOT_TEMPLATE)


def _section(heading: str) -> str:
    return GUIDE.split(heading, 1)[1].split("\n## ", 1)[0]


def test_the_cost_table_is_the_one_the_templates_and_prices_give() -> None:
    table = cost_table.render(cost_table.compute())
    committed = GUIDE.split(cost_table.START, 1)[1].split(cost_table.END, 1)[0].strip()
    assert committed == table, "run `python -m tools.cost_table --write`"


def test_dev_costs_at_most_500_a_month_and_prod_and_dr_keep_dedicated_nodes_and_io2() -> None:
    table = cost_table.compute()
    assert table["default"]["Total"].usd <= 500, table["default"]["Total"]
    for section in ("prod", "dr"):
        assert table[section]["Dedicated Instances region fee"].usd > 0
        assert "dedicated" in table[section]["C5n matching node"].basis
        assert table[section]["Journal volume"].basis.startswith("io2")
    assert table["default"]["Dedicated Instances region fee"].usd == 0


def test_the_first_deploy_section_names_what_exists_in_an_order_that_works() -> None:
    section = _section("## First deploy").split("### Putting the matching nodes", 1)[0]
    for heading in ("### Fresh account", "### A second environment beside the first", "### Recovery region"):
        assert heading in section
    deployed = re.findall(r"--config-env (\w+)", section)
    assert set(deployed) <= set(environments()), deployed
    assert deployed.index("prod") < deployed.index("dr")  # the replica needs its primary
    named = set(re.findall(r"`([A-Z][A-Za-z0-9]+)=", section))
    assert {"PrimaryDbInstanceArn", "DbDeletionProtection"} <= named
    assert named <= set(TEMPLATE["Parameters"]), named - set(TEMPLATE["Parameters"])
    listed = re.findall(r"its outputs (`[^.]*)\.", section)[0]
    outputs = set(re.findall(r"`([A-Z][A-Za-z0-9]+)`", listed)) | set(
        re.findall(r"`([A-Z][A-Za-z0-9]+)` output", section)
    )
    assert {"DbInstanceArn", "TransitGatewayId", "TransitGatewayPeeringAttachmentId"} <= outputs
    assert outputs <= set(TEMPLATE["Outputs"]), outputs - set(TEMPLATE["Outputs"])
    # What the dr deploy refuses without, and why, is the template's rule, pointing at this section.
    rules = TEMPLATE["Rules"]
    assert "Recovery region" in str(rules)
    assert rules["DrReplicatesThePrimaryLedger"]["RuleCondition"] == {
        "Fn::Equals": [{"Ref": "Environment"}, "dr"]
    }
    dr = environments(include_after_first_deploy=False)["dr"].parameters
    assert "PrimaryDbInstanceArn" not in dr  # filled in after prod exists, as the section says
    assert dr["SecondaryRegion"] == "us-east-1"
