"""Every function of the template has sample events for `sam local invoke`, and every sample parses."""

from __future__ import annotations

import json
from pathlib import Path

from meridian_local.cloud.sam_template import load

REPO = Path(__file__).resolve().parents[2]


def test_every_function_folder_of_the_template_has_sample_events() -> None:
    template = load(REPO / "template.yaml")
    folders = {
        Path(str(resource["Properties"]["CodeUri"])).name
        for resource in template["Resources"].values()
        if resource.get("Type") == "AWS::Serverless::Function"
    }
    assert folders >= {"orders_api", "ledger", "market_data", "surveillance", "migrations", "executions"}
    for folder in sorted(folders):
        samples = sorted((REPO / "events" / folder).glob("*.json"))
        assert samples, f"events/{folder}/ has no sample event"
        for sample in samples:
            assert isinstance(json.loads(sample.read_text()), dict), sample


def test_no_sample_events_for_functions_that_do_not_exist() -> None:
    for folder in (REPO / "events").iterdir():
        handler = REPO / "functions" / folder.name / "app.py"
        assert handler.is_file(), f"events/{folder.name} has no function"
