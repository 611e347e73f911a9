"""Compile the matching engine with mypyc into build/engine_compiled (run by `make engine-compiled`).

The extension modules land in a separate directory, never beside the sources, so tests and the
node keep importing the interpreted ``.py`` files unless a caller puts the build first on sys.path
(``BENCH_MODE=compiled`` does that for the engine benchmark). Run from the repository root, where
pyproject.toml gives mypy the source roots that name the modules ``meridian_hotpath.engine.*``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mypyc.build import mypycify
from setuptools import setup

ENGINE = Path("hotpath/meridian_hotpath/engine")
BUILD = Path("build/engine_compiled")
# The digest of the sources a build was made from: the engine benchmark refuses a stale build.
STAMP = BUILD / "meridian_hotpath" / "engine" / "SOURCES.sha256"


def sources_digest(engine: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(engine.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


setup(
    name="meridian-engine-compiled",
    packages=[],
    ext_modules=mypycify(
        [str(path) for path in sorted(ENGINE.glob("*.py"))],
        opt_level="3",
        debug_level="0",
        target_dir="build/engine_compiled.c",
    ),
)
STAMP.parent.mkdir(parents=True, exist_ok=True)
STAMP.write_text(sources_digest(ENGINE) + "\n")
