"""Build the native parts of the matching node in place: ``make setup`` runs it.

* ``meridian_hotpath/engine/native.pyx``: the matching core;
* ``meridian_hotpath/journal_sync.pyx``: the journal's syncer thread;
* ``meridian_hotpath/replica_receiver.pyx``: a standby's receive thread (it cimports the syncer).

Cython translates each to C and gcc compiles it with -O3 beside its sources, where the node, the
tools and the tests import it. The generated C files stay beside the sources too, so a host without
Cython (the matching node's bundle, the engine Lambda layer) builds them with gcc alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "meridian_hotpath"
FLAGS = ["-O3", "-fno-strict-aliasing", "-Wno-unused-function", "-Wno-unreachable-code", "-Wno-sign-compare"]
MODULES = {
    "meridian_hotpath.engine.native": PACKAGE / "engine" / "native.pyx",
    "meridian_hotpath.journal_sync": PACKAGE / "journal_sync.pyx",
    "meridian_hotpath.replica_receiver": PACKAGE / "replica_receiver.pyx",
}


def extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize  # noqa: PLC0415
    except ImportError:  # a host without Cython builds from the generated C files
        built = []
        for name, source in MODULES.items():
            generated = source.with_suffix(".c")
            if not generated.exists():
                sys.exit(f"{generated} is missing and Cython is not installed: cannot build {name}")
            built.append(
                Extension(name, [str(generated)], include_dirs=[str(source.parent)], extra_compile_args=FLAGS)
            )
        return built
    return list(
        cythonize(
            [
                Extension(name, [str(source)], include_dirs=[str(source.parent)], extra_compile_args=FLAGS)
                for name, source in MODULES.items()
            ],
            compiler_directives={"language_level": 3},
            include_path=[str(HERE)],
            quiet=True,
        )
    )


if __name__ == "__main__":
    os.chdir(HERE)
    setup(name="meridian-native", packages=[], ext_modules=extensions(), script_args=sys.argv[1:])
