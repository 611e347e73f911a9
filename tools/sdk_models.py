"""Generate the client SDK's models (``clients/meridian_client/models.py``) from the API contract.

``python -m tools.sdk_models`` rewrites the file from ``docs/api/openapi.json`` (``make openapi``
does both); ``--check`` exits 1 when the committed file is not what the contract generates, which
the tests run, so the SDK cannot fall behind the routes. The generator is datamodel-code-generator;
its output is formatted by ruff like the rest of the code.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "docs" / "api" / "openapi.json"
MODELS = ROOT / "clients" / "meridian_client" / "models.py"
HEADER = (
    '"""Models of the Meridian order API, generated from docs/api/openapi.json by `make openapi`\n'
    '(tools/sdk_models.py, datamodel-code-generator): do not edit by hand."""'
)
OPTIONS = [
    "--input-file-type",
    "openapi",
    "--output-model-type",
    "pydantic_v2.BaseModel",
    "--base-class",
    "meridian_client.base.ApiModel",
    "--target-python-version",
    "3.11",
    "--use-annotated",
    "--field-constraints",
    "--use-standard-collections",
    "--use-union-operator",
    "--enum-field-as-literal",
    "all",
    "--use-double-quotes",
    "--disable-timestamp",
    "--formatters",
    "builtin",
    "--custom-file-header",
    HEADER,
]


def generate(contract: Path = CONTRACT) -> str:
    """The models module the contract gives, formatted as the repository formats code."""
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "models.py"
        subprocess.run(  # noqa: S603 - the venv's own generator on the repository's contract
            [str(bin_dir / "datamodel-codegen"), "--input", str(contract), "--output", str(out), *OPTIONS],
            check=True,
            capture_output=True,
            timeout=120,
        )
        for command in (["check", "--fix", "--quiet", "--exit-zero"], ["format", "--quiet"]):
            subprocess.run(  # noqa: S603 - the venv's ruff on the generated file
                [str(bin_dir / "ruff"), *command, "--config", str(ROOT / "pyproject.toml"), str(out)],
                check=True,
                capture_output=True,
                timeout=60,
            )
        return out.read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed models are stale")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        if MODELS.read_text() != text:
            print(f"{MODELS.relative_to(ROOT)} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    MODELS.write_text(text)
    print(f"wrote {MODELS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
