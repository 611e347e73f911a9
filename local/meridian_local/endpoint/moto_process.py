"""The local AWS endpoint (``moto_server``) as a process of its own.

For tests and benchmarks that start matching nodes against it: in their own process, moto's threads
would share the GIL with the test's or the benchmark's client threads, and a node's lease renewal,
waiting on it, could run late enough to fence a healthy primary (or the client's CPU figures would
hold moto's work)::

    with moto_process() as endpoint_url:
        ...

The process is stopped by its pid, also when the block fails (``processes.ChildProcess.stop``).
Unlike ``ChildProcess.start``, nothing of its output after the ready line is read: its log goes
nowhere, so no thread here takes the GIL to forward it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

from meridian_local.endpoint.moto_server import READY_PREFIX
from meridian_local.processes import ChildProcess


@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    """Start ``python -m meridian_local.endpoint.moto_server --port 0``; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "meridian_local.endpoint.moto_server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith(READY_PREFIX):
            raise RuntimeError(f"the AWS endpoint did not start: {line!r}")
        yield line.split()[-1]
    finally:
        ChildProcess("aws-endpoint", process).stop(grace=10)  # SIGTERM, then SIGKILL, by its pid
        if process.stdout is not None:
            process.stdout.close()
