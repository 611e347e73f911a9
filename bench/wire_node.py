"""What the wire benchmark reads beside its own clock: the node's counters, process CPU, the disk.

* ``node_counters``: the node's journal counters and its new-order latency histogram from
  ``/metrics``; differences over a run are that run's alone (heartbeats never journal, and the
  histogram is per request type).
* ``process_cpu_seconds``: the CPU time of a process (``/proc``), a cost that does not depend on
  how loaded the machine is.
* ``filesystem_of``: the file system a path lives on (``/proc/self/mounts``): an fdatasync on
  tmpfs reaches memory, not a disk.
* ``replicated_pair``: a primary and its standby, for the replicated ack modes, with their lease
  table on a moto endpoint process of its own (``lease_endpoint``).
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from meridian_hotpath.process import NodeProcess

MEMORY_FILE_SYSTEMS = frozenset({"tmpfs", "ramfs"})
_LATENCY_BUCKET = "meridian_request_latency_seconds_bucket"
_BUCKET_PREFIX = "new_order_le_"


def node_counters(metrics_port: int) -> dict[str, float]:
    """Cumulative counters: journal commits (fsyncs), seconds in fsync, records committed, and the
    order latency histogram (received -> answer written, inside the node)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    values = {s.name: s.value for s in samples if not s.labels}
    counters = {
        "commits": values.get("meridian_journal_fsync_seconds_count", 0.0),
        "fsync_seconds": values.get("meridian_journal_fsync_seconds_sum", 0.0),
        "records": values.get("meridian_journal_batch_records_sum", 0.0),
    }
    for s in samples:
        if s.name == _LATENCY_BUCKET and s.labels.get("type") == "order":
            counters[_BUCKET_PREFIX + s.labels["le"]] = s.value
    return counters


def _bucket_quantile_us(deltas: dict[str, float], q: float) -> float | str | None:
    """The upper bound of the histogram bucket holding the ``q`` quantile (a bound, not a value);
    beyond the largest finite bucket, ``">N"`` (JSON has no infinity)."""
    buckets = sorted(
        (float(key[len(_BUCKET_PREFIX) :]), count)
        for key, count in deltas.items()
        if key.startswith(_BUCKET_PREFIX)
    )
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]  # +Inf: every observation
    finite = [bound for bound, _ in buckets if bound != float("inf")]
    for bound, cumulative in buckets:
        if cumulative >= q * total:
            return round(bound * 1e6, 1) if bound != float("inf") else f">{round(finite[-1] * 1e6, 1)}"
    return None


def journal_figures(deltas: dict[str, float]) -> dict[str, float | str]:
    """Per-fsync figures and the node's own latency bounds, from counter differences over runs."""
    commits = deltas.get("commits", 0.0)
    if not commits:
        return {}
    figures: dict[str, float | str] = {
        "journal_commits": int(commits),
        "records_per_commit": round(deltas["records"] / commits, 1),
        "fsync_mean_us": round(deltas["fsync_seconds"] / commits * 1e6, 1),
    }
    for name, q in (("node_p50_us", 0.50), ("node_p99_us", 0.99)):
        bound = _bucket_quantile_us(deltas, q)
        if bound is not None:
            figures[name] = bound
    return figures


def process_cpu_seconds(pid: int) -> float:
    """CPU time of a process's live threads so far, in nanosecond resolution (the scheduler's own
    account, ``/proc/PID/task/*/schedstat``); ``/proc/PID/stat`` counts in clock ticks (10 ms),
    too coarse for a run of a second. A thread that has exited is no longer counted: the node's
    threads (loop, journal, snapshot writer) live as long as it does."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # the thread ended meanwhile
    return total / 1e9


def filesystem_of(path: Path, mounts: str | None = None) -> dict[str, str | bool]:
    """The mount holding ``path`` (the longest mount point that contains it; the last one mounted
    wins on a tie), its type, and whether an fdatasync there reaches a disk."""
    real = os.path.realpath(path)
    text = Path("/proc/self/mounts").read_text() if mounts is None else mounts
    mount_point, fs_type = "/", "unknown"
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(mount_point):
            mount_point, fs_type = point, fields[2]
    memory = fs_type in MEMORY_FILE_SYSTEMS
    verdict = (
        f"{fs_type}: memory, so fdatasync reaches no disk: these are not durable-write figures"
        if memory
        else f"{fs_type} at {mount_point}: fdatasync per batch reaches the device"
    )
    return {"mount_point": mount_point, "filesystem": fs_type, "memory_backed": memory, "verdict": verdict}


REPLICA_TABLE = "meridian-bench-leases"


@dataclass
class ReplicatedPair:
    primary: NodeProcess
    standby: NodeProcess


@contextlib.contextmanager
def lease_endpoint() -> Iterator[str]:
    """The local moto endpoint as its own process, for the lease table: in this process its threads
    would take the benchmark client's GIL (and its CPU figures) at every lease read."""
    from meridian_local.endpoint.moto_process import moto_process  # noqa: PLC0415 - replicated runs only

    with moto_process() as endpoint:
        yield endpoint


@contextlib.contextmanager
def replicated_pair(directory: Path, *node_args: str) -> Iterator[ReplicatedPair]:
    """A primary and its hot standby (a lease table on a moto endpoint process), for the rows of a
    replicated ack mode: yields the pair once the standby is in sync; stops all three after."""
    import boto3  # noqa: PLC0415

    table = REPLICA_TABLE
    credentials = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with lease_endpoint() as endpoint:
        dynamodb = boto3.client(
            "dynamodb", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - the local moto server's stand-in credentials
        )  # fmt: skip
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "shard", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "shard", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        env = {**credentials, "AWS_ENDPOINT_URL": endpoint}
        shard = ("--shard", "bench", "--lease-table", table, "--replication-port", "0")
        nodes: list[NodeProcess] = []
        try:
            for name in ("primary", "standby"):
                nodes.append(
                    NodeProcess.start(directory / name, *node_args, *shard, "--node-id", name, env=env)
                )
            deadline = time.monotonic() + 60
            while not _in_sync(dynamodb, table):
                if time.monotonic() > deadline:
                    raise RuntimeError("the standby never got in sync")
                time.sleep(0.05)
            yield ReplicatedPair(*nodes)
        finally:
            for node in reversed(nodes):
                node.__exit__(None, None, None)


def _in_sync(dynamodb: Any, table: str) -> bool:
    item = dynamodb.get_item(TableName=table, Key={"shard": {"S": "bench"}}, ConsistentRead=True).get("Item")
    return bool(item and item.get("in_sync", {}).get("BOOL"))
