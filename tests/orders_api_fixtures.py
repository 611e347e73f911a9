"""The order API's tables, principals and collaborators for tests and benchmarks.

The tables are the ones template.yaml gives the order API: every variable of
``OrdersApiFunction``'s environment that references an ``AWS::DynamoDB::Table`` names one, created
here with that resource's keys, attributes, indexes and TTL (so the tests' tables cannot drift
from the deployed ones). ``EngineGateway`` runs the real matching engine in-process for tests that
need no node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orders_api.config import Settings
from orders_api.dal.hotpath import MatchingGateway, NodeAnswer
from orders_api.dal.interfaces import LedgerReader, TradePageRows
from orders_api.services import Services, default_instruments

from meridian.domain import DEFAULT_INSTRUMENTS, Instrument
from meridian.protocol import Message
from meridian_hotpath.engine import MatchingEngine

if TYPE_CHECKING:
    from meridian.ledger.queries import PositionRow, TradeRow

ACCOUNT_ID = "123456789012"
REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = REPO_ROOT / "template.yaml"
FUNCTION_LOGICAL_ID = "OrdersApiFunction"
_INDEX_KEYS = ("IndexName", "KeySchema", "Projection")


def role_session_arn(role: str, session: str, account_id: str = ACCOUNT_ID) -> str:
    return f"arn:aws:sts::{account_id}:assumed-role/{role}/{session}"


TABLE_TYPES = ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable")


@lru_cache(maxsize=1)
def template_tables() -> dict[str, dict[str, Any]]:
    """Environment variable of the order API -> the properties of the table template.yaml gives it."""
    from meridian_local.cloud.sam_template import load  # noqa: PLC0415 - the YAML parser is slow to import

    resources = load(TEMPLATE)["Resources"]
    variables = resources[FUNCTION_LOGICAL_ID]["Properties"]["Environment"]["Variables"]
    tables = {}
    for variable, value in variables.items():
        target = resources.get(owned_table(value) or "")
        if target is not None and target["Type"] in TABLE_TYPES:
            tables[variable] = target["Properties"]
    return tables


def owned_table(value: Any) -> str | None:
    """The logical id a function's variable names as the stack that owns its tables sees it:
    ``!Ref Table``, or ``!If [OwnsTables, !Ref Table, <the replica's name>]`` (a dr stack uses the
    replicas of its primary's global tables)."""
    if not isinstance(value, dict):
        return None
    if "Ref" in value:
        return str(value["Ref"])
    condition, owned, _ = value.get("Fn::If", (None, None, None))
    return owned_table(owned) if condition == "OwnsTables" else None


def table_definitions(settings: Settings) -> list[dict[str, Any]]:
    """CreateTable arguments of every order API table, named as ``settings`` name them."""
    definitions = []
    for variable, properties in template_tables().items():
        definition: dict[str, Any] = {
            "TableName": getattr(settings, variable.lower()),
            "KeySchema": properties["KeySchema"],
            "AttributeDefinitions": properties["AttributeDefinitions"],
        }
        for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if properties.get(kind):
                definition[kind] = [{k: index[k] for k in _INDEX_KEYS} for index in properties[kind]]
        definitions.append(definition)
    return definitions


def time_to_live(settings: Settings) -> dict[str, str]:
    """Table name -> its TTL attribute, for the tables whose template resource enables TTL."""
    return {
        getattr(settings, variable.lower()): properties["TimeToLiveSpecification"]["AttributeName"]
        for variable, properties in template_tables().items()
        if properties.get("TimeToLiveSpecification", {}).get("Enabled")
    }


def create_tables(dynamodb: Any, settings: Settings) -> None:
    """Create the order API's tables (and MarketData, which the market_data function owns)."""
    existing = set(dynamodb.list_tables().get("TableNames", []))
    expiring = time_to_live(settings)
    for definition in table_definitions(settings):
        name = definition["TableName"]
        if name in existing:
            continue
        dynamodb.create_table(BillingMode="PAY_PER_REQUEST", **definition)
        if name in expiring:
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": expiring[name]}
            )


def register_principal(
    dynamodb: Any, settings: Settings, principal: str, user_type: str, account: str | None
) -> None:
    item = {"principal": {"S": principal}, "user_type": {"S": user_type}}
    if account:
        item["account"] = {"S": account}
    dynamodb.put_item(TableName=settings.principals_table, Item=item)


def seed_order_api(
    clients: Mapping[str, Any], settings: Settings, principals: Iterable[tuple[str, str, str | None]]
) -> None:
    """The order API's AWS as a deployment has it: its tables, its event bus, and ``principals``
    ((principal, user type, account)) registered."""
    create_tables(clients["dynamodb"], settings)
    clients["events"].create_event_bus(Name=settings.event_bus_name)
    for principal, user_type, account in principals:
        register_principal(clients["dynamodb"], settings, principal, user_type, account)


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
        messages = self.engine.process(request)
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

    def order_fills(self, order_id: str) -> list[TradeRow]:
        return []


def local_services(
    settings: Settings,
    clients: Mapping[str, Any],
    gateway: MatchingGateway,
    ledger: LedgerReader | None = None,
    instruments: Sequence[Instrument] | None = None,
) -> Services:
    """The real DynamoDB/EventBridge implementations over the given boto3 ``clients``."""
    from orders_api.aws import client  # noqa: PLC0415
    from orders_api.dal.approvals import StepFunctionsApprovalDesk  # noqa: PLC0415
    from orders_api.dal.cached_reference import CachedReferencePrices, CachedReferenceStore  # noqa: PLC0415
    from orders_api.dal.dynamo_orders import DynamoOrderStore  # noqa: PLC0415
    from orders_api.dal.dynamo_reference import DynamoReferenceStore  # noqa: PLC0415
    from orders_api.dal.eventbridge import EventBridgePublisher  # noqa: PLC0415
    from orders_api.dal.market_data import DynamoMarketDataReader  # noqa: PLC0415

    dynamodb = clients["dynamodb"]
    known = {i.symbol: i for i in instruments} if instruments else default_instruments()
    reference = DynamoReferenceStore(
        dynamodb, settings.principals_table, settings.risk_limits_table, settings.trading_controls_table
    )
    market_data = DynamoMarketDataReader(dynamodb, settings.market_data_table)
    return Services(
        settings=settings,
        orders=DynamoOrderStore(
            dynamodb, settings.orders_table, settings.exposure_table, settings.idempotency_table, known
        ),
        reference=CachedReferenceStore(reference, settings.reference_ttl_seconds),
        market_data=market_data,
        ledger=ledger or EmptyLedger(),
        events=EventBridgePublisher(
            clients["events"], settings.event_bus_name, clients.get("sqs"), settings.events_dlq_url
        ),
        gateway=gateway,
        instruments=known,
        approvals=StepFunctionsApprovalDesk(
            dynamodb,
            settings.order_approvals_table,
            lambda: clients["stepfunctions"] if "stepfunctions" in clients else client("stepfunctions"),
        ),
        prices=CachedReferencePrices(market_data, settings.reference_ttl_seconds),
    )
