"""The order API's tables, principals and collaborators for local runs, tests and benchmarks.

The table layouts mirror the ``# ---- order API ----`` section of template.yaml (keys, indexes,
TTL). ``EngineGateway`` runs the real matching engine in-process for tests that need no node.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from orders_api.config import Settings
from orders_api.dal.hotpath import MatchingGateway, NodeAnswer
from orders_api.dal.interfaces import LedgerReader, PositionRow, TradePageRows
from orders_api.services import Services, default_instruments

from meridian.domain import DEFAULT_INSTRUMENTS, Instrument
from meridian.protocol import Message
from meridian_hotpath.engine import MatchingEngine

ACCOUNT_ID = "123456789012"
FUNCTION_DIR = Path(__file__).resolve().parents[2] / "functions" / "orders_api"
_HANDLER_MODULE = "orders_api_app"
_S, _HASH, _RANGE = "S", "HASH", "RANGE"


def load_handler() -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """``functions/orders_api/app.py``'s ``lambda_handler`` (every function has an ``app`` module, so
    it is loaded by path under its own name)."""
    module = sys.modules.get(_HANDLER_MODULE)
    if module is None:
        spec = importlib.util.spec_from_file_location(_HANDLER_MODULE, FUNCTION_DIR / "app.py")
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {FUNCTION_DIR / 'app.py'}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[_HANDLER_MODULE] = module
        spec.loader.exec_module(module)
    handler: Callable[[dict[str, Any], Any], dict[str, Any]] = module.lambda_handler
    return handler


def role_session_arn(role: str, session: str, account_id: str = ACCOUNT_ID) -> str:
    return f"arn:aws:sts::{account_id}:assumed-role/{role}/{session}"


def _index(name: str, hash_key: str, range_key: str = "created_key") -> dict[str, Any]:
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": hash_key, "KeyType": _HASH},
            {"AttributeName": range_key, "KeyType": _RANGE},
        ],
        "Projection": {"ProjectionType": "ALL"},
    }


def table_definitions(settings: Settings) -> list[dict[str, Any]]:
    def attrs(*names: str) -> list[dict[str, str]]:
        return [{"AttributeName": n, "AttributeType": _S} for n in names]

    def simple(name: str, key: str) -> dict[str, Any]:
        return {
            "TableName": name,
            "KeySchema": [{"AttributeName": key, "KeyType": _HASH}],
            "AttributeDefinitions": attrs(key),
        }

    orders = {
        "TableName": settings.orders_table,
        "KeySchema": [{"AttributeName": "order_id", "KeyType": _HASH}],
        "AttributeDefinitions": attrs(
            "order_id", "account", "status", "symbol", "created_key", "open_account"
        ),
        "GlobalSecondaryIndexes": [
            _index("AccountIndex", "account"),
            _index("StatusIndex", "status"),
            _index("SymbolIndex", "symbol"),
            _index("OpenIndex", "open_account"),
        ],
    }
    market_data = {
        "TableName": settings.market_data_table,
        "KeySchema": [{"AttributeName": "pk", "KeyType": _HASH}, {"AttributeName": "sk", "KeyType": _RANGE}],
        "AttributeDefinitions": attrs("pk", "sk"),
    }
    return [
        orders,
        simple(settings.idempotency_table, "id"),
        simple(settings.risk_limits_table, "account"),
        simple(settings.principals_table, "principal"),
        simple(settings.trading_controls_table, "scope"),
        simple(settings.order_approvals_table, "order_id"),
        market_data,
    ]


def create_tables(dynamodb: Any, settings: Settings) -> None:
    """Create the order API's tables (and MarketData, which the market_data function owns)."""
    existing = set(dynamodb.list_tables().get("TableNames", []))
    for definition in table_definitions(settings):
        if definition["TableName"] not in existing:
            dynamodb.create_table(BillingMode="PAY_PER_REQUEST", **definition)


def register_principal(
    dynamodb: Any, settings: Settings, principal: str, user_type: str, account: str | None
) -> None:
    item = {"principal": {"S": principal}, "user_type": {"S": user_type}}
    if account:
        item["account"] = {"S": account}
    dynamodb.put_item(TableName=settings.principals_table, Item=item)


def set_risk_limits(
    dynamodb: Any,
    settings: Settings,
    account: str,
    *,
    max_order_quantity: int,
    max_notional: Decimal,
    max_open_orders: int,
    position_limits: Mapping[str, int] | None = None,
) -> None:
    item: dict[str, Any] = {
        "account": {"S": account},
        "max_order_quantity": {"N": str(max_order_quantity)},
        "max_notional": {"N": str(max_notional)},
        "max_open_orders": {"N": str(max_open_orders)},
    }
    if position_limits:
        item["position_limits"] = {"M": {k: {"N": str(v)} for k, v in position_limits.items()}}
    dynamodb.put_item(TableName=settings.risk_limits_table, Item=item)


class EngineGateway:
    """The matching engine in-process, answering like a node named ``node``."""

    def __init__(
        self, instruments: Iterable[Instrument] = DEFAULT_INSTRUMENTS, node: str = "local-1"
    ) -> None:
        self.engine = MatchingEngine(instruments)
        self.node = node
        self.sent: list[Message] = []

    def send(self, symbol: str, request: Message) -> NodeAnswer:
        return self.send_to(self.node, request)

    def nodes(self) -> list[str]:
        return [self.node]

    def send_to(self, node: str, request: Message) -> NodeAnswer:
        self.sent.append(request)
        # arg-type against the reference engine's signature; the native core's stub takes any object.
        messages = self.engine.process(request)  # type: ignore[arg-type, unused-ignore]
        flags = self.engine.last_flags
        return NodeAnswer(node, tuple(messages), duplicate=bool(flags & 2), replaced=bool(flags & 4))

    def ping(self) -> bool:
        return True


@dataclass
class EmptyLedger:
    """A ledger with no trades yet (for runs without PostgreSQL)."""

    def positions(self, account: str | None, symbol: str | None = None) -> list[PositionRow]:
        return []

    def position(self, account: str, symbol: str) -> int:
        return 0

    def trades(
        self, account: str | None, symbol: str | None, limit: int, cursor: str | None
    ) -> TradePageRows:
        return TradePageRows([], None)


def local_services(
    settings: Settings,
    clients: Mapping[str, Any],
    gateway: MatchingGateway,
    ledger: LedgerReader | None = None,
    instruments: Sequence[Instrument] | None = None,
) -> Services:
    """The real DynamoDB/EventBridge implementations over the given boto3 ``clients``."""
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer  # noqa: PLC0415
    from orders_api.aws import client  # noqa: PLC0415
    from orders_api.dal.approvals import StepFunctionsApprovalDesk  # noqa: PLC0415
    from orders_api.dal.dynamo_orders import DynamoOrderStore  # noqa: PLC0415
    from orders_api.dal.dynamo_reference import DynamoReferenceStore  # noqa: PLC0415
    from orders_api.dal.eventbridge import EventBridgePublisher  # noqa: PLC0415
    from orders_api.dal.market_data import DynamoMarketDataReader  # noqa: PLC0415

    dynamodb = clients["dynamodb"]
    return Services(
        settings=settings,
        orders=DynamoOrderStore(dynamodb, settings.orders_table),
        reference=DynamoReferenceStore(
            dynamodb, settings.principals_table, settings.risk_limits_table, settings.trading_controls_table
        ),
        market_data=DynamoMarketDataReader(dynamodb, settings.market_data_table),
        ledger=ledger or EmptyLedger(),
        events=EventBridgePublisher(
            clients["events"], settings.event_bus_name, clients.get("sqs"), settings.events_dlq_url
        ),
        gateway=gateway,
        idempotency=DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_client=dynamodb),
        instruments={i.symbol: i for i in instruments} if instruments else default_instruments(),
        approvals=StepFunctionsApprovalDesk(
            dynamodb,
            settings.order_approvals_table,
            lambda: clients["stepfunctions"] if "stepfunctions" in clients else client("stepfunctions"),
        ),
    )
