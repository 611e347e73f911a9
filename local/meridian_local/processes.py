"""The local platform's own processes (the AWS endpoint, the API workers, event delivery).

``ChildProcess.start`` runs ``python -m <module> ...`` with this interpreter, waits for the line
that says it is ready, then forwards every later line of its output to ``say`` (the ``make run``
terminal) from a reader thread. ``stop`` ends it by its process id: SIGTERM, then SIGKILL after
the grace period; the stop of the platform never leaves one behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

Say = Callable[[str], None]


class ChildProcessError(RuntimeError):
    """A child process exited or stayed silent before it was ready."""


@dataclass
class ChildProcess:
    name: str
    process: subprocess.Popen[str]
    ready_line: str = ""
    _reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(
        cls,
        name: str,
        module: str,
        args: Sequence[str],
        ready_prefix: str,
        say: Say,
        *,
        env: Mapping[str, str] | None = None,
        pass_fds: Sequence[int] = (),
        timeout: float = 60.0,
        command: Sequence[str] | None = None,
    ) -> ChildProcess:
        """``python -m module args``, or ``command`` + ``args`` when given (another program)."""
        environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        argv = [*command, *args] if command is not None else [sys.executable, "-m", module, *args]
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment,
            pass_fds=tuple(pass_fds),
            start_new_session=True,  # Ctrl-C reaches the platform, which stops its children in order
        )
        child = cls(name, process)
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        early: list[str] = []
        while True:
            line = process.stdout.readline()
            if not line:
                code = process.wait(timeout=5)
                detail = "".join(early[-20:]).rstrip()
                raise ChildProcessError(f"{name} exited ({code}) before it was ready:\n{detail}")
            if line.startswith(ready_prefix) or (command is not None and ready_prefix in line):
                child.ready_line = line.strip()
                break
            early.append(line)
            if time.monotonic() > deadline:
                child.stop()
                raise ChildProcessError(f"{name} was not ready in {timeout:.0f} s")
        for line in early:  # what it said while starting: warnings belong on the terminal too
            say(line.rstrip("\n"))
        child._reader = threading.Thread(
            target=child._forward, args=(say,), name=f"{name}-output", daemon=True
        )
        child._reader.start()
        return child

    def _forward(self, say: Say) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            say(line.rstrip("\n"))

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 20.0) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code."""
        if self.process.poll() is None:
            with _suppress_missing():
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with _suppress_missing():
                    os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return int(self.process.returncode)


class _suppress_missing:  # noqa: N801 - used as a statement, like contextlib.suppress
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> bool:
        return kind is ProcessLookupError
