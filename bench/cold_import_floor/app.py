"""The cold-import floor of a Meridian function: the stack every function is built on and nothing
else. Powertools (Logger, Tracer patching botocore, Metrics, the REST event handler with OpenAPI
validation), pydantic and boto3, serving one validated route. ``bench/api_bench.py`` imports it as
Lambda would, in the same run as the functions, and reports each function against it."""

from __future__ import annotations

import boto3  # noqa: F401 - every function calls AWS
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from pydantic import BaseModel

logger = Logger(service="floor")
tracer = Tracer(service="floor", patch_modules=["botocore"])
metrics = Metrics(namespace="Meridian", service="floor")
app = APIGatewayRestResolver(enable_validation=True)


class Item(BaseModel):
    name: str


@app.post("/items")
def post_item(item: Item) -> Item:
    return item
