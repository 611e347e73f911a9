"""Hold branch coverage of the hot path, the layer and the order API at or above their floors.

``make test`` runs pytest with pytest-cov (``.coverage``), then ``python -m tests.coverage_floor``:
each package's coverage (statements and branches, as ``coverage report`` counts them) must reach
its floor in ``tests/coverage-floor.json``, or the run fails (exit 1) naming the package.
``--raise`` lifts each floor to what was just measured, less ``TOLERANCE`` (the retry and timeout
paths some tests reach on a loaded machine and not on a quiet one); it never lowers one, so a floor
only goes up.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ROOT / "tests" / "coverage-floor.json"
TOLERANCE = 0.5  # percentage points


def measured(data_file: Path, packages: list[str]) -> dict[str, float]:
    cov = coverage.Coverage(data_file=str(data_file), config_file=str(ROOT / "pyproject.toml"))
    cov.load()
    return {
        package: float(cov.report(include=[str(ROOT / package / "*")], file=io.StringIO()))
        for package in packages
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.coverage_floor", description=__doc__)
    parser.add_argument("--data-file", type=Path, default=ROOT / ".coverage")
    parser.add_argument("--raise", dest="lift", action="store_true", help="lift the floors to this run")
    args = parser.parse_args(argv)
    if not args.data_file.exists():
        print(f"no coverage data at {args.data_file}: run pytest with --cov first", file=sys.stderr)
        return 2
    floors: dict[str, float] = json.loads(FLOORS.read_text())
    now = measured(args.data_file, sorted(floors))
    failed = []
    print(f"{'coverage floor (statements + branches)':44}{'measured':>10}{'floor':>8}")
    for package, floor in sorted(floors.items()):
        verdict = "ok" if now[package] >= floor else "BELOW FLOOR"
        print(f"  {package:42}{now[package]:>9.1f}%{floor:>7.1f}%  {verdict}")
        if now[package] < floor:
            failed.append(package)
    if args.lift:
        lifted = {p: max(f, math.floor(round((now[p] - TOLERANCE) * 10, 6)) / 10) for p, f in floors.items()}
        FLOORS.write_text(json.dumps(lifted, indent=2, sort_keys=True) + "\n")
        print(f"floors now {lifted} ({FLOORS.relative_to(ROOT)})")
    if failed:
        print(f"coverage fell below its floor in {', '.join(failed)}: add the missing tests", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
