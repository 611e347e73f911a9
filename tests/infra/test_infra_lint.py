"""cfn-lint reports nothing for any template (the same check `make cfn` runs), and the files that
templates carry inline are identical to their sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.api import lint_file

from tests.infra import embedded
from tests.infra.templates import ROOT, all_template_paths


@pytest.mark.parametrize("path", all_template_paths())
def test_cfn_lint_finds_nothing(path: str) -> None:
    matches = lint_file(Path(ROOT / path))
    assert not matches, "\n".join(str(m) for m in matches)


def test_embedded_copies_match_their_sources() -> None:
    stale = embedded.sync(write=False)
    assert not stale, "run `python -m tests.infra.embedded --write`:\n" + "\n".join(stale)


def test_embedded_sources_are_where_they_ship() -> None:
    sources = embedded.embedded_sources()
    assert "hotpath/deploy/user-data.sh" in sources["hotpath/template.yaml"]
    assert {
        "hotpath/deploy/tune-host.sh",
        "hotpath/deploy/meridian-node.service",
        "hotpath/deploy/meridian-tuning.service",
        "hotpath/deploy/activate.sh",
    } <= set(sources["hotpath/deploy/user-data.sh"])
    assert {
        "observability/prometheus/prometheus.yml",
        "observability/grafana/meridian-dashboard.json",
        "observability/grafana/provisioning/datasources.yaml",
        "observability/grafana/provisioning/dashboards.yaml",
    } <= set(sources["stacks/monitoring.yaml"])
