"""The wire benchmark's measuring parts: coordinated-omission correction, floors, the journal's disk."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.wire_client import LAST, paced, pipelined
from bench.wire_node import _bucket_quantile_us, filesystem_of, journal_figures
from meridian.protocol import Heartbeat, Message


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback echo server on a port the OS chose at bind time."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while not stop.is_set():
                data = conn.recv(1 << 16)
                if not data:
                    return
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()
    thread.join(10)


def test_a_client_that_falls_behind_counts_the_wait_of_the_requests_it_sent_late(echo_port: int) -> None:
    pause: list[int] = []

    def stream() -> Iterator[Message]:
        n = 0
        while True:
            n += 1
            if n == 20:  # the client stalls (a GC pause, a busy CPU) while building request 20
                begun = time.perf_counter_ns()
                time.sleep(0.05)
                pause.append(time.perf_counter_ns() - begun)
            yield Heartbeat(n, 0)

    run = paced(echo_port, stream(), rate=1000, seconds=0.1, send_flags=LAST)
    assert run.answered == 100
    waited = [
        corrected - service for corrected, service in zip(run.latencies_ns, run.service_ns, strict=True)
    ]
    assert min(waited) >= 0  # never sent before it was due
    # Request 20 was due before the pause began and left after it ended: its wait is counted,
    # while its service time (from the actual send) knows nothing of it.
    assert max(waited) >= pause[0]
    assert run.wall_s > 0


def test_pipelined_runs_answer_every_request_and_time_from_the_actual_send(echo_port: int) -> None:
    run = pipelined(
        echo_port, (Heartbeat(n, 0) for n in range(1, 10**6)), count=500, window=32, send_flags=LAST
    )
    assert run.answered == 500
    assert run.latencies_ns == run.service_ns


def test_the_journal_file_system_is_named_and_tmpfs_is_called_memory(tmp_path: Path) -> None:
    mounts = (
        "/dev/vda / ext4 rw 0 0\n"
        "tmpfs /tmp tmpfs rw 0 0\n"
        "/dev/vdb /tmp/disk xfs rw 0 0\n"
        "proc /proc proc rw 0 0\n"
    )
    assert filesystem_of(Path("/tmp/x/journal"), mounts)["filesystem"] == "tmpfs"
    assert filesystem_of(Path("/tmp/x/journal"), mounts)["memory_backed"] is True
    on_disk = filesystem_of(Path("/tmp/disk/journal"), mounts)
    assert (on_disk["mount_point"], on_disk["filesystem"], on_disk["memory_backed"]) == (
        "/tmp/disk",
        "xfs",
        False,
    )
    assert filesystem_of(Path("/tmpfoo"), mounts)["filesystem"] == "ext4"  # a prefix is not a parent
    assert filesystem_of(tmp_path)["filesystem"] != "unknown"  # this machine's own mounts


def test_node_latency_bounds_come_from_the_histogram_bucket_of_the_quantile() -> None:
    deltas = {"new_order_le_0.0001": 50.0, "new_order_le_0.001": 98.0, "new_order_le_0.01": 100.0,
              "new_order_le_+Inf": 100.0}  # fmt: skip
    assert _bucket_quantile_us(deltas, 0.50) == 100.0
    assert _bucket_quantile_us(deltas, 0.99) == 10_000.0
    figures = journal_figures(deltas | {"commits": 10.0, "records": 100.0, "fsync_seconds": 0.002})
    assert figures == {"journal_commits": 10, "records_per_commit": 10.0, "fsync_mean_us": 200.0,
                       "node_p50_us": 100.0, "node_p99_us": 10_000.0}  # fmt: skip
    assert journal_figures({}) == {}


def test_a_quantile_beyond_the_largest_bucket_is_named_as_such_not_infinity() -> None:
    deltas = {"new_order_le_0.001": 10.0, "new_order_le_0.01": 50.0, "new_order_le_+Inf": 100.0}
    assert _bucket_quantile_us(deltas, 0.99) == ">10000.0"


def test_a_replicated_modes_cost_over_async_is_counted_in_each_runs_own_echo_round_trips() -> None:
    from bench.wire_bench import replica_over_async  # noqa: PLC0415 - the bench's module, not a library

    def config(args: str, orders_p50: float, echo_p50: float) -> dict[str, Any]:
        return {"node_args": args, "paced": {"orders": {"p50_us": orders_p50}, "echo": {"p50_us": echo_p50}}}

    configs = [
        config("--ack-after async", 150.0, 100.0),  # 1.5 echo round trips
        config("--ack-after replica --standby-sync-gap-ms 5", 500.0, 125.0),  # 4.0
        config("--ack-after fsync", 400.0, 100.0),  # neither async nor replicated: no row
    ]
    assert replica_over_async(configs) == [
        {
            "node_args": "--ack-after replica --standby-sync-gap-ms 5",
            "p50_over_async_us": 350.0,
            "p50_over_async_echo_round_trips": 2.5,
        }
    ]
    assert replica_over_async(configs[1:]) == []  # no async run to compare with
