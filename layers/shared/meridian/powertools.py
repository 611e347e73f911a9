"""The functions' Powertools set-up, the same in every handler: a Tracer that patches the AWS SDK
only, and Metrics in the platform's namespace.

``POWERTOOLS_METRICS_NAMESPACE`` and ``POWERTOOLS_SERVICE_NAME`` still rule where the template sets
them; a function that sets neither still emits its metrics under ``Meridian``.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Metrics, Tracer

# The AWS SDK is the only library the functions call out with; Powertools' default patch_all also
# wraps httplib, requests and sqlite3.
TRACED_MODULES: tuple[str, ...] = ("botocore",)
NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
DEFAULT_NAMESPACE = "Meridian"


def tracer(service: str | None = None) -> Tracer:
    return Tracer(service=service, patch_modules=TRACED_MODULES)


def metrics(service: str | None = None) -> Metrics:
    return Metrics(namespace=os.environ.get(NAMESPACE_ENV, DEFAULT_NAMESPACE), service=service)
