"""The KPL codec, measured: ``meridian.kpl`` against the ``aws-kinesis-agg`` package's own
record-at-a-time ``RecordAggregator`` and ``deaggregate_records`` (both on the package's protobuf
schema), interleaved on the same updates; process CPU time per update, best of the repeats.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from bench.marketdata_e2e import STREAM, tape
from meridian.kpl import user_records
from meridian_local.delivery.lambda_events import kinesis_record, stream_arn


def bench_codec(updates: int = 50_000, repeats: int = 3) -> dict[str, Any]:
    """Encode and decode one symbol's updates into ~100 kB records, both ways, interleaved."""
    from aws_kinesis_agg.aggregator import RecordAggregator  # type: ignore[import-untyped]  # noqa: PLC0415
    from aws_kinesis_agg.deaggregator import deaggregate_records  # type: ignore[import-untyped]  # noqa: PLC0415

    from meridian.kpl import aggregate, framing_bytes, user_record_bytes  # noqa: PLC0415

    datas = [record.to_json() for record in tape(["AAPL"], updates)]
    limit = 100_000

    def ours_encode() -> list[bytes]:
        out: list[bytes] = []
        chunk: list[bytes] = []
        size = framing_bytes("AAPL")
        for data in datas:
            grown = size + user_record_bytes(len(data))
            if chunk and grown > limit:
                out.append(aggregate("AAPL", chunk))
                chunk, grown = [], framing_bytes("AAPL") + user_record_bytes(len(data))
            chunk.append(data)
            size = grown
        return [*out, aggregate("AAPL", chunk)]

    def package_encode() -> list[bytes]:
        aggregator, out = RecordAggregator(max_size=limit), []
        for data in datas:
            full = aggregator.add_user_record("AAPL", data)
            if full is not None:
                out.append(full.get_contents()[2])
        return [*out, aggregator.clear_and_get().get_contents()[2]]

    blobs = ours_encode()
    events = [kinesis_record(blob, "AAPL", f"{n:056d}", stream_arn(STREAM)) for n, blob in enumerate(blobs)]

    def ours_decode() -> list[bytes]:
        return [data for event in events for data in user_records(base64.b64decode(event["kinesis"]["data"]))]

    def package_decode() -> list[bytes]:
        return [base64.b64decode(r["kinesis"]["data"]) for r in deaggregate_records(events)]

    if ours_decode() != datas or package_decode() != datas:
        raise SystemExit("the codecs disagree")
    cpu: dict[str, list[float]] = {
        name: [] for name in ("ours_encode", "package_encode", "ours_decode", "package_decode")
    }
    for _ in range(repeats):  # interleaved
        for name, action in (
            ("ours_encode", ours_encode),
            ("package_encode", package_encode),
            ("ours_decode", ours_decode),
            ("package_decode", package_decode),
        ):
            c0 = time.process_time()
            action()
            cpu[name].append(time.process_time() - c0)
    per = {name: round(min(values) / updates * 1e6, 3) for name, values in cpu.items()}
    return {
        "updates": updates,
        "record_limit_bytes": limit,
        "cpu_us_per_update_best_of": repeats,
        **{f"{name}_cpu_us": value for name, value in per.items()},
        "package_over_ours_encode": round(per["package_encode"] / per["ours_encode"], 2),
        "package_over_ours_decode": round(per["package_decode"] / per["ours_decode"], 2),
        "records_ours": len(blobs),
        "records_package": len(package_encode()),
    }
