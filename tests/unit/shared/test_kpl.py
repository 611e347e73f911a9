"""The KPL aggregation format (``meridian.kpl``), held to the ``aws-kinesis-agg`` package's own
aggregator and deaggregator in both directions, and plain records read as themselves."""

from __future__ import annotations

import base64
import hashlib

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator  # type: ignore[import-untyped]
from aws_kinesis_agg.deaggregator import deaggregate_records  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from meridian.kpl import (
    MAGIC,
    AggregationError,
    aggregate,
    framing_bytes,
    is_aggregated,
    user_record_bytes,
    user_records,
)

payloads = st.lists(st.binary(min_size=1, max_size=400), min_size=1, max_size=40)
keys = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=20)


def lambda_record(data: bytes, key: str = "AAPL") -> dict[str, object]:
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": key,
            "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
            "data": base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": 1_772_461_800.0,
        }
    }


@given(keys, payloads)
def test_a_record_is_byte_for_byte_what_the_package_aggregator_writes(key: str, datas: list[bytes]) -> None:
    reference = RecordAggregator()
    for data in datas:
        assert reference.add_user_record(key, data) is None
    expected_key, _, expected = reference.clear_and_get().get_contents()
    assert aggregate(key, datas) == expected
    assert expected_key == key


@given(keys, payloads)
def test_the_package_deaggregator_reads_what_we_write_and_we_read_what_it_writes(
    key: str, datas: list[bytes]
) -> None:
    ours = aggregate(key, datas)
    theirs = deaggregate_records([lambda_record(ours, key)])
    assert [base64.b64decode(r["kinesis"]["data"]) for r in theirs] == datas
    assert [r["kinesis"]["subSequenceNumber"] for r in theirs] == list(range(len(datas)))
    assert user_records(ours) == datas


@given(keys, payloads)
def test_the_size_arithmetic_is_exact(key: str, datas: list[bytes]) -> None:
    """The sink cuts records at the size limit from this arithmetic, without serialising first."""
    expected = framing_bytes(key) + sum(user_record_bytes(len(data)) for data in datas)
    assert len(aggregate(key, datas)) == expected


@pytest.mark.parametrize(
    "plain",
    [
        b'{"type":"trade","symbol":"AAPL","seq":1}',
        b"",
        MAGIC,  # the magic alone, nothing after it
        MAGIC + b"not protobuf" + b"0123456789abcdef",  # the magic, but no matching digest
    ],
)
def test_a_record_without_the_magic_and_its_digest_is_one_plain_record(plain: bytes) -> None:
    assert not is_aggregated(plain)
    assert user_records(plain) == [plain]


def test_a_record_whose_digest_matches_but_does_not_parse_is_refused_with_its_reason() -> None:
    body = b"\xff\xff\xff"  # not a protobuf message
    broken = MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()
    with pytest.raises(AggregationError, match="does not parse"):
        user_records(broken)


def test_an_aggregated_record_without_user_records_is_refused() -> None:
    body = b"\x0a\x04AAPL"  # a partition key table, no records
    empty = MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()
    with pytest.raises(AggregationError, match="no user records"):
        user_records(empty)
