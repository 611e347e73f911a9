"""``python -m meridian_local run [--demo] | demo | drill``: the local command line (`make run`)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from meridian_local.demo.session import run_demo
from meridian_local.drills import dr_drill, node_drill
from meridian_local.platform import LocalPlatform
from meridian_local.preflight import InstanceLock, PreflightError
from meridian_local.settings import Endpoints, PlatformConfig
from meridian_local.shard import SECOND_SHARD_SYMBOLS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _demo(platform: LocalPlatform, endpoints: Endpoints) -> int:
    result = run_demo(
        endpoints.api,
        endpoints.aws,
        endpoints.database_url,
        endpoints.metrics,
        platform.credentials_file,
        gateway_url=endpoints.gateway,
    )
    traded = len({f["execution_id"] for f in result.fills})
    if not traded or not result.positions:
        print("demo: the trades did not reach the ledger", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _start(platform: LocalPlatform) -> bool:
    print("Starting Meridian locally (no AWS account, no Docker) ...", flush=True)
    try:
        seconds = platform.start()
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    e = platform.endpoints
    print(f"Meridian is up in {seconds:.1f} s.", flush=True)
    print(f"  REST API      {e.api}   (Swagger UI: {e.api}/docs, live dashboard: {e.api}/dashboard)")
    print(f"  AWS endpoint  {e.aws}   (aws --endpoint-url {e.aws} ...)")
    print(f"  node          {e.node}   (metrics: {e.metrics}; the shard's primary)")
    if e.standby:
        print(f"  standby node  {e.standby}   (metrics: {e.standby_metrics}; takes over if the primary dies)")
    for shard, nodes in sorted(e.shards.items())[1:]:
        print(f"  shard {shard}       {nodes}   (its primary first; owns {', '.join(SECOND_SHARD_SYMBOLS)})")
    print(f"  PostgreSQL    {e.database_url}")
    print(f"  logs          {e.logs}/  (the functions' JSON logs and EMF metrics, one file per component)")
    print(f"  sign requests with the keys in {platform.credentials_file}")
    print("  a first trade: .venv/bin/meridian --user alice orders submit --symbol AAPL --side buy --qty 10")
    print("                 --price 190.00   (Swagger UI signs as a local user too: pick one on /docs)")
    env_vars = platform.env_vars_file
    print(f"  sam local invoke <Function> --env-vars {env_vars} --docker-network host", flush=True)
    return True


def _run(demo: bool) -> int:
    platform = LocalPlatform(PlatformConfig())
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if not _start(platform):
        return EXIT_USAGE
    try:
        if demo:
            _demo(platform, platform.endpoints)
        print("Try `make demo` in another terminal. Ctrl-C stops everything.", flush=True)
        stopping.wait()
    finally:
        print("Stopping Meridian ...", flush=True)
        platform.stop()
        print("Stopped.", flush=True)
    return EXIT_OK


def _demo_command() -> int:
    """Drive the running platform, or start one for the demo and stop it afterwards."""
    platform = LocalPlatform(PlatformConfig())
    if (
        InstanceLock(platform.config.state_dir / "run.lock").holder() is not None
        and platform.endpoints_file.exists()
    ):
        endpoints = Endpoints(**json.loads(platform.endpoints_file.read_text()))
        print(f"Driving the running platform at {endpoints.api}", flush=True)
        return _demo(platform, endpoints)
    if not _start(platform):
        return EXIT_USAGE
    try:
        return _demo(platform, platform.endpoints)
    finally:
        platform.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meridian_local", description="Meridian on this machine")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the whole platform and keep it running until Ctrl-C")
    run.add_argument("--demo", action="store_true", help="drive a short trading session once it is up")
    commands.add_parser("demo", help="drive a short trading session (starting the platform if needed)")
    drill = commands.add_parser(
        "drill", help="rehearse the DR failover runbook on its own moto and PostgreSQL"
    )
    dr_drill.add_arguments(drill)
    drill_node = commands.add_parser(
        "drill-node", help="kill -9 the matching shard's primary under load and check what survived"
    )
    node_drill.add_arguments(drill_node)
    args = parser.parse_args(argv)
    if args.command == "drill":
        return dr_drill.main(args)
    if args.command == "drill-node":
        return node_drill.main(args)
    if args.command == "demo":
        return _demo_command()
    return _run(args.demo)


if __name__ == "__main__":
    raise SystemExit(main())
