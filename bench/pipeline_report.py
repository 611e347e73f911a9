"""The tables of the KPL codec and end-to-end market-data figures of ``make bench-pipeline``."""

from __future__ import annotations

from typing import Any


def print_codec(codec: dict[str, Any]) -> None:
    print(
        f"KPL codec, {codec['updates']:,} updates into ~{codec['record_limit_bytes'] // 1000} kB records, "
        f"CPU us per update (best of {codec['cpu_us_per_update_best_of']}):"
    )
    print(f"  {'':32} {'meridian.kpl':>14} {'aws-kinesis-agg':>16} {'ratio':>7}")
    for step in ("encode", "decode"):
        ours, theirs = codec[f"ours_{step}_cpu_us"], codec[f"package_{step}_cpu_us"]
        print(f"  {step:32} {ours:>14} {theirs:>16} {codec[f'package_over_ours_{step}']:>7}")


def print_end_to_end(e2e: dict[str, Any]) -> None:
    print(
        f"market data end to end: publisher -> stream enforcing Kinesis limits ({e2e['shards']} shards) -> "
        f"handler -> DynamoDB stand-in, {e2e['offer_seconds']} s offered per run"
    )
    rows = [
        ("updates handled/s", "updates_handled_per_s"),
        ("elapsed s (offer to last update in the table)", "elapsed_s"),
        ("trades offered / in the table", None),
        ("trades in order on the stream", "trades_in_order_on_stream"),
        ("books offered / written / superseded", None),
        ("Kinesis records", "kinesis_records"),
        ("records per shard-second (mean / peak window)", None),
        ("bytes per shard-second (mean / peak window)", None),
        ("throttled records", "throttled_records"),
        ("lag ms trades p50 / p99", None),
        ("lag ms books p50 / p99", None),
        ("CPU us per update (publisher / consumer)", None),
    ]
    for name, scenario in e2e["scenarios"].items():
        agg, floor = scenario["aggregated"], scenario["floor_one_record_per_update"]
        print(
            f"  {name} ({agg['symbols']} symbol(s), {agg['offered_per_s']:,} updates/s offered, "
            f"aggregated over the floor: x{scenario['ratio_updates_per_s']})"
        )
        print(f"    {'':48} {'aggregated':>22} {'floor: 1 record/update':>24}")
        for label, key in rows:
            print(f"    {label:48} {_e2e_cell(agg, label, key):>22} {_e2e_cell(floor, label, key):>24}")


def _e2e_cell(run: dict[str, Any], label: str, key: str | None) -> str:
    if key is not None:
        value = run[key]
        return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
    pairs = {
        "trades offered / in the table": ("trades_offered", "trades_in_table"),
        "books offered / written / superseded": (
            "books_offered",
            "books_written",
            "books_superseded_by_publisher",
        ),
        "records per shard-second (mean / peak window)": (
            "records_per_shard_s_mean",
            "records_per_shard_s_peak_window",
        ),
        "bytes per shard-second (mean / peak window)": (
            "bytes_per_shard_s_mean",
            "bytes_per_shard_s_peak_window",
        ),
        "lag ms trades p50 / p99": ("lag_ms_trades_p50", "lag_ms_trades_p99"),
        "lag ms books p50 / p99": ("lag_ms_books_p50", "lag_ms_books_p99"),
        "CPU us per update (publisher / consumer)": (
            "publisher_cpu_us_per_update",
            "consumer_cpu_us_per_update",
        ),
    }
    return " / ".join(f"{run[k]:,}" for k in pairs[label])
