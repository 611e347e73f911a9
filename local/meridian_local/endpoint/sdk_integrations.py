"""Step Functions AWS SDK integrations (``arn:aws:states:::aws-sdk:<service>:<action>``) as AWS runs them.

In AWS, the parameters and results of an SDK integration use the AWS SDK for Java v2 member
names (``DbInstanceIdentifier``, ``DbInstances``, ``Ttl``) and its errors are named
``<Service>.<Exception>`` (``Rds.DbInstanceNotFoundException``). moto 5.2.5 hands the parameters to
boto3 unchanged and answers with boto3's names, so a definition written for AWS would not run on
it. :func:`install` adds the translation both ways, with the service model boto3 already has, so
the runbooks' definitions run unchanged here and in AWS. The optimized Step Functions integration
(``arn:aws:states:::states:startExecution.sync:2``) gets the same translation, which moto leaves out
(``StateMachineArn`` in, ``ExecutionArn``/``Status``/``Output`` out).
"""

from __future__ import annotations

import datetime
from typing import Any

import botocore.session
from botocore.exceptions import ClientError

from meridian.aws_clients import error_code

_session = botocore.session.get_session()
_installed = False


def _operation(service: str, action: str) -> Any:
    """The botocore operation model of ``action`` (camelCase as SDK integrations name it, or snake_case)."""
    model = _session.get_service_model(service)
    wanted = action.replace("_", "").lower()  # startExecution, start_execution
    for name in model.operation_names:
        if name.lower() == wanted:
            return model.operation_model(name)
    return None


def _plain(value: Any) -> Any:
    """JSON-ready values: timestamps as ISO-8601 text, as the Step Functions data flow carries them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return value


# Services whose SDK name has more than one word: AWS names their errors in the SDK's Pascal case
# (``DynamoDb.TransactionCanceledException``); moto capitalises the first letter only.
_SERVICE_NAMES = {"dynamodb": "DynamoDb"}


def sdk_error_name(service: str, code: str) -> str:
    """``rds`` + ``DBInstanceNotFound`` -> ``Rds.DbInstanceNotFoundException``."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (  # noqa: PLC0415
        state_task_service as base,
    )

    service_name = _SERVICE_NAMES.get(service.lower()) or base.StateTaskService._to_sfn_cased(service)
    exception = base.StateTaskService._to_sfn_cased(code)
    if not exception.endswith("Exception"):
        exception += "Exception"
    return f"{service_name}.{exception}"


def install() -> None:
    """Teach moto's SDK integration the SDK v2 names (idempotent)."""
    global _installed
    if _installed:
        return
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (  # noqa: PLC0415
        state_task_service_aws_sdk as aws_sdk,
    )

    sdk_task: Any = aws_sdk.StateTaskServiceAwsSdk
    # Step Functions names EventBridge "eventbridge" in SDK integrations; boto3 calls it "events".
    sdk_task._SERVICE_NAME_SFN_TO_BOTO_OVERRIDES["eventbridge"] = "events"

    original_from_error = sdk_task._from_error

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        operation = _operation(self._get_boto_service_name(boto_service_name), self.resource.api_action)
        if operation is not None and operation.input_shape is not None:
            self._to_boto_request(parameters, operation.input_shape)

    def normalise_response(
        self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        operation = _operation(self._get_boto_service_name(boto_service_name), self.resource.api_action)
        if isinstance(response, dict):
            plain = _plain(response)
            response.clear()
            response.update(plain)
            if operation is not None and operation.output_shape is not None:
                self._from_boto_response(response, operation.output_shape)

    def from_error(self: Any, env: Any, ex: Exception) -> Any:
        if isinstance(ex, ClientError):
            code = error_code(ex) or "Unknown"
            message = str(ex.response.get("Error", {}).get("Message", ""))
            status = ex.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            cause = f"{message} (Service: {self.resource.api_name}, Status Code: {status})"
            return self._get_task_failure_event(
                env=env, error=sdk_error_name(self.resource.api_name, code), cause=cause
            )
        return original_from_error(self, env, ex)

    sdk_task._normalise_parameters = normalise_parameters
    sdk_task._normalise_response = normalise_response
    sdk_task._from_error = from_error
    _install_sfn_integration()
    _installed = True


def _install_sfn_integration() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (  # noqa: PLC0415
        state_task_service_sfn as sfn_service,
    )

    sfn_task: Any = sfn_service.StateTaskServiceSfn
    original_parameters = sfn_task._normalise_parameters

    def normalise_parameters(
        self: Any,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        original_parameters(self, parameters, boto_service_name, service_action_name)  # Input as JSON text
        operation = _operation("stepfunctions", service_action_name or self.resource.api_action)
        if operation is not None and operation.input_shape is not None:
            self._to_boto_request(parameters, operation.input_shape)

    def normalise_response(
        self: Any, response: Any, boto_service_name: str | None = None, service_action_name: str | None = None
    ) -> None:
        operation = _operation("stepfunctions", service_action_name or self.resource.api_action)
        if isinstance(response, dict):
            plain = _plain(response)
            response.clear()
            response.update(plain)
            if operation is not None and operation.output_shape is not None:
                self._from_boto_response(response, operation.output_shape)

    original_eval = sfn_task._eval_service_task

    def eval_service_task(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        original_eval(self, env, *args, **kwargs)
        normalise_response(self, env.stack[-1])  # the start's answer, as the sync resolvers read it

    sfn_task._normalise_parameters = normalise_parameters
    sfn_task._normalise_response = normalise_response
    sfn_task._eval_service_task = eval_service_task
