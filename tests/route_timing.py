"""Timing the order routes in two worlds, interleaved: over emulated AWS, and with no AWS at all.

``make bench-api`` runs every scenario of ``order_path_scenarios`` in both worlds, one request of
each in turn, so both see the same machine at the same moment. The *modelled* world is the real
stores over moto, every AWS call padded to the modelled delay and counted
(``aws_round_trips``); the *floor* is the same handler with the stores in memory
(``orders_api_memory``): what the route costs without waiting on AWS. The caller provides the AWS
environment (region, credentials) moto runs under.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto import mock_aws
from orders_api import aws, services
from orders_api.config import Settings
from orders_api.dal.hotpath import MatchingGateway

from meridian_local.apigateway.aws_round_trips import AwsCall, RoundTripRecorder, modelled
from meridian_local.apigateway.order_function import load_handler
from meridian_local.endpoint import moto_transactions
from tests.order_path_scenarios import (
    SCENARIOS,
    TRADERS,
    RoundTrips,
    Scenario,
    TimedGateway,
    round_trips,
    send,
)
from tests.orders_api_fixtures import local_services, seed_order_api
from tests.orders_api_memory import memory_services

WARMUP = 20


@dataclass
class RouteSamples:
    wall_ms: list[float] = field(default_factory=list)
    modelled_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    trips: list[RoundTrips] = field(default_factory=list)
    calls: list[AwsCall] = field(default_factory=list)


@dataclass
class World:
    """One way of running the routes: its services, the node's gateway and the AWS call recorder."""

    name: str
    services: services.Services
    gateway: TimedGateway
    recorder: RoundTripRecorder
    samples: dict[str, RouteSamples] = field(default_factory=dict)
    keep: bool = False


def measure(handler: Callable[..., dict[str, Any]], scenario: Scenario, tag: str, world: World) -> None:
    before, measured, after = scenario.build(tag)
    for step in before:
        send(handler, step)
    world.gateway.exchanges.clear()
    with world.recorder.request() as calls:
        cpu = time.process_time_ns()
        started = time.perf_counter_ns()
        send(handler, measured)
        wall = time.perf_counter_ns() - started
        cpu = time.process_time_ns() - cpu
    if world.keep:
        samples = world.samples.setdefault(scenario.name, RouteSamples())
        samples.wall_ms.append(wall / 1e6)
        samples.modelled_ms.append(modelled(wall / 1e9, calls, world.recorder.delay_s) * 1000)
        samples.cpu_ms.append(cpu / 1e6)
        samples.trips.append(round_trips(calls, world.gateway.exchanges))
        samples.calls.extend(calls)
    for step in after:
        send(handler, step)


def run(n: int, delay_ms: float, gateway: MatchingGateway) -> dict[str, World]:
    """Every scenario ``n`` times in both worlds (after a warm-up), AWS calls padded to ``delay_ms``."""
    settings = Settings(large_order_notional=10**9, default_max_open_orders=10**6, default_max_notional=10**9)
    aws.reset_clients()
    moto_transactions.install()
    with mock_aws():
        clients = {name: aws.client(name) for name in ("dynamodb", "events", "sqs")}
        seed_order_api(clients, settings, [(principal, "trader", account) for principal, account in TRADERS])
        recorder = RoundTripRecorder(delay_ms / 1000)
        recorder.attach(*clients.values())
        timed, floor_gateway = TimedGateway(gateway), TimedGateway(gateway)
        principals = {p: {"user_type": "trader", "account": a} for p, a in TRADERS}
        in_memory = memory_services(settings, floor_gateway, principals)
        worlds = [
            World("modelled", local_services(settings, clients, timed), timed, recorder),
            World("floor", in_memory, floor_gateway, RoundTripRecorder()),
        ]
        handler = load_handler()
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # the EMF lines
            for i in range(WARMUP + n):
                for index, scenario in enumerate(SCENARIOS):
                    for world in worlds:
                        world.keep = i >= WARMUP
                        services.use(world.services)
                        measure(handler, scenario, f"{world.name[0]}{i}x{index}", world)
        services.reset()
        return {world.name: world for world in worlds}
