"""Build the native matching core (engine/native.pyx) in place: ``make native`` (run by ``make setup``).

Cython translates native.pyx to C; gcc compiles it with -O3 into
``meridian_hotpath/engine/native.<abi>.so`` beside the sources, where the node, the tools and the
tests import it. The generated C file is kept too (``native.c``), so a host without Cython (the
matching node's bundle, the engine Lambda layer) compiles it with gcc alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent
ENGINE = HERE / "meridian_hotpath" / "engine"
FLAGS = ["-O3", "-fno-strict-aliasing", "-Wno-unused-function", "-Wno-unreachable-code"]


def extension() -> Extension:
    source = ENGINE / "native.pyx"
    generated = ENGINE / "native.c"
    try:
        from Cython.Build import cythonize  # noqa: PLC0415
    except ImportError:  # a host without Cython builds from the generated C file
        if not generated.exists():
            sys.exit("native.c is missing and Cython is not installed: cannot build the native core")
        return Extension(
            "meridian_hotpath.engine.native",
            [str(generated)],
            include_dirs=[str(ENGINE)],
            extra_compile_args=FLAGS,
        )
    (built,) = cythonize(
        [
            Extension(
                "meridian_hotpath.engine.native",
                [str(source)],
                include_dirs=[str(ENGINE)],
                extra_compile_args=FLAGS,
            )
        ],
        compiler_directives={"language_level": 3},
        quiet=True,
    )
    return built


if __name__ == "__main__":
    import os

    os.chdir(HERE)
    setup(name="meridian-native-core", packages=[], ext_modules=[extension()], script_args=sys.argv[1:])
