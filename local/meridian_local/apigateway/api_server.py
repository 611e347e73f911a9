"""The REST API on http://127.0.0.1:3000: the local API Gateway in front of the real order function.

Requests are SigV4-checked against ``<state_dir>/credentials.json`` (written here with one
principal per user type, so the demo and the CLI can sign), checked against the ``execute-api:Invoke``
policies of the signer's role in the template the platform provisioned (same template, same
environment), turned into REST proxy events and handed to the order function, as API Gateway's
Lambda proxy integration does. ``GET /ping``, the definition's unauthenticated MOCK route, is
answered by the gateway itself, unsigned, without the function.

The platform binds the port and starts ``MERIDIAN_API_WORKERS`` worker processes on it
(``api_worker``): each runs the gateway and the function, one request at a time, as one Lambda
container does, and counts the function's AWS clients (each answer says how many AWS round trips
the function waited for: ``make demo``).
"""

from __future__ import annotations

import json
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meridian_local.apigateway import api_worker
from meridian_local.apigateway.apigw import template_access
from meridian_local.processes import ChildProcess

if TYPE_CHECKING:
    from meridian_local.settings import PlatformView

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


class ApiServer:
    """The local REST API: a listening socket and ``workers`` processes serving it (``api_worker``)."""

    def __init__(self, platform: PlatformView, host: str, port: int, workers: int = 2) -> None:
        self.platform, self.host, self.port, self.workers = platform, host, port, max(1, workers)
        self.credentials_path = platform.credentials_file
        self._socket: socket.socket | None = None
        self._children: list[ChildProcess] = []

    def start(self) -> ApiServer:
        function = self.platform.function(ORDERS_FUNCTION)
        access = template_access(self.platform.config.template, self.platform.config.environment)
        access.require_roles({user.role for user in LOCAL_USERS})
        write_credentials(self.credentials_path)
        self._register_principals(function.environment)
        spec_file = self.platform.config.state_dir / "api.json"
        spec = {
            "environment": {
                **function.environment,
                "AWS_LAMBDA_FUNCTION_NAME": function.name,
                "AWS_ENDPOINT_URL": self.platform.endpoints.aws,
            },
            "credentials": str(self.credentials_path),
            "template": str(self.platform.config.template),
            "stage_environment": self.platform.config.environment,
            "log_file": str(self.platform.logs_dir / "orders-api.log"),
            "metrics_url": self.platform.endpoints.metrics,
        }
        spec_file.write_text(json.dumps(spec, indent=2))
        listener = socket.create_server((self.host, self.port), backlog=256)
        listener.set_inheritable(True)
        self._socket = listener
        self.port = listener.getsockname()[1]
        try:
            for n in range(1, self.workers + 1):
                self._children.append(
                    ChildProcess.start(
                        f"api-{n}",
                        "meridian_local.apigateway.api_worker",
                        ["--spec", str(spec_file), "--fd", str(listener.fileno()), "--name", f"api-{n}"],
                        api_worker.READY_PREFIX,
                        self.platform.say,
                        env=self.platform.child_environment(),
                        pass_fds=[listener.fileno()],
                    )
                )
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pids(self) -> list[int]:
        return [child.pid for child in self._children]

    def _register_principals(self, environment: dict[str, str]) -> None:
        dynamodb = self.platform.client("dynamodb")
        for user in LOCAL_USERS:
            item: dict[str, Any] = {"principal": {"S": user.principal}, "user_type": {"S": user.user_type}}
            if user.account:
                item["account"] = {"S": user.account}
            dynamodb.put_item(TableName=environment["PRINCIPALS_TABLE"], Item=item)

    def stop(self) -> None:
        for child in self._children:
            child.stop(grace=10)
        self._children = []
        if self._socket is not None:
            self._socket.close()
            self._socket = None
