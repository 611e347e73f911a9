"""Run a template's custom resources locally the way CloudFormation does.

CloudFormation invokes the ServiceToken function with a Create request whose ``ResponseURL`` is a
pre-signed S3 URL, then waits for the function to PUT its answer there. Here the URL is a one-shot
HTTP server on loopback; the function runs through the Lambda endpoint (in-process handlers).
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from meridian_local.cloud.stack_model import CustomResource


class CustomResourceError(RuntimeError):
    """The custom resource answered FAILED, or never answered."""


class _Capture(HTTPServer):
    body: dict[str, Any] | None = None
    answered: threading.Event


class _Handler(BaseHTTPRequestHandler):
    server: _Capture

    def do_PUT(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.body = json.loads(self.rfile.read(length) or b"{}")
        self.send_response(200)
        self.end_headers()
        self.server.answered.set()

    def log_message(self, format: str, *args: Any) -> None:
        return


def create(
    lambda_client: Any, resource: CustomResource, stack_id: str, timeout_s: float = 60.0
) -> dict[str, Any]:
    """Send a Create request for ``resource``; return the response's Data or raise."""
    server = _Capture(("127.0.0.1", 0), _Handler)
    server.answered = threading.Event()
    thread = threading.Thread(target=server.serve_forever, name="cfn-response", daemon=True)
    thread.start()
    try:
        properties = dict(resource.properties)
        event = {
            "RequestType": "Create",
            "ResponseURL": f"http://127.0.0.1:{server.server_address[1]}/response",
            "StackId": stack_id,
            "RequestId": str(uuid.uuid4()),
            "ResourceType": "Custom::Local",
            "LogicalResourceId": resource.logical_id,
            "ResourceProperties": properties,
        }
        function = (
            resource.service_token.rsplit(":", 1)[-1]
            if ":function:" in resource.service_token
            else (resource.service_token)
        )
        result = lambda_client.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        if result.get("FunctionError"):
            raise CustomResourceError(f"{resource.logical_id}: {result['Payload'].read().decode()[:500]}")
        if not server.answered.wait(timeout_s):
            raise CustomResourceError(f"{resource.logical_id}: no response within {timeout_s:.0f} s")
        body = server.body or {}
        if body.get("Status") != "SUCCESS":
            raise CustomResourceError(
                f"{resource.logical_id}: {body.get('Reason', 'FAILED without a reason')}"
            )
        data: dict[str, Any] = body.get("Data") or {}
        return data
    finally:
        server.shutdown()
        server.server_close()
