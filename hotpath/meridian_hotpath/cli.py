"""``python -m meridian_hotpath serve | verify | replay``.

Exit codes: 0 success, 1 corruption or a node that stopped on a failure, 2 bad arguments (and a
``--node-number`` other than the one the data directory holds).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from meridian.domain import DEFAULT_INSTRUMENTS, Instrument
from meridian.executions import MAX_NODE_NUMBER
from meridian.session_auth import SessionKey, SessionKeyError, load_keys_file, load_secret_keys
from meridian_hotpath.app import NodeConfig, load_instruments, run, serve
from meridian_hotpath.commit import AckMode
from meridian_hotpath.follower_link import instruments_from_env, run_follower_process
from meridian_hotpath.identity import NodeIdentityError, NodeNumberMismatchError
from meridian_hotpath.journal import DEFAULT_SEGMENT_BYTES, JournalCorruptError
from meridian_hotpath.lease import DynamoLeaseStore
from meridian_hotpath.marketdata import DEFAULT_DEPTH_LEVELS, MAX_DEPTH_LEVELS
from meridian_hotpath.node import DEFAULT_SNAPSHOT_EVERY
from meridian_hotpath.recovery import RecoveryError, engine_checksum, recover, verify
from meridian_hotpath.server import ConnectionLimits
from meridian_hotpath.shard import REPLICA_SYNC_GAP_S, ShardConfig

EXIT_OK, EXIT_CORRUPT, EXIT_USAGE = 0, 1, 2


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {value}")
    return value


def _address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"must be host:port, got {text!r}")
    return text


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return value


def _depth_levels(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_DEPTH_LEVELS:
        raise argparse.ArgumentTypeError(f"must be 1-{MAX_DEPTH_LEVELS}: {value}")
    return value


def _node_number(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_NODE_NUMBER:
        raise argparse.ArgumentTypeError(f"node number must be 0-{MAX_NODE_NUMBER}: {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def _session_keys(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> Callable[[], list[SessionKey]] | None:
    """How the node loads its session keys (again on SIGHUP), from exactly one of the flags."""
    chosen = [bool(args.auth_keys_file), bool(args.auth_secret_arns), bool(args.no_auth)]
    if sum(chosen) != 1:
        parser.error("give exactly one of --auth-keys-file, --auth-secret-arns, --no-auth")
    if args.no_auth:
        return None
    if args.auth_keys_file:
        path: Path = args.auth_keys_file
        return lambda: load_keys_file(path)
    arns = [arn.strip() for arn in args.auth_secret_arns.split(",") if arn.strip()]

    def from_secrets() -> list[SessionKey]:
        from meridian import aws_clients  # noqa: PLC0415 - boto3 only on AWS

        return load_secret_keys(arns, aws_clients.client("secretsmanager"))

    return from_secrets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m meridian_hotpath", description="Meridian matching node")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--data-dir", type=Path, required=True, help="journal and snapshots live here")
        sub.add_argument("--instruments", type=Path, help="JSON list of instruments (default: built-in set)")

    serve_cmd = commands.add_parser("serve", help="run the matching node")
    common(serve_cmd)
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=_port, required=True, help="0 picks a free port")
    serve_cmd.add_argument("--metrics-port", type=_port, help="HTTP port for /metrics and /healthz")
    serve_cmd.add_argument("--snapshot-every", type=_positive, default=DEFAULT_SNAPSHOT_EVERY)
    serve_cmd.add_argument(
        "--depth-levels", type=_depth_levels, default=DEFAULT_DEPTH_LEVELS,
        help=f"price levels a side in each market-data book update (1-{MAX_DEPTH_LEVELS})",
    )  # fmt: skip
    serve_cmd.add_argument("--kinesis-stream", help="publish trades and top of book to this stream")
    serve_cmd.add_argument(
        "--executions-stream",
        help="publish the drop copy (every execution, both sides) to this Kinesis stream; without it "
        "the node keeps no drop copy",
    )
    serve_cmd.add_argument(
        "--node-number",
        type=_node_number,
        help=f"0-{MAX_NODE_NUMBER}, the top 16 bits of this node's trade ids; kept in the data dir on "
        "first start, which then refuses any other (default: the stored number, 0 for a new data dir)",
    )
    serve_cmd.add_argument(
        "--segment-bytes", type=_positive, default=DEFAULT_SEGMENT_BYTES, help=argparse.SUPPRESS
    )
    serve_cmd.add_argument(
        "--ack-after",
        choices=[mode.value for mode in AckMode],
        default=AckMode.FSYNC.value,
        help="fsync: answer once the journal records are on disk (an acknowledged order survives a host"
        " crash); async: once written, fdatasync following continuously (survives a crash of the"
        " process; a host crash is covered by the shard's replica); replica: once the shard's standby"
        " holds them; replica+fsync: once both disks do",
    )
    auth = serve_cmd.add_argument_group("session logon (meridian.session_auth); one of these is required")
    auth.add_argument("--auth-keys-file", type=Path, help="JSON file of the session keys (local platform)")
    auth.add_argument(
        "--auth-secret-arns",
        help="comma-separated Secrets Manager secret ARNs, one key each (AWS); SIGHUP reads them again",
    )
    auth.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without a logon: anyone who connects may trade (tests only)",
    )
    limits = serve_cmd.add_argument_group("connection limits")
    defaults = ConnectionLimits()
    limits.add_argument(
        "--max-connections",
        type=_positive,
        default=defaults.max_connections,
        help="connections over this many are refused (ProtocolReject TOO_MANY_CONNECTIONS)",
    )
    limits.add_argument(
        "--idle-timeout",
        type=_non_negative_float,
        default=defaults.idle_timeout,
        help="seconds a connection may send nothing, not even a heartbeat, before it is closed (0: never)",
    )
    limits.add_argument(
        "--partial-frame-timeout",
        type=_non_negative_float,
        default=defaults.partial_frame_timeout,
        help="seconds a frame may take to arrive whole before the connection is closed (0: no limit)",
    )
    limits.add_argument(
        "--keepalive-idle",
        type=_positive,
        default=defaults.keepalive_idle,
        help="seconds of silence before TCP keepalive probes a connection",
    )
    limits.add_argument(
        "--snapshot-interval",
        type=_non_negative_float,
        default=defaults.snapshot_interval,
        help="after a burst of --snapshot-burst, one SNAPSHOT_REQUEST per this many seconds per "
        "connection; more is refused (0: no limit)",
    )
    limits.add_argument(
        "--snapshot-burst",
        type=_positive,
        default=defaults.snapshot_burst,
        help="SNAPSHOT_REQUESTs a connection may make at once (e.g. one per symbol of a book check)",
    )
    shard = serve_cmd.add_argument_group("replicated shard (primary and standby, by a DynamoDB lease)")
    shard.add_argument("--shard", help="the shard this node belongs to; without it the node runs alone")
    shard.add_argument("--lease-table", help="DynamoDB table of the shards' leases (key: shard)")
    shard.add_argument("--node-id", help="this node's name in the lease (default: host:port)")
    shard.add_argument("--advertise", help="the address other nodes and clients reach this one at")
    shard.add_argument("--replication-port", type=_port, default=9002, help="0 picks a free port")
    shard.add_argument(
        "--advertise-replication",
        type=_address,
        metavar="HOST:PORT",
        help="where the standby reaches this node's replication port, when a port mapping or a proxy "
        "sits between them (default: --advertise and --replication-port)",
    )
    shard.add_argument("--lease-ttl-ms", type=_positive, default=2000)
    shard.add_argument(
        "--replica-timeout-ms",
        type=_positive,
        default=500,
        help="a standby that acknowledges nothing for this long is let go (the primary goes on alone)",
    )
    shard.add_argument(
        "--replica-sync-gap-ms",
        type=_non_negative_float,
        default=REPLICA_SYNC_GAP_S * 1000,
        help="--ack-after replica: each node syncs its journal at most this often (0: continuously), "
        "the standby always, the primary while its standby is live: no disk is part of an answer "
        "there, and each fdatasync costs the machine CPU and wake-ups (its follower's too)",
    )
    shard.add_argument(
        "--standby-receiver",
        choices=("native", "loop"),
        default="native",
        help="as a standby, read the replication link on a native thread that writes and acknowledges "
        "each batch without the event loop (default), or on the event loop (the reference path)",
    )
    serve_cmd.add_argument(
        "--expected-orders-per-day",
        type=_positive,
        default=1 << 20,
        help="client order ids one trading day holds: the engine sizes its table for them at start",
    )

    follow_cmd = commands.add_parser("follow", help=argparse.SUPPRESS)  # started by `serve`
    follow_cmd.add_argument("--data-dir", type=Path, required=True)
    follow_cmd.add_argument("--control-fd", type=int, required=True)
    follow_cmd.add_argument("--wake-fd", type=int, required=True)
    follow_cmd.add_argument("--snapshot-every", type=_positive, default=DEFAULT_SNAPSHOT_EVERY)
    follow_cmd.add_argument("--delivery-timeout", type=float, default=5.0)
    follow_cmd.add_argument("--kinesis-stream")
    follow_cmd.add_argument("--executions-stream")
    follow_cmd.add_argument("--instruments", type=Path)
    follow_cmd.add_argument("--start-seq", type=int, default=0)
    follow_cmd.add_argument("--depth-levels", type=_depth_levels, default=DEFAULT_DEPTH_LEVELS)
    follow_cmd.add_argument(
        "--standby",
        action="store_true",
        help="a standby's follower: publishes nothing, snapshots only where its primary's follower did",
    )

    verify_cmd = commands.add_parser("verify", help="check every journal record and snapshot")
    common(verify_cmd)

    replay_cmd = commands.add_parser("replay", help="rebuild the state as of a seq and print its checksums")
    common(replay_cmd)
    replay_cmd.add_argument("--to-seq", type=_non_negative, required=True)
    return parser


def _print_checksums(seq: int, checksum: int, books: dict[str, int]) -> None:
    print(f"seq {seq} checksum {checksum}")
    for symbol, value in sorted(books.items()):
        print(f"book {symbol} {value}")


def _verify(data_dir: Path, instruments: tuple[Instrument, ...]) -> int:
    report = verify(data_dir, instruments)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for problem in report.problems:
        print(f"corrupt: {problem}", file=sys.stderr)
    print(f"last good seq {report.last_good_seq}; {report.snapshots_checked} snapshots checked")
    _print_checksums(report.last_good_seq, report.checksum, report.book_checksums)
    return EXIT_CORRUPT if report.problems else EXIT_OK


def _replay(data_dir: Path, instruments: tuple[Instrument, ...], to_seq: int) -> int:
    try:
        engine, report = recover(data_dir, instruments, to_seq=to_seq)
    except (JournalCorruptError, RecoveryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CORRUPT
    for line in report.lines():
        print(line, file=sys.stderr)
    _print_checksums(engine.seq, engine_checksum(engine), engine.book_checksums())
    return EXIT_OK


def _shard(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ShardConfig | None:
    """The replicated shard the command line names, if it names one."""
    if args.shard is None:
        if AckMode(args.ack_after).replicated:
            parser.error(f"--ack-after {args.ack_after} needs a replicated shard: --shard and --lease-table")
        return None
    if not args.lease_table:
        parser.error("--shard needs --lease-table")
    advertise = args.advertise or args.host
    return ShardConfig(
        shard=args.shard,
        node_id=args.node_id or f"{advertise}:{args.port}",
        store=DynamoLeaseStore(args.lease_table),
        client_address=f"{advertise}:{args.port}" if args.port else "",
        replication_host=args.host,
        replication_port=args.replication_port,
        advertise_host=advertise,
        advertise_replication=args.advertise_replication or "",
        ttl_ms=args.lease_ttl_ms,
        margin_ms=args.lease_ttl_ms // 4,
        replica_timeout=args.replica_timeout_ms / 1000,
        replica_sync_gap=args.replica_sync_gap_ms / 1000,
        native_receiver=args.standby_receiver == "native",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with a message on stderr for bad arguments
    instruments = DEFAULT_INSTRUMENTS
    if args.instruments is not None:
        try:
            instruments = load_instruments(args.instruments)
        except ValueError as exc:
            parser.error(str(exc))
    data_dir: Path = args.data_dir
    if args.command != "serve" and not data_dir.is_dir():
        parser.error(f"data dir {data_dir} does not exist")
    if data_dir.exists() and not data_dir.is_dir():
        parser.error(f"data dir {data_dir} is not a directory")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.command == "verify":
        return _verify(data_dir, instruments)
    if args.command == "replay":
        return _replay(data_dir, instruments, args.to_seq)
    if args.command == "follow":
        return run_follower_process(
            data_dir,
            args.control_fd,
            args.wake_fd,
            args.snapshot_every,
            args.delivery_timeout,
            args.kinesis_stream,
            args.executions_stream,
            instruments_from_env() or instruments,
            args.start_seq,
            args.depth_levels,
            standby=args.standby,
        )
    config = NodeConfig(
        data_dir=data_dir,
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        instruments=instruments,
        snapshot_every=args.snapshot_every,
        depth_levels=args.depth_levels,
        kinesis_stream=args.kinesis_stream,
        executions_stream=args.executions_stream,
        segment_bytes=args.segment_bytes,
        ack_after=AckMode(args.ack_after),
        tune_runtime=True,
        node_number=args.node_number,
        follower_process=True,
        expected_client_order_ids=args.expected_orders_per_day,
        shard=_shard(parser, args),
        limits=ConnectionLimits(
            max_connections=args.max_connections,
            idle_timeout=args.idle_timeout,
            partial_frame_timeout=args.partial_frame_timeout,
            keepalive_idle=args.keepalive_idle,
            snapshot_interval=args.snapshot_interval,
            snapshot_burst=args.snapshot_burst,
        ),
        session_keys=_session_keys(parser, args),
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return run(serve(config))
    except NodeNumberMismatchError as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (JournalCorruptError, RecoveryError, NodeIdentityError) as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return EXIT_CORRUPT
    except SessionKeyError as exc:
        print(f"refusing to start: session keys: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # the port is taken, the data dir is not writable...
        print(f"cannot serve: {exc}", file=sys.stderr)
        return EXIT_CORRUPT
