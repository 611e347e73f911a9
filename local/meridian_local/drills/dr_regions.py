"""The DR drill's two regions on one moto server: what each deploy would run, stood up locally.

The primary (us-east-1, as prod): its stack (global tables with replicas in us-west-2, the health
signal forwarded to us-west-2), a matching node publishing market data and its drop copy to Kinesis,
the market-data function consuming the first, the order API behind the local API Gateway, and the
ledger with its read replica. The recovery region (us-west-2, as dr): its stack (no tables of its
own, the automatic failover trigger, the failover runbook), the engine-state bucket, the RDS
replica, the Route 53 records, and its order API, whose matching node starts when the runbook
activates it. Users are registered for both regions' roles, in the primary (the table replicates).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.credentials import Credentials
from werkzeug.serving import BaseWSGIServer

from meridian.iam.sigv4 import LocalCredential
from meridian_client.api import MeridianClient
from meridian_local.apigateway.apigw import ApiGateway, serve_in_thread
from meridian_local.apigateway.apigw_events import API_ID
from meridian_local.apigateway.route_access import from_template_file
from meridian_local.cloud.runbook_stack import ACCOUNT, RunbookStack
from meridian_local.cloud.sam_template import ROOT_TEMPLATE
from meridian_local.delivery.lambda_events import lambda_invoker
from meridian_local.drills.dr_orders import register_principal

PRIMARY_REGION, DR_REGION = "us-east-1", "us-west-2"
TRADERS = (("alice", "ACC-ALICE"), ("bob", "ACC-BOB"))


def principal(environment: str, user: str) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/meridian-trader-{environment}/{user}"


@dataclass
class RegionApi:
    """One region's order API on loopback, and a signed client per trader."""

    server: BaseWSGIServer
    url: str
    clients: dict[str, MeridianClient] = field(default_factory=dict)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_order_api(stack: RunbookStack) -> RegionApi:
    """The stack's OrdersApiFunction behind the local API Gateway, checked against the stack's roles."""
    from orders_api.openapi_export import document  # noqa: PLC0415 - the function's own package

    access = from_template_file(
        ROOT_TEMPLATE, {"Environment": stack.environment}, "OrdersApi", API_ID, stack.region, ACCOUNT
    )
    keys = {
        user: (f"AKIADR{user.upper()}{stack.environment.upper()}"[:20], secrets.token_urlsafe(24))
        for user, _ in TRADERS
    }
    credentials = {  # each session issued to the IAM user of its name, as the roles' trust policies require
        access_key: LocalCredential(secret, principal(stack.environment, user), user=user)
        for user, (access_key, secret) in keys.items()
    }
    lambda_client = stack.client("lambda")
    function = stack.refs["OrdersApiFunction"]

    def invoke(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        answer = lambda_client.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        payload: dict[str, Any] = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError"):
            raise RuntimeError(f"the order API failed: {payload}")
        return payload

    server = serve_in_thread(ApiGateway(invoke, credentials, document, access, region=stack.region))
    url = f"http://127.0.0.1:{server.port}"
    clients = {
        user: MeridianClient(url, Credentials(access_key, secret), region=stack.region)
        for user, (access_key, secret) in keys.items()
    }
    return RegionApi(server, url, clients)


def register_traders(primary: RunbookStack, environments: tuple[str, ...]) -> None:
    """Each trader's role session of every region, written in the primary (replicated to the other)."""
    for environment in environments:
        for user, account in TRADERS:
            register_principal(primary, principal(environment, user), "trader", account)


def invoker(stack: RunbookStack, logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
    """Call one of the stack's functions through the Lambda endpoint, as a mapping does."""
    return lambda_invoker(stack.client("lambda"), stack.refs[logical_id])


def engine_state_bucket(stack: RunbookStack, name: str) -> str:
    s3 = stack.client("s3")
    location = (
        {}
        if stack.region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": stack.region}}
    )
    s3.create_bucket(Bucket=name, **location)
    return name


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=str))
