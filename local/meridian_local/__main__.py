"""``python -m meridian_local run | demo | drill``: the local platform's command line (`make run`)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from meridian_local.platform import LocalPlatform, PlatformConfig
from meridian_local.preflight import PreflightError

EXIT_USAGE = 2  # bad arguments or a platform that cannot start here


def _run(args: argparse.Namespace) -> int:
    platform = LocalPlatform(PlatformConfig())
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print("Starting Meridian locally (no AWS account, no Docker) ...", flush=True)
    try:
        seconds = platform.start()
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    e = platform.endpoints
    print(f"Meridian is up in {seconds:.1f} s.", flush=True)
    print(f"  REST API      {e.api}   (Swagger UI: {e.api}/docs)")
    print(f"  AWS endpoint  {e.aws}   (aws --endpoint-url {e.aws} ...)")
    print(f"  node          {e.node}   (metrics: {e.metrics})")
    print(f"  PostgreSQL    {e.database_url}")
    print("Try `make demo` in another terminal. Ctrl-C stops everything.", flush=True)
    try:
        if args.demo:
            from meridian_local.demo import run_demo  # noqa: PLC0415 - only for the demo

            run_demo(platform)
        stopping.wait()
    finally:
        print("Stopping Meridian ...", flush=True)
        platform.stop()
        print("Stopped.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meridian_local", description="Meridian on this machine")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the whole platform and keep it running until Ctrl-C")
    run.add_argument("--demo", action="store_true", help="drive a short trading session once it is up")
    args = parser.parse_args(argv)
    return _run(args)


if __name__ == "__main__":
    raise SystemExit(main())
