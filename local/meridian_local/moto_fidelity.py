"""Where moto 5.2.5 behaves differently from AWS in ways the runbooks depend on, made to match AWS.

* SDK integrations (``arn:aws:states:::aws-sdk:...``) use the AWS SDK v2 member names: see
  ``sdk_integrations``.
* A promoted RDS read replica no longer reports ``ReadReplicaSourceDBInstanceIdentifier`` (moto
  keeps it), which is how a runbook sees that the promotion finished.
* ``SendTaskFailure`` passes its ``cause`` on to the waiting task (moto drops it), so a rejection's
  reason reaches the state machine's Catch and its Fail state.
* An execution started without a name gets a UUID as AWS gives it (moto leaves ``None``, which
  ``$$.Execution.Name`` then carries into the runbooks' idempotency keys).
"""

from __future__ import annotations

import uuid
from typing import Any

from meridian_local import sdk_integrations

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


def install() -> None:
    global _installed
    sdk_integrations.install()
    if _installed:
        return
    from moto.rds.models import RDSBackend  # noqa: PLC0415
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend  # noqa: PLC0415
    from moto.stepfunctions.responses import StepFunctionResponse  # noqa: PLC0415

    StepFunctionsParserBackend.start_execution = _named(StepFunctionsParserBackend.start_execution)  # type: ignore[method-assign]

    StepFunctionResponse.send_task_failure = _send_task_failure  # type: ignore[method-assign]
    RDSBackend.promote_read_replica = _promote_and_detach(RDSBackend.promote_read_replica)  # type: ignore[method-assign]
    _installed = True
