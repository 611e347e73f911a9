"""The gateway as its container runs it: STS verifies connects, IAM holds the roles' policies,
this task's own queue on the order-updates topic, the market-data stream; SIGTERM drains."""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid

import boto3

from meridian.iam.access import ExecuteApi
from meridian_gateway.access import ChannelAccess, dynamodb_principals, iam_role_policies, role_access
from meridian_gateway.config import GatewaySettings
from meridian_gateway.identity import StsVerifier
from meridian_gateway.orders import OrderUpdates
from meridian_gateway.server import Gateway
from meridian_gateway.sources import KinesisReader, OrderQueue, TaskQueue

log = logging.getLogger(__name__)


async def serve_until_stopped(gateway: Gateway, settings: GatewaySettings) -> None:
    sqs = boto3.client("sqs", region_name=settings.region)
    queue = None
    queue_url = settings.order_queue_url
    if not queue_url and settings.order_updates_topic_arn:
        name = f"{settings.queue_name_prefix}-{uuid.uuid4().hex[:16]}"
        queue = TaskQueue(
            sqs,
            boto3.client("sns", region_name=settings.region),
            settings.order_updates_topic_arn,
            name,
            settings.queue_kms_key or None,
        )
        queue_url = await asyncio.to_thread(queue.create)
    tasks = start_sources(
        gateway, settings, queue_url, boto3.client("kinesis", region_name=settings.region), sqs
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await gateway.start()
    log.info("streaming gateway on %s:%d", settings.host, gateway.port)
    try:
        await stop.wait()
    finally:
        await gateway.stop()
        for task in tasks:
            task.cancel()
        if queue is not None:
            await asyncio.to_thread(queue.remove)


def start_sources(
    gateway: Gateway, settings: GatewaySettings, queue_url: str, kinesis: object, sqs: object
) -> list[asyncio.Task[None]]:
    """The readers and the heartbeat, as tasks; their health joins /healthz."""
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(gateway.heartbeats())]
    if settings.market_data_stream:
        reader = KinesisReader(
            kinesis,
            settings.market_data_stream,
            gateway.hub.on_market_data,
            gateway.metrics,
            settings.poll_interval,
        )
        gateway.health_checks.append(lambda: reader.healthy)
        tasks.append(loop.create_task(reader.run()))
    if queue_url:
        updates = OrderUpdates()

        def on_event(detail: object) -> None:
            for account, message in updates.messages(detail):  # type: ignore[arg-type]
                gateway.hub.on_order(account, message)

        orders = OrderQueue(sqs, queue_url, on_event, gateway.metrics)
        gateway.health_checks.append(lambda: orders.healthy)
        tasks.append(loop.create_task(orders.run()))
    return tasks


def run(settings: GatewaySettings) -> int:
    iam = boto3.client("iam")
    roles = iam_role_policies(iam, [n.strip() for n in settings.role_names.split(",") if n.strip()])
    api = ExecuteApi(settings.region, settings.account_id, settings.api_id, settings.api_stage)
    principals = dynamodb_principals(
        boto3.client("dynamodb", region_name=settings.region), settings.principals_table
    )
    verifier = StsVerifier(settings.region, settings.audience, settings.sts_endpoint or None)
    gateway = Gateway(settings, verifier, ChannelAccess(role_access(api, roles), principals))
    asyncio.run(serve_until_stopped(gateway, settings))
    return 0
