"""Compile the matching engine with mypyc into build/engine_compiled (run by `make engine-compiled`).

The extension modules land in a separate directory, never beside the sources, so tests and the
node keep importing the interpreted ``.py`` files unless a caller puts the build first on sys.path
(``BENCH_MODE=compiled`` does that for the engine benchmark). Run from the repository root, where
pyproject.toml gives mypy the source roots that name the modules ``meridian_hotpath.engine.*``.
"""

from __future__ import annotations

from pathlib import Path

from mypyc.build import mypycify
from setuptools import setup

ENGINE = Path("hotpath/meridian_hotpath/engine")

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
