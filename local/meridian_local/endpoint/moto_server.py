"""moto in server mode on loopback, executing state machines and running the real Lambda handlers.

In-process (tests, the local platform)::

    with MotoServer() as moto:            # a port the OS picks on 127.0.0.1 (moto.port)
        boto3.client("sqs", endpoint_url=moto.endpoint_url)

As its own process (the adapter is installed there, where the functions run)::

    python -m meridian_local.endpoint.moto_server --port 5000 [--template template.yaml] \
        [--log-file functions.log]

which prints ``meridian-moto ready http://127.0.0.1:5000`` once it serves, configured (``--port 0``:
the OS picks the port when the server binds, and that line names it).

Either way the server sets ``MOTO_PORT`` (moto's Step Functions interpreter calls the other
services through it), turns on ``stepfunctions.execute_state_machine`` through ``/moto-api/config``,
makes moto behave like AWS where the runbooks depend on it (``moto_fidelity``) and replaces moto's
Lambda runtime with the repository's handlers (``lambda_adapter``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import urllib.request
from pathlib import Path
from types import FrameType, TracebackType

from meridian_local.delivery import lambda_adapter
from meridian_local.delivery.function_logs import FunctionLogs
from meridian_local.endpoint import moto_fidelity, moto_speed, moto_transactions

HOST = "127.0.0.1"
READY_PREFIX = "meridian-moto ready"  # the process's first stdout line, once it serves configured
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}}

log = logging.getLogger(__name__)


def configure(endpoint_url: str, config: dict[str, object] | None = None) -> None:
    """POST moto's runtime configuration (state machine execution on)."""
    body = json.dumps(config or MOTO_CONFIG).encode()
    request = urllib.request.Request(  # noqa: S310 - a loopback http URL we built
        f"{endpoint_url}/moto-api/config",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        if response.status not in (200, 201):
            raise RuntimeError(f"moto refused its configuration: HTTP {response.status}")


def reset(endpoint_url: str) -> None:
    """Drop every resource moto holds (between test modules)."""
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass


class MotoServer:
    """A moto server thread in this process, with the Lambda adapter installed."""

    def __init__(
        self,
        port: int = 0,
        host: str = HOST,
        template: Path = lambda_adapter.ROOT_TEMPLATE,
        registry: lambda_adapter.HandlerRegistry | None = None,
    ) -> None:
        self.host = host
        self.port = port  # 0: the OS picks one when the server binds (read back in start)
        self.template = template
        self.registry = registry
        self._server: object | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MotoServer:
        # Before any boto3 session exists, so every session reads the per-invocation environment.
        lambda_adapter.thread_local_environ()
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        from moto.server import ThreadedMotoServer  # noqa: PLC0415 - heavy; only when a server starts

        server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        server.start()  # returns once the socket is bound and listening
        self._server = server
        self.port = server.get_host_and_port()[1]
        os.environ["MOTO_PORT"] = str(self.port)  # moto's state machines call the services through it
        if self.registry is None:
            self.registry = lambda_adapter.HandlerRegistry(lambda_adapter.template_functions(self.template))
        lambda_adapter.install(self.registry, self.endpoint_url)
        moto_fidelity.install()
        moto_transactions.install()
        moto_speed.install()
        configure(self.endpoint_url)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            lambda_adapter.uninstall()
            server.stop()  # type: ignore[attr-defined]
            # ThreadedMotoServer.stop ends the serve loop but leaves the socket listening: a late
            # call would connect and wait out botocore's read timeout. Closed, it is refused at once.
            wsgi = getattr(server, "_server", None)
            if wsgi is not None:
                wsgi.server_close()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m meridian_local.endpoint.moto_server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("MOTO_PORT", "5000")))
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--template", type=Path, default=lambda_adapter.ROOT_TEMPLATE)
    parser.add_argument(
        "--log-file", type=Path, help="where the functions it runs write their JSON logs and EMF metrics"
    )
    args = parser.parse_args(argv)
    logs = FunctionLogs(args.log_file).install() if args.log_file is not None else None
    # With a log file (make run) the terminal gets warnings only: request lines come from the API.
    logging.basicConfig(
        level=logging.WARNING if logs else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    server = MotoServer(port=args.port, host=args.host, template=args.template).start()
    registry = server.registry
    known = sorted(registry.sources) if registry is not None else []
    log.info("moto on %s; functions from the template: %s", server.endpoint_url, ", ".join(known) or "none")
    ready = f"{READY_PREFIX} {server.endpoint_url}"
    if logs is not None:
        logs.say(ready)
    else:
        print(ready, flush=True)
    stopped = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stopped.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
