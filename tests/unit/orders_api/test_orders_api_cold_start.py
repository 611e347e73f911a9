"""A cold start loads only the rules and builds only the models it uses; a provisioned container
loads and builds them all in its init."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PROBE = (
    "import sys; sys.path[:0] = ['functions/orders_api', 'layers/shared']; "
    "import orders_api.api; from orders_api.models import OrderOut, OrderRequest; "
    "from meridian.events import OrderCancelled; "
    "print(*(m.__pydantic_complete__ for m in (OrderOut, OrderRequest, OrderCancelled)), "
    "'orders_api.logic.submit' in sys.modules)"
)


def _import(**environment: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_INITIALIZATION_TYPE"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return repr(done.stdout.split()[-4:])


def test_on_demand_the_models_wait_for_their_first_use() -> None:
    assert _import(AWS_LAMBDA_INITIALIZATION_TYPE="on-demand") == repr(["False", "False", "False", "False"])


def test_a_provisioned_container_builds_every_model_in_its_init() -> None:
    assert _import(AWS_LAMBDA_INITIALIZATION_TYPE="provisioned-concurrency") == repr(
        ["True", "True", "True", "True"]
    )
