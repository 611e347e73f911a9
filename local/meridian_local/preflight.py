"""Checks before the local platform starts: one instance at a time, and free ports."""

from __future__ import annotations

import fcntl
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class PreflightError(RuntimeError):
    """The platform cannot start; the message says why and what to do."""


@dataclass
class InstanceLock:
    """An exclusive lock on ``<state_dir>/run.lock`` held while the platform runs."""

    path: Path
    _handle: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise PreflightError(
                f"Meridian is already running here (pid {owner}). Use that one (`make demo` drives it), "
                f"or stop it with Ctrl-C in its terminal or `kill {owner}`."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def holder(self) -> int | None:
        """The pid of a running platform, or None when none holds the lock."""
        if not self.path.exists():
            return None
        with self.path.open("a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                text = handle.read().strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    """A port free on ``host`` now, for an address that must be known before its server starts (a
    standby's, named in routes and runbooks ahead of its activation). A server that can bind port 0
    and report the port should do that instead: this one may be taken before it is used."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def check_ports(host: str, ports: dict[str, tuple[int, str]]) -> None:
    """``ports`` maps a component to (port, environment variable that moves it)."""
    busy = [(name, port, env) for name, (port, env) in ports.items() if port and not port_is_free(host, port)]
    if busy:
        lines = [
            f"port {port} ({name}) on {host} is in use: stop what holds it "
            f"(`ss -ltnp 'sport = :{port}'` shows it) or choose another with {env}=<port>"
            for name, port, env in busy
        ]
        raise PreflightError("\n".join(lines))
