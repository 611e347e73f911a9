"""One worker of the local REST API: the local API Gateway and the order function, in one process.

``make run`` starts several (``MERIDIAN_API_WORKERS``, default 8) on one listening socket the
platform binds and hands down (``--fd``): the kernel gives each connection to one of them, as API
Gateway spreads requests over Lambda's containers. A worker serves one request at a time, as a
Lambda container runs one invocation at a time: the function's module-level state (its Powertools
resolver holds the current event) is never shared between two requests in flight.

    python -m meridian_local.apigateway.api_worker --spec <state>/api.json --fd 3 --name api-1

The spec (written by ``LocalPlatform``) names the order function's environment, the credentials
file, the template and environment whose IAM policies the gateway enforces, and the log file the
function's JSON logs and EMF metrics go to. Each request is one line on stdout (method, path,
status, milliseconds, user); the worker prints ``meridian-api ready <name>`` once it serves.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

from werkzeug.serving import BaseWSGIServer, make_server

from meridian.iam.sigv4 import load_credentials
from meridian_local.apigateway.apigw import ApiGateway, QuietRequestHandler, template_access
from meridian_local.apigateway.aws_round_trips import count_order_api_round_trips
from meridian_local.apigateway.dashboard import DashboardSource
from meridian_local.apigateway.order_function import load_handler
from meridian_local.delivery.function_logs import FunctionLogs

READY_PREFIX = "meridian-api ready"


class RequestLine:
    """WSGI middleware: one concise line per request (method, path, status, ms, user)."""

    def __init__(self, app: ApiGateway, say: Any, users: dict[str, str]) -> None:
        self.app, self.say, self.users = app, say, users

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        began = time.perf_counter()
        status: list[str] = []

        def recording(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code.split()[0])
            return start_response(code, headers, exc_info)

        body = list(self.app(environ, recording))
        path = environ.get("PATH_INFO", "/")
        if not path.startswith("/docs/") and path != "/dashboard/data":
            elapsed = (time.perf_counter() - began) * 1000
            key = str(environ.get("HTTP_AUTHORIZATION", "")).split("Credential=")[-1].split("/")[0]
            user = self.users.get(key, "-")
            query = f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else ""
            code = status[0] if status else "-"
            self.say(f"{environ['REQUEST_METHOD']:<6} {path}{query} {code} {elapsed:.1f} ms {user}")
        return body


def build_app(spec: dict[str, Any]) -> tuple[ApiGateway, dict[str, str]]:
    """The gateway over the order function loaded here, with the function's environment."""
    os.environ.update({str(k): str(v) for k, v in spec["environment"].items()})
    # A worker starts before any request reaches it, as a container of provisioned concurrency
    # does (OrdersApiProvisionedConcurrency); Lambda tells the code so during such an init.
    os.environ.setdefault("AWS_LAMBDA_INITIALIZATION_TYPE", "provisioned-concurrency")
    from orders_api.openapi_export import document  # noqa: PLC0415 - after the function's environment

    credentials = load_credentials(Path(spec["credentials"]))
    access = template_access(Path(spec["template"]), spec["stage_environment"])
    app = ApiGateway(
        load_handler(),
        credentials,
        document,
        access,
        round_trips=count_order_api_round_trips(),
        local_signing=True,  # Swagger UI's "Try it out" as a local user (apigw docstring)
        dashboard=DashboardSource(
            spec["metrics_url"], Path(spec["log_file"]), str(spec["environment"].get("DATABASE_URL", ""))
        ),
    )
    users = {key: c.user or "-" for key, c in credentials.items()}
    return app, users


def serve(spec_path: Path, fd: int, name: str) -> int:
    spec = json.loads(spec_path.read_text())
    logs = FunctionLogs(Path(spec["log_file"]))
    logs.install()
    app, users = build_app(spec)

    def say(line: str) -> None:
        logs.say(f"[{name}] {line}")

    listener = socket.socket(fileno=fd)
    host, port = listener.getsockname()[:2]
    server: BaseWSGIServer = make_server(
        host, port, RequestLine(app, say, users), threaded=False, request_handler=QuietRequestHandler, fd=fd
    )
    stopped = {"yes": False}

    def stop(signum: int, frame: FrameType | None) -> None:
        if not stopped["yes"]:
            stopped["yes"] = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    logs.say(f"{READY_PREFIX} {name}")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        logs.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m meridian_local.apigateway.api_worker", description=__doc__
    )
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--fd", type=int, required=True, help="the listening socket, inherited")
    parser.add_argument("--name", default="api")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return serve(args.spec, args.fd, args.name)


if __name__ == "__main__":
    sys.exit(main())
