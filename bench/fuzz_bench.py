"""The native frame decoder's fuzz, long: malformed and random bytes into ``MatchingEngine.feed``.

Runs tests/unit/engine/test_engine_frames.py's fuzz property with ``BENCH_FUZZ_EXAMPLES`` examples
(default 50000; ``make test`` runs 300): every input must stop where and why the Python protocol
decoder says, never crash, and leave the engine's state whole. Prints a line and writes
``BENCH_OUT`` (default bench/results/fuzz.json). Exits 1 when a counterexample is found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    examples = int(os.environ.get("BENCH_FUZZ_EXAMPLES", "50000"))
    out = Path(os.environ.get("BENCH_OUT", str(ROOT / "bench" / "results" / "fuzz.json")))
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-cov",
         "tests/unit/engine/test_engine_frames.py", "-k", "any_bytes"],
        cwd=ROOT, env={**os.environ, "BENCH_FUZZ_EXAMPLES": str(examples)}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    passed = result.returncode == 0
    print(
        f"native frame fuzz: {examples} examples in {seconds:.1f} s: {'no failure' if passed else 'FAILED'}"
    )
    if not passed:
        print(result.stdout[-4000:])
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"examples": examples, "seconds": round(seconds, 1), "passed": passed}
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
