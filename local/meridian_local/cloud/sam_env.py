"""``<state dir>/env.json``: the running local platform's endpoints for ``sam local invoke``.

``sam local invoke <Function> --env-vars .local-platform/env.json --docker-network host -e <event>``
runs a function in Docker (where there is Docker) against ``make run``: the file gives each function
of the template, by logical id, the environment the platform provisioned it with (its tables,
queues and bus, the AWS endpoint, the matching node's address, the database URL). sam overrides
only variables the template declares, which is why template.yaml's Globals declare
``AWS_ENDPOINT_URL``, ``DATABASE_URL`` and ``MERIDIAN_ROUTES`` (empty in AWS). Addresses are on
127.0.0.1: ``--docker-network host`` lets the container reach them (Linux). The embedded
PostgreSQL listens on a Unix socket a container cannot reach: start the platform with
``DATABASE_URL`` set to a TCP PostgreSQL to invoke the database functions this way.
"""

from __future__ import annotations

from meridian_local.cloud.stack_model import Stack

# Declared empty in template.yaml's Globals, so that sam may override them from env.json.
DECLARED_FOR_LOCAL = ("AWS_ENDPOINT_URL", "DATABASE_URL", "MERIDIAN_ROUTES")
# What only the platform's own processes need (its Powertools settings stay as the template says).
LOCAL_ONLY = frozenset({"POWERTOOLS_TRACE_DISABLED", "POWERTOOLS_LOG_LEVEL"})


def env_vars(stack: Stack, aws_endpoint: str) -> dict[str, dict[str, str]]:
    """Logical id -> variables, for every function the platform provisioned (nested stacks too)."""
    document: dict[str, dict[str, str]] = {}
    for each in stack.all_stacks():
        for function in each.functions.values():
            variables = {k: str(v) for k, v in function.environment.items() if k not in LOCAL_ONLY}
            variables["AWS_ENDPOINT_URL"] = aws_endpoint
            document[function.logical_id] = dict(sorted(variables.items()))
    return dict(sorted(document.items()))
