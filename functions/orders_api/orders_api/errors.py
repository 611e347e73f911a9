"""One exception hierarchy for the order API; ``install`` maps it (and Powertools' own errors) to HTTP.

Every error answer has the same JSON shape, ``{"error": CODE, "message": ..., "details": [...]}``,
and an error never changes state: the logic raises before it writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar, cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError as RouteNotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from meridian.approvals import (
    ApprovalAlreadyDecidedError,
    ApprovalError,
    ApprovalExpiredError,
    ApprovalNotFoundError,
    SelfApprovalError,
)
from meridian.domain import RejectReason
from orders_api.models import ErrorDetail, ErrorResponse

logger = Logger(child=True)


class ApiError(Exception):
    """Base of every error the API answers with; subclasses fix the HTTP status."""

    status: ClassVar[int] = HTTPStatus.BAD_REQUEST

    def __init__(
        self,
        code: str,
        message: str,
        details: Sequence[ErrorDetail] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})


class BadRequestError(ApiError):
    status = HTTPStatus.BAD_REQUEST


class ForbiddenError(ApiError):
    status = HTTPStatus.FORBIDDEN


class NotFoundError(ApiError):
    status = HTTPStatus.NOT_FOUND


class ConflictError(ApiError):
    status = HTTPStatus.CONFLICT


class RequestInProgressError(ConflictError):
    """The first request with this idempotency key has not finished: retry shortly."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, headers={"Retry-After": "1"})


class UnprocessableError(ApiError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY


class OrderRefusedError(UnprocessableError):
    """An order refused by pre-trade risk or by the matching node; ``code`` is the reason's name."""

    def __init__(self, reason: RejectReason, message: str, details: Sequence[ErrorDetail] = ()) -> None:
        super().__init__(reason.name, message, details)
        self.reason = reason


class ServiceUnavailableError(ApiError):
    """A dependency (the matching node) cannot answer now; the client retries after ``retry_after``."""

    status = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self, code: str, message: str, retry_after: int = 1) -> None:
        super().__init__(code, message, headers={"Retry-After": str(retry_after)})


class InternalError(ApiError):
    status = HTTPStatus.INTERNAL_SERVER_ERROR


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[ErrorDetail] = (),
    headers: Mapping[str, str] | None = None,
) -> Response[Any]:
    body = ErrorResponse(error=code, message=message, details=list(details))
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump(mode="json"),
        headers=dict(headers or {}),
    )


def _validation_details(errors: Sequence[Any]) -> list[ErrorDetail]:
    # Like Powertools' default answer, the details name the field and the rule, never the input.
    return [
        ErrorDetail(
            loc=[part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
            type=str(error.get("type", "invalid")),
            msg=str(error.get("msg", "")),
        )
        for error in errors
    ]


# The compliance decision's errors (``meridian.approvals``), most specific first.
APPROVAL_ERRORS: tuple[tuple[type[ApprovalError], int, str], ...] = (
    (ApprovalNotFoundError, HTTPStatus.NOT_FOUND, "APPROVAL_NOT_FOUND"),
    (SelfApprovalError, HTTPStatus.FORBIDDEN, "SELF_APPROVAL"),
    (ApprovalExpiredError, HTTPStatus.CONFLICT, "APPROVAL_EXPIRED"),
    (ApprovalAlreadyDecidedError, HTTPStatus.CONFLICT, "APPROVAL_ALREADY_DECIDED"),
)


def approval_error_response(exc: ApprovalError) -> Response[Any]:
    for kind, status, code in APPROVAL_ERRORS:
        if isinstance(exc, kind):
            return error_response(status, code, str(exc))
    return error_response(HTTPStatus.CONFLICT, "APPROVAL_CONFLICT", str(exc))


Handler = Callable[[Any], Response[Any]]


def install(app: APIGatewayRestResolver) -> None:
    """Register the one mapping from exceptions to HTTP answers on ``app``."""
    on = cast(Callable[[type[Exception]], Callable[[Handler], Handler]], app.exception_handler)

    @on(ApiError)
    def _api_error(exc: ApiError) -> Response[Any]:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @on(ApprovalError)
    def _approval_error(exc: ApprovalError) -> Response[Any]:
        return approval_error_response(exc)

    @on(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response[Any]:
        details = _validation_details(exc.errors())
        return error_response(422, "VALIDATION_ERROR", "the request does not match the API schema", details)

    @on(RequestUnsupportedContentType)
    def _unsupported_type(exc: RequestUnsupportedContentType) -> Response[Any]:
        return error_response(415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json")

    @on(RouteNotFoundError)
    def _no_route(exc: RouteNotFoundError) -> Response[Any]:
        return error_response(404, "ROUTE_NOT_FOUND", "no such route")

    @on(Exception)
    def _unexpected(exc: Exception) -> Response[Any]:
        logger.exception("unhandled error")
        return error_response(500, "INTERNAL_ERROR", "the request failed unexpectedly")
