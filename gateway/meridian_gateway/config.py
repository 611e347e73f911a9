"""The gateway's settings, from the environment (``MERIDIAN_GATEWAY_*``; the ECS task definition
sets them in AWS, ``make run`` locally)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MERIDIAN_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    audience: str = Field(
        default="meridian-gateway", description="The x-meridian-gateway value tokens must sign"
    )
    market_data_stream: str = ""
    order_updates_topic_arn: str = ""  # this task subscribes its own queue to it
    order_queue_url: str = ""  # or reads this queue (local platform, tests)
    queue_name_prefix: str = "meridian-gateway"
    queue_kms_key: str = ""
    principals_table: str = ""
    api_id: str = ""
    api_stage: str = "v1"
    account_id: str = ""
    role_names: str = ""  # comma-separated: the API roles whose policies decide the channels
    sts_endpoint: str = ""  # STS through a VPC endpoint; empty: the regional endpoint
    heartbeat_s: float = Field(default=10.0, gt=0)
    max_queue: int = Field(
        default=2000, ge=10, description="queued messages that close a connection not read for slow_after_s"
    )
    slow_after_s: float = Field(default=2.0, gt=0, description="how long a frame may wait to be written")
    max_backlog: int = Field(
        default=0, ge=0, description="queued messages that close a connection at once; 0: 8 x max_queue"
    )
    write_limit: int = Field(default=256 * 1024, ge=1024, description="bytes buffered per connection")
    max_subscriptions: int = Field(default=50, ge=1)
    max_message_bytes: int = Field(default=4096, ge=256)
    poll_interval: float = Field(default=0.2, gt=0)
    ping_interval: float = Field(default=20.0, gt=0)
