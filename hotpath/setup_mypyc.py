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
MODULES = ["__init__.py", "base.py", "book.py", "core.py", "state.py", "reference.py"]

setup(
    name="meridian-engine-compiled",
    packages=[],
    ext_modules=mypycify(
        [str(ENGINE / name) for name in MODULES if (ENGINE / name).exists()],
        opt_level="3",
        debug_level="0",
        target_dir="build/engine_compiled.c",
    ),
)
