"""The runbook stack reads an execution's whole history: a long runbook's history spans pages
(Step Functions returns at most 1,000 events a call), and states entered after the first page count."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meridian_local.cloud.runbook_stack import RunbookStack


class _Paginator:
    def paginate(self, executionArn: str) -> Iterator[dict[str, Any]]:  # noqa: N803 - boto3's name
        assert executionArn == "arn:execution"
        yield {"events": [{"stateEnteredEventDetails": {"name": f"s{n}"}} for n in range(1000)]}
        yield {"events": [{"type": "TaskSucceeded"}, {"stateEnteredEventDetails": {"name": "Resume"}}]}


class _StepFunctions:
    def get_paginator(self, operation: str) -> _Paginator:
        assert operation == "get_execution_history"
        return _Paginator()


class _Stack(RunbookStack):
    def client(self, service: str, region: str | None = None) -> Any:
        assert service == "stepfunctions"
        return _StepFunctions()


def test_states_entered_after_the_first_page_of_history_are_read() -> None:
    stack = _Stack(moto=None, region="us-east-1", environment="dev")  # type: ignore[arg-type]
    states = stack.states_entered("arn:execution")
    assert len(states) == 1001
    assert states[-1] == "Resume"
