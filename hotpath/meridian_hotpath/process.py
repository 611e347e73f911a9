"""Start a matching node as a child process and read its startup line (local runs, drills, benches)."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from meridian_hotpath.app import STARTUP_PREFIX

_STARTUP = re.compile(
    re.escape(STARTUP_PREFIX)
    + r" host=(?P<host>\S+) port=(?P<port>\d+) metrics_port=(?P<metrics>\d+|off) seq=(?P<seq>\d+)"
)


class NodeStartError(Exception):
    """The node exited or stayed silent instead of announcing itself."""


AUTH_FLAGS = frozenset({"--auth-keys-file", "--auth-secret-arns", "--no-auth"})


@dataclass
class NodeProcess:
    process: subprocess.Popen[str]
    host: str
    port: int
    metrics_port: int | None
    seq: int  # the seq it recovered on startup
    log_path: Path

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *extra_args: str,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> NodeProcess:
        """``python -m meridian_hotpath serve --port 0 --data-dir DATA_DIR [extra args]``; without
        ``--auth-keys-file`` or ``--auth-secret-arns`` among them, an open port (``--no-auth``)."""
        if not AUTH_FLAGS.intersection(extra_args):
            extra_args = (*extra_args, "--no-auth")
        log_path = log_path or data_dir.with_name(data_dir.name + ".log")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "meridian_hotpath",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
        ]
        with open(log_path, "a") as log:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [*command, *extra_args],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # its own process group: the node and its journal follower
            )
        assert process.stdout is not None
        line = _read_line(process.stdout, timeout)
        match = _STARTUP.search(line)
        if match is None:
            process.kill()
            process.wait()
            raise NodeStartError(f"node did not start (exit {process.returncode}); see {log_path}: {line!r}")
        metrics = match["metrics"]
        return cls(
            process,
            match["host"],
            int(match["port"]),
            None if metrics == "off" else int(metrics),
            int(match["seq"]),
            log_path,
        )

    def kill(self) -> None:
        """SIGKILL to the node and its journal follower, as a host crash would: no flush, no final
        snapshot, no further delivery; what is durable is what the journal fsynced."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def kill_node_only(self) -> None:
        """SIGKILL to the matching process alone: its follower goes on delivering what is durable."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def pause(self, timeout: float = 10.0) -> None:
        """SIGSTOP the matching process and wait until every one of its threads has stopped. The
        signal returns at once, but the group stop starts only when one of the threads runs to take
        it: until then the others (the standby's native receiver) go on, e.g. acknowledging."""
        os.kill(self.process.pid, signal.SIGSTOP)
        tasks = Path(f"/proc/{self.process.pid}/task")
        deadline = time.monotonic() + timeout
        while not all(_stopped(task) for task in tasks.iterdir()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"node {self.process.pid} did not stop within {timeout} s")
            time.sleep(0.001)

    def resume(self) -> None:
        """SIGCONT: a paused node goes on."""
        os.kill(self.process.pid, signal.SIGCONT)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM: graceful shutdown; return the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Whatever state it is in: SIGCONT (a paused node cannot stop), SIGTERM (a clean stop, which
        also writes its coverage data), SIGKILL to its group if it hangs, its pipe closed."""
        if self.process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired, ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)
                self.terminate(timeout)
        self.__exit__(None, None, None)

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.process.poll() is None:
            self.kill()
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # a follower still delivering
        if self.process.stdout is not None:
            self.process.stdout.close()


def _stopped(task: Path) -> bool:
    """Whether a thread (``/proc/<pid>/task/<tid>``) is stopped; one that exited counts as stopped."""
    try:
        stat = (task / "stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "tT"


def _read_line(stream: IO[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return ""
        ready, _, _ = select.select([stream], [], [], remaining)
        if ready:
            return stream.readline()  # the node prints its startup line whole, with a flush
