"""Where moto 5.2.5 behaves differently from AWS in ways the runbooks depend on, made to match AWS.

* SDK integrations (``arn:aws:states:::aws-sdk:...``) use the AWS SDK v2 member names: see
  ``sdk_integrations``.
* A promoted RDS read replica no longer reports ``ReadReplicaSourceDBInstanceIdentifier`` (moto
  keeps it), which is how a runbook sees that the promotion finished.
* ``SendTaskFailure`` passes its ``cause`` on to the waiting task (moto drops it), so a rejection's
  reason reaches the state machine's Catch and its Fail state.
* An execution started without a name gets a UUID as AWS gives it (moto leaves ``None``, which
  ``$$.Execution.Name`` then carries into the runbooks' idempotency keys).
* ``$$.Execution.StartTime`` is an ISO-8601 string as in AWS (moto hands the state machine a
  datetime, which then breaks DescribeExecution's output).
* A definite JSONPath through an array element (``$.Messages[0].Body``) selects the value, as in AWS
  (moto wraps it in a one-element list).
* Choice timestamps are RFC 3339 as AWS reads them: fractional seconds and numeric offsets included
  (moto reads only ``%Y-%m-%dT%H:%M:%SZ``, and a comparison with anything else is false).
* A DISABLED EventBridge rule delivers nothing (moto delivers regardless of the rule's state); the
  switchover runbooks turn a rule on only while they wait for the first order.
"""

from __future__ import annotations

import datetime
import importlib
import re
import uuid
from typing import Any

from meridian_local.endpoint import sdk_integrations

_installed = False


def _promote_and_detach(original: Any) -> Any:
    def promote_read_replica(self: Any, db_kwargs: dict[str, Any]) -> Any:
        database = original(self, db_kwargs)
        database.source_db_instance_identifier = None
        return database

    return promote_read_replica


def _send_task_failure(self: Any) -> Any:
    from moto.core.responses import EmptyResult  # noqa: PLC0415

    backend: Any = self.stepfunction_backend
    task_token, error, cause = (
        self._get_param("taskToken"),
        self._get_param("error"),
        self._get_param("cause"),
    )
    if backend.send_task_failure.__code__.co_argcount > 3:  # the executing (parser) backend takes a cause
        backend.send_task_failure(task_token, error=error, cause=cause)
    else:
        backend.send_task_failure(task_token, error=error)
    return EmptyResult()


def _named(original: Any) -> Any:
    def start_execution(
        self: Any, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        return original(self, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    return start_execution


def _start_time_as_text(original: Any) -> Any:
    def get_start_execution_details(self: Any) -> Any:
        details = original(self)
        if isinstance(details.start_time, datetime.datetime):
            details.start_time = details.start_time.isoformat()
        return details

    return get_start_execution_details


# A path of field names and literal indexes only: it names one value (no wildcard, slice, filter).
_DEFINITE_PATH = re.compile(r"^\$(?:\.[A-Za-z0-9_@-]+|\[\d+\]|\['[^']+'\])*$")
_JSON_PATH_USERS = (
    "moto.stepfunctions.parser.asl.component.common.string.string_expression",
    "moto.stepfunctions.parser.asl.component.intrinsic.argument.argument",
    "moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.timestamp_operators",
    "moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.boolean_equals",
    "moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.numeric",
    "moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.string_operators",
    "moto.stepfunctions.parser.asl.eval.states",
    "moto.stepfunctions.parser.asl.utils.json_path",
)


def _definite_paths(original: Any) -> Any:
    def extract_json(path: str, data: Any) -> Any:
        value = original(path, data)
        if isinstance(value, list) and len(value) == 1 and _DEFINITE_PATH.match(path):
            from jsonpath_ng import ext  # noqa: PLC0415 - moto's own JSONPath parser

            parse: Any = getattr(ext, "parse")  # noqa: B009 - not in the module's declared exports
            matches = parse(path).find(data)
            if len(matches) == 1 and not isinstance(matches[0].value, list):
                return matches[0].value
        return value

    return extract_json


def _rfc3339(text: str) -> datetime.datetime | None:
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return value if "T" in text and value.tzinfo is not None else None


def _enabled_only(original: Any) -> Any:
    def send_to_targets(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.state != "ENABLED":
            return None
        return original(self, *args, **kwargs)

    return send_to_targets


def install() -> None:
    global _installed
    sdk_integrations.install()
    if _installed:
        return
    from moto.events.models import Rule  # noqa: PLC0415
    from moto.rds.models import RDSBackend  # noqa: PLC0415
    from moto.stepfunctions.parser.backend.execution import Execution  # noqa: PLC0415
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend  # noqa: PLC0415
    from moto.stepfunctions.responses import StepFunctionResponse  # noqa: PLC0415

    StepFunctionsParserBackend.start_execution = _named(StepFunctionsParserBackend.start_execution)  # type: ignore[method-assign]

    StepFunctionResponse.send_task_failure = _send_task_failure  # type: ignore[method-assign]
    RDSBackend.promote_read_replica = _promote_and_detach(RDSBackend.promote_read_replica)  # type: ignore[method-assign]
    Rule.send_to_targets = _enabled_only(Rule.send_to_targets)  # type: ignore[method-assign]
    from moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations import (  # noqa: PLC0415
        is_operator,
    )
    from moto.stepfunctions.parser.asl.utils import json_path  # noqa: PLC0415

    is_operator.IsTimestamp.string_to_timestamp = staticmethod(_rfc3339)  # type: ignore[method-assign,assignment]

    definite = _definite_paths(json_path.extract_json)
    for name in _JSON_PATH_USERS:
        module: Any = importlib.import_module(name)
        module.extract_json = definite
    Execution.get_start_execution_details = _start_time_as_text(Execution.get_start_execution_details)  # type: ignore[method-assign]
    _installed = True
