"""The limit-enforcing Kinesis stand-in refuses what a provisioned shard refuses, record by record."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.limited_kinesis import LimitedKinesis

STREAM = "limits"


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def keys_on(stream: LimitedKinesis, shard_index: int, count: int) -> list[str]:
    wanted = stream.shards[shard_index].shard_id
    return [k for k in (f"K{n}" for n in range(10_000)) if stream.shard_for(k).shard_id == wanted][:count]


def test_the_thousand_and_first_record_of_a_second_on_a_shard_is_throttled_alone() -> None:
    clock = Clock()
    stream = LimitedKinesis(STREAM, 2, clock=clock)
    hot, cold = keys_on(stream, 0, 1)[0], keys_on(stream, 1, 1)[0]
    for _ in range(2):
        answer = stream.put_records(StreamName=STREAM, Records=[{"Data": b"x", "PartitionKey": hot}] * 500)
        assert answer["FailedRecordCount"] == 0
    mixed = [{"Data": b"x", "PartitionKey": hot}, {"Data": b"y", "PartitionKey": cold}]
    answer = stream.put_records(StreamName=STREAM, Records=mixed)
    assert answer["FailedRecordCount"] == 1
    assert answer["Records"][0]["ErrorCode"] == "ProvisionedThroughputExceededException"
    assert "SequenceNumber" in answer["Records"][1], "the other shard is not affected"
    clock.now += 0.999
    assert stream.put_records(StreamName=STREAM, Records=mixed[:1])["FailedRecordCount"] == 1
    clock.now += 0.002  # the window has moved past the first thousand
    assert stream.put_records(StreamName=STREAM, Records=mixed[:1])["FailedRecordCount"] == 0
    assert stream.throttled == 2
    assert len(stream.read(stream.shards[0].shard_id, 0)) == 1001


def test_a_shard_takes_one_mebibyte_a_second_partition_keys_included() -> None:
    clock = Clock()
    stream = LimitedKinesis(STREAM, 1, clock=clock)
    key = "AAPL"
    first = {"Data": b"x" * (512 * 1024 - len(key)), "PartitionKey": key}
    assert stream.put_records(StreamName=STREAM, Records=[first, first])["FailedRecordCount"] == 0
    one_byte = {"Data": b"x", "PartitionKey": key}
    assert stream.put_records(StreamName=STREAM, Records=[one_byte])["FailedRecordCount"] == 1
    assert stream.shards[0].peak_bytes == 1024 * 1024


@pytest.mark.parametrize(
    ("records", "code"),
    [
        ([], "ValidationException"),
        ([{"Data": b"x", "PartitionKey": "A"}] * 501, "ValidationException"),
        ([{"Data": b"x", "PartitionKey": ""}], "ValidationException"),
        ([{"Data": b"x" * (1024 * 1024), "PartitionKey": "A"}], "ValidationException"),
        ([{"Data": b"x" * (1024 * 1024 - 1), "PartitionKey": "A"}] * 6, "InvalidArgumentException"),
    ],
)
def test_a_call_outside_the_request_limits_is_refused_whole(
    records: list[dict[str, object]], code: str
) -> None:
    stream = LimitedKinesis(STREAM, 1, clock=Clock())
    with pytest.raises(ClientError) as refused:
        stream.put_records(StreamName=STREAM, Records=records)
    assert refused.value.response["Error"]["Code"] == code
    assert stream.shards[0].records == []


def test_an_unknown_stream_is_not_found() -> None:
    stream = LimitedKinesis(STREAM, 1, clock=Clock())
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        stream.put_records(StreamName="other", Records=[{"Data": b"x", "PartitionKey": "A"}])
