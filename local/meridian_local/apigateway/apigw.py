"""API Gateway for the order API on this machine: a WSGI app in front of the real handler.

Each HTTP request is checked like API Gateway's IAM authorization: the SigV4 signature (against a
local credentials file), that the session is one its role's trust policy would have let STS issue
to its user (the session name is the user's own name), then the signer's ``execute-api:Invoke``
permission on the route, from the template's policies of the signer's role (``route_access``); a
refused request is answered 403 in
the API's error shape, as the API's gateway responses do, and never reaches the function. An
allowed one becomes a REST proxy event (v1) whose ``requestContext.identity.userArn`` is the
signer's principal, handed to ``functions/orders_api/app.py``'s ``lambda_handler`` in-process.
A method the definition gives an unauthenticated MOCK integration (``GET /ping``) is answered by
the gateway itself, signed or not, with the mock's status and body; the function is not invoked.
``/openapi.json`` serves the API's document and ``/docs`` Swagger UI, from the assets Powertools
ships (nothing is fetched from the network). Given a ``RoundTripRecorder`` attached to the order
function's AWS clients, each answer carries ``X-Meridian-Aws-Round-Trips``: the sequential AWS
round trips the function waited for (a local diagnostic: exact when requests come one at a time).

Swagger UI's "Try it out" cannot sign SigV4. With ``local_signing`` (the local platform turns it
on; tests and benchmarks leave it off) the docs page offers the local users and sends its calls
under ``/as/<user>/...``: the gateway then acts as that user's signer, taking the user's own
credentials from the local credentials file, and everything after the signature (the session
check, the route's IAM policy, the function) is as for a signed request. A path under ``/as/``
names a user, never an API route, so no signed client can be confused with it.

    python -m meridian_local.apigateway.apigw --port 3000 --credentials local/.state/credentials.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from meridian.iam.sigv4 import LocalCredential, SignatureError, load_credentials, verify
from meridian_local.apigateway.apigw_events import ACCOUNT_ID, API_ID, proxy_event
from meridian_local.apigateway.aws_round_trips import AwsCall, RoundTripRecorder, sequential_round_trips
from meridian_local.apigateway.dashboard import ASSET_TYPES as DASHBOARD_ASSET_TYPES
from meridian_local.apigateway.dashboard import ASSETS as DASHBOARD_ASSETS
from meridian_local.apigateway.dashboard import DashboardSource
from meridian_local.apigateway.dashboard import page as dashboard_page
from meridian_local.apigateway.order_function import load_handler
from meridian_local.apigateway.route_access import AccessDeniedError, RouteAccess, from_template_file
from meridian_local.cloud.sam_template import ROOT_TEMPLATE
from meridian_local.delivery.lambda_events import LocalLambdaContext

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
REGION = "us-east-1"
ORDERS_API = "OrdersApi"  # the REST API's logical id in template.yaml
ROUND_TRIPS_HEADER = "X-Meridian-Aws-Round-Trips"
_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    403: "Forbidden",
    404: "Not Found",
}


def swagger_assets() -> Path | None:
    """The Swagger UI bundle that Powertools ships, when installed."""
    try:
        import aws_lambda_powertools.event_handler.openapi.swagger_ui as swagger  # noqa: PLC0415
    except ImportError:
        return None
    folder = Path(swagger.__file__).parent
    return folder if (folder / "swagger-ui-bundle.min.js").exists() else None


_SIGNING = """
<div style='font-family:sans-serif;padding:8px 16px;background:#f4f6f8;border-bottom:1px solid #ddd'>
<label>Try it out as the local user <select id='meridian-user'>{options}</select></label>
<span style='color:#555'> (make run signs for them: SigV4 cannot be signed in the page)</span></div>
"""
_INTERCEPTOR = (
    "requestInterceptor: (r) => { const u = document.getElementById('meridian-user'); "
    "if (u) { const url = new URL(r.url, window.location.origin); "
    "if (url.origin === window.location.origin && !url.pathname.startsWith('/as/') "
    "&& url.pathname !== '/openapi.json') { url.pathname = '/as/' + u.value + url.pathname; "
    "r.url = url.toString(); } } return r; },"
)


def docs_page(assets: Path | None, signing_users: list[str] | None = None) -> str:
    if assets is None:
        return (
            "<!DOCTYPE html><html><body><h1>Meridian Order API</h1><p>Swagger UI is not installed here. "
            "The OpenAPI document is at <a href='/openapi.json'>/openapi.json</a> "
            "(also docs/api/openapi.json in the repository): open it in any OpenAPI viewer.</p></body></html>"
        )
    picker = ""
    interceptor = ""
    if signing_users:
        options = "".join(f"<option value='{u}'>{u}</option>" for u in signing_users)
        picker, interceptor = _SIGNING.format(options=options), _INTERCEPTOR
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Meridian Order API</title>"
        "<link rel='stylesheet' href='/docs/swagger-ui.min.css'></head>"
        f"<body>{picker}<div id='swagger-ui'></div>"
        "<script src='/docs/swagger-ui-bundle.min.js'></script><script>"
        "window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true, "
        f"{interceptor}}});"
        "</script></body></html>"
    )


class ApiGateway:
    """The WSGI app: SigV4 check, the route's IAM check, proxy event, handler, response."""

    def __init__(
        self,
        handler: Handler,
        credentials: Mapping[str, LocalCredential],
        openapi: Callable[[], Mapping[str, Any]],
        access: RouteAccess,
        region: str = REGION,
        round_trips: RoundTripRecorder | None = None,
        local_signing: bool = False,
        dashboard: DashboardSource | None = None,
    ) -> None:
        self.handler = handler
        self.credentials = dict(credentials)
        self.local_signing = local_signing
        self.dashboard = dashboard
        self.access = access
        self.openapi = openapi
        self.region = region
        self.assets = swagger_assets()
        self.round_trips = round_trips

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        mocked = self.access.gateway_answer(environ["REQUEST_METHOD"], path)
        if mocked is not None:
            return self._send(start_response, mocked.status, mocked.body, mocked.content_type)
        if environ["REQUEST_METHOD"] == "GET" and path in ("/docs", "/docs/", "/openapi.json"):
            if path == "/openapi.json":
                return self._send(
                    start_response, 200, json.dumps(self.openapi()).encode(), "application/json"
                )
            page = docs_page(self.assets, self._signing_users() if self.local_signing else None)
            return self._send(start_response, 200, page.encode(), "text/html; charset=utf-8")
        if path.startswith("/as/"):
            return self._signed_for(environ, start_response, path)
        if (
            self.dashboard is not None
            and environ["REQUEST_METHOD"] == "GET"
            and path.startswith("/dashboard")
        ):
            return self._dashboard(start_response, path)
        if environ["REQUEST_METHOD"] == "GET" and path.startswith("/docs/") and self.assets is not None:
            return self._asset(start_response, path.removeprefix("/docs/"))
        return self._invoke(environ, start_response)

    def _asset(self, start_response: StartResponse, name: str) -> Iterable[bytes]:
        kinds = {"swagger-ui-bundle.min.js": "text/javascript", "swagger-ui.min.css": "text/css"}
        if name not in kinds or self.assets is None:
            return self._error(start_response, 404, "ROUTE_NOT_FOUND", "no such document")
        return self._send(start_response, 200, (self.assets / name).read_bytes(), kinds[name])

    def _dashboard(self, start_response: StartResponse, path: str) -> Iterable[bytes]:
        """The local dashboard (``dashboard``): its page, its data, its vendored chart library."""
        assert self.dashboard is not None
        if path in ("/dashboard", "/dashboard/"):
            return self._send(start_response, 200, dashboard_page().encode(), "text/html; charset=utf-8")
        if path == "/dashboard/data":
            body = json.dumps(self.dashboard.snapshot()).encode()
            return self._send(start_response, 200, body, "application/json", {"Cache-Control": "no-store"})
        name = path.removeprefix("/dashboard/assets/")
        if name in DASHBOARD_ASSET_TYPES:
            return self._send(
                start_response, 200, (DASHBOARD_ASSETS / name).read_bytes(), DASHBOARD_ASSET_TYPES[name]
            )
        return self._error(start_response, 404, "ROUTE_NOT_FOUND", "no such page")

    def _signing_users(self) -> list[str]:
        """The local users the docs page may call as: the ones with their own name as IAM user."""
        return sorted({c.user for c in self.credentials.values() if c.user and c.user in c.principal})

    def _signed_for(
        self, environ: WSGIEnvironment, start_response: StartResponse, path: str
    ) -> Iterable[bytes]:
        """``/as/<user>/<route>``: the request as ``user`` signed it (see the module docstring)."""
        if not self.local_signing:
            return self._error(
                start_response, 403, "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token"
            )
        user, _, rest = path.removeprefix("/as/").partition("/")
        keys = [
            key for key, c in self.credentials.items() if c.user == user and user in self._signing_users()
        ]
        if not keys:
            return self._error(
                start_response, 403, "UNRECOGNIZED_CLIENT", f"no local user {user!r} to sign as"
            )
        inner = dict(environ)
        inner["PATH_INFO"] = "/" + rest
        return self._invoke(inner, start_response, signer=(keys[0], self.credentials[keys[0]].principal))

    def _invoke(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        signer: tuple[str, str] | None = None,
    ) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = [
            (key[5:].replace("_", "-").title(), str(value))
            for key, value in environ.items()
            if key.startswith("HTTP_")
        ]
        if environ.get("CONTENT_TYPE"):
            headers.append(("Content-Type", environ["CONTENT_TYPE"]))
        if environ.get("CONTENT_LENGTH"):
            headers.append(("Content-Length", environ["CONTENT_LENGTH"]))
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        url = f"{environ['wsgi.url_scheme']}://{environ.get('HTTP_HOST', 'localhost')}{raw_uri}"
        try:
            access_key, principal = signer or verify(
                environ["REQUEST_METHOD"], url, dict(headers), body, self.credentials, self.region
            )
        except SignatureError as exc:
            return self._error(start_response, 403, exc.code, exc.message)
        path = environ.get("PATH_INFO") or "/"
        try:
            self.access.check_session(principal, self.credentials[access_key].user)
            self.access.authorize(principal, environ["REQUEST_METHOD"], path)
        except AccessDeniedError as exc:
            return self._error(start_response, 403, exc.code, exc.message)
        event = proxy_event(
            environ["REQUEST_METHOD"],
            path,
            user_arn=principal,
            body=body or None,
            headers=headers,
            query=environ.get("QUERY_STRING", ""),
            source_ip=environ.get("REMOTE_ADDR", "127.0.0.1"),
            access_key=access_key,
        )
        if self.round_trips is None:
            result = self.handler(event, LocalLambdaContext(function_name="OrdersApiFunction"))
            counted: list[AwsCall] | None = None
        else:
            with self.round_trips.request() as counted:
                result = self.handler(event, LocalLambdaContext(function_name="OrdersApiFunction"))
        payload = (result.get("body") or "").encode()
        out_headers = dict(result.get("headers") or {})
        if counted is not None:
            out_headers[ROUND_TRIPS_HEADER] = str(sequential_round_trips(counted))
        for name, values in (result.get("multiValueHeaders") or {}).items():
            out_headers[name] = ", ".join(values)
        status = int(result.get("statusCode", 502))
        return self._send(
            start_response, status, payload, out_headers.pop("Content-Type", "application/json"), out_headers
        )

    def _error(self, start_response: StartResponse, status: int, code: str, message: str) -> Iterable[bytes]:
        body: dict[str, Any] = {"error": code, "message": message, "details": [], "order_id": None}
        return self._send(start_response, status, json.dumps(body).encode(), "application/json")

    @staticmethod
    def _send(
        start_response: StartResponse,
        status: int,
        payload: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> Iterable[bytes]:
        reason = _STATUS_TEXT.get(status, "")
        all_headers = [("Content-Type", content_type), ("Content-Length", str(len(payload)))]
        all_headers += [(k, v) for k, v in (headers or {}).items() if k.lower() != "content-length"]
        start_response(f"{status} {reason}".strip(), all_headers)
        return [payload]


class QuietRequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Tests and benchmarks send thousands of requests: no line per request."""


def serve_in_thread(app: ApiGateway, host: str = "127.0.0.1", port: int = 0) -> BaseWSGIServer:
    """Serve ``app`` from a daemon thread; ``server.port`` is the bound port, ``shutdown()`` stops it."""
    server = make_server(host, port, app, threaded=True, request_handler=QuietRequestHandler)
    threading.Thread(target=server.serve_forever, name="apigw", daemon=True).start()
    return server


def template_access(template: Path = ROOT_TEMPLATE, environment: str = "dev") -> RouteAccess:
    """Who may invoke which route of the local API, as the template's roles say for ``environment``."""
    return from_template_file(template, {"Environment": environment}, ORDERS_API, API_ID, REGION, ACCOUNT_ID)


def default_app(credentials_file: Path) -> ApiGateway:
    """The real handler over the environment's AWS endpoint (moto server under ``make run``)."""
    from orders_api.openapi_export import document  # noqa: PLC0415

    credentials = load_credentials(credentials_file)
    access = template_access()
    access.require_roles({role for c in credentials.values() if (role := access.role_of(c.principal))})
    return ApiGateway(load_handler(), credentials, document, access)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meridian_local.apigateway.apigw", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--credentials", type=Path, required=True, help="local SigV4 credentials (JSON)")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, default_app(args.credentials), threaded=True)
    print(f"order API on http://{args.host}:{server.port} (docs at /docs)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
