"""The REST API on http://127.0.0.1:3000: the local API Gateway in front of the real order function.

Requests are SigV4-checked against ``<state_dir>/credentials.json`` (written here with one
principal per user type, so the demo and the CLI can sign), checked against the ``execute-api:Invoke``
policies of the signer's role in the template the platform provisioned (same template, same
environment), turned into REST proxy events and sent to the order function through the Lambda
endpoint, as API Gateway's Lambda proxy integration does. ``GET /ping``, the definition's
unauthenticated MOCK route, is answered by the gateway itself, unsigned, without the function.
The order function's AWS clients (created in this process, where moto runs the function) are
counted: each answer says how many AWS round trips the function waited for (``make demo``).
"""

from __future__ import annotations

import functools
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer

from meridian.iam.sigv4 import load_credentials
from meridian_local.apigw import ApiGateway, serve_in_thread, template_access
from meridian_local.aws_round_trips import RoundTripRecorder

if TYPE_CHECKING:
    from meridian_local.platform import LocalPlatform

ACCOUNT_ID = "123456789012"
ORDERS_FUNCTION = "OrdersApiFunction"


@dataclass(frozen=True)
class LocalUser:
    name: str
    role: str  # the IAM role the user assumes: the template names them meridian-<type>-<environment>
    user_type: str
    account: str | None

    @property
    def principal(self) -> str:
        return f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{self.role}/{self.name}"


LOCAL_USERS = (
    LocalUser("alice", "meridian-trader-dev", "trader", "ACC-ALICE"),
    LocalUser("bob", "meridian-trader-dev", "trader", "ACC-BOB"),
    LocalUser("rita", "meridian-risk-officer-dev", "risk_officer", None),
    LocalUser("carl", "meridian-compliance-officer-dev", "compliance_officer", None),
    LocalUser("otto", "meridian-operator-dev", "operator", None),
)


# A session named "alice" that IAM user mallory asked for: AWS never issues it (the roles' trust
# policies bind the session name to the caller's user name) and the local gateway refuses it the
# same way, which ``make demo`` shows. It is no local user: nothing registers it.
IMPOSTOR = ("mallory-as-alice", "mallory", LOCAL_USERS[0].principal)


def write_credentials(path: Path) -> dict[str, dict[str, str]]:
    """A fresh access key per local user (each session issued to the IAM user of its name), and the
    impostor's; returns name -> {access_key, secret, principal, user}."""
    sessions = [(u.name, u.name, u.principal) for u in LOCAL_USERS] + [IMPOSTOR]
    keys = {
        name: {
            "access_key": f"AKIALOCAL{name.upper().replace('-', ''):0<11}"[:20],
            "secret": secrets.token_urlsafe(30),
            "principal": principal,
            "user": user,
        }
        for name, user, principal in sessions
    }
    document = {
        "access_keys": {
            k["access_key"]: {"secret": k["secret"], "principal": k["principal"], "user": k["user"]}
            for k in keys.values()
        },
        "users": keys,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2))
    path.chmod(0o600)
    return keys


def count_order_api_round_trips() -> RoundTripRecorder:
    """A recorder on every AWS client the order function creates in this process from now on."""
    from orders_api import aws as order_api_aws  # noqa: PLC0415 - the function's own package

    recorder = RoundTripRecorder()
    make = order_api_aws.client

    @functools.cache
    def counted_client(service: str) -> Any:
        client = make(service)
        recorder.attach(client)
        return client

    order_api_aws.client = counted_client
    return recorder


class ApiServer:
    def __init__(self, platform: LocalPlatform, host: str, port: int) -> None:
        self.platform, self.host, self.port = platform, host, port
        self.credentials_path = platform.credentials_file
        self._server: BaseWSGIServer | None = None

    def start(self) -> ApiServer:
        from orders_api.openapi_export import document  # noqa: PLC0415 - the function's own package

        function = self.platform.function(ORDERS_FUNCTION)
        access = template_access(self.platform.config.template, self.platform.config.environment)
        access.require_roles({user.role for user in LOCAL_USERS})
        write_credentials(self.credentials_path)
        self._register_principals(function.environment)
        app = ApiGateway(
            self.platform.invoker(function.name),
            load_credentials(self.credentials_path),
            document,
            access,
            round_trips=count_order_api_round_trips(),
        )
        self._server = serve_in_thread(app, self.host, self.port)
        self.port = self._server.port
        return self

    def _register_principals(self, environment: dict[str, str]) -> None:
        dynamodb = self.platform.client("dynamodb")
        for user in LOCAL_USERS:
            item: dict[str, Any] = {"principal": {"S": user.principal}, "user_type": {"S": user.user_type}}
            if user.account:
                item["account"] = {"S": user.account}
            dynamodb.put_item(TableName=environment["PRINCIPALS_TABLE"], Item=item)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
