"""A matching node as a child process (``python -m meridian_hotpath serve``) on a loopback port."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from meridian_hotpath.app import STARTUP_PREFIX

_PORT = re.compile(r"\bport=(\d+)\b")
STARTUP_TIMEOUT_S = 30.0


@dataclass
class NodeProcess:
    process: subprocess.Popen[str]
    host: str
    port: int
    output: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_node(data_dir: Path, host: str = "127.0.0.1", port: int = 0) -> NodeProcess:
    """Start a node and wait for its startup line (which names the port it bound)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meridian_hotpath",
            "serve",
            "--host",
            host,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    found = threading.Event()
    bound: list[int] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            match = _PORT.search(line)
            if line.startswith(STARTUP_PREFIX) and match and not found.is_set():
                bound.append(int(match.group(1)))
                found.set()

    threading.Thread(target=read, name="matching-node-output", daemon=True).start()
    if not found.wait(STARTUP_TIMEOUT_S) or not bound:
        with contextlib.suppress(OSError):
            process.kill()
        raise RuntimeError("matching node did not start:\n" + "\n".join(lines[-20:]))
    return NodeProcess(process, host, bound[0], lines)
