"""The published protocol document is the models' own schema."""

from __future__ import annotations

from pathlib import Path

from meridian_gateway.schema import main, render

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "api" / "streaming.schema.json"


def test_the_published_schema_matches_the_models() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == render(), "run: python -m meridian_gateway.schema"


def test_the_schema_command_writes_the_document(tmp_path: Path) -> None:
    assert main([str(tmp_path / "schema.json")]) == 0
    assert (tmp_path / "schema.json").read_text(encoding="utf-8") == render()
