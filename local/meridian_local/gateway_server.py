"""The streaming gateway beside the local API: the real ``meridian_gateway`` on its own thread.

Connects are verified with the local credentials (the same file and code as the local API
Gateway), channels against the template's roles (``apigw.template_access``) and the Principals
table; it reads the market-data stream from moto, and order updates from a queue of its own that an
EventBridge rule on the trading bus fills (in AWS each task's queue hangs off an SNS topic).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import TYPE_CHECKING

from meridian.iam.sigv4 import load_credentials
from meridian_gateway.access import ChannelAccess, dynamodb_principals
from meridian_gateway.aws_main import start_sources
from meridian_gateway.config import GatewaySettings
from meridian_gateway.identity import LocalVerifier
from meridian_gateway.server import Gateway
from meridian_local.apigateway.apigw import template_access

if TYPE_CHECKING:
    from meridian_local.settings import PlatformView

QUEUE = "meridian-gateway-local"
RULE = "meridian-gateway-local-order-updates"
PATTERN = {
    "source": ["meridian.trading", "meridian.executions"],
    "detail-type": [{"prefix": "order."}, {"prefix": "trade."}],
}


class GatewayServer:
    def __init__(self, platform: PlatformView, host: str, port: int, stream: str | None, bus: str) -> None:
        self.platform, self.host, self.port, self.stream, self.bus = platform, host, port, stream, bus
        self.loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.gateway: Gateway | None = None

    def _queue(self) -> str:
        sqs, events = self.platform.client("sqs"), self.platform.client("events")
        url = str(sqs.create_queue(QueueName=QUEUE)["QueueUrl"])
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=RULE, EventBusName=self.bus, EventPattern=json.dumps(PATTERN))
        events.put_targets(Rule=RULE, EventBusName=self.bus, Targets=[{"Id": "gateway", "Arn": arn}])
        return url

    def start(self, principals_table: str) -> GatewayServer:
        config = self.platform.config
        access = template_access(config.template, config.environment)
        # Each shard read every 0.2 s (the default), as in AWS, where a shard serves 5 reads a second
        # to all its consumers; at 0.05 s the gateway alone kept the local endpoint busy with 40
        # reads a second while nothing traded.
        settings = GatewaySettings(host=self.host, port=self.port, market_data_stream=self.stream or "")
        verifier = LocalVerifier(
            load_credentials(self.platform.credentials_file), settings.region, settings.audience
        )
        principals = dynamodb_principals(self.platform.client("dynamodb"), principals_table)
        gateway = self.gateway = Gateway(settings, verifier, ChannelAccess(access, principals))
        queue_url = self._queue()
        kinesis, sqs = self.platform.client("kinesis"), self.platform.client("sqs")

        async def main() -> None:
            await gateway.start()
            self._tasks = start_sources(gateway, settings, queue_url, kinesis, sqs)

        self._thread = threading.Thread(target=self.loop.run_forever, name="streaming-gateway", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(main(), self.loop).result(30)
        self.port = gateway.port
        return self

    def stop(self) -> None:
        gateway = self.gateway
        if gateway is None or self._thread is None:
            return

        async def stop() -> None:
            for task in self._tasks:
                task.cancel()
            await gateway.stop()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.gateway = None
