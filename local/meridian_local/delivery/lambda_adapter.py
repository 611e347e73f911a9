"""Run the project's real Lambda handlers inside the moto server process.

moto runs a function through ``LambdaFunction._invoke_lambda(self, event)``, which answers
``(payload_json, errored, logs)`` and is what direct invokes, Step Functions ``lambda:invoke``
tasks, SQS event source mappings and SNS subscriptions all end in. :func:`install` replaces it with
a call of the function's handler from this repository, found through ``Handler`` + ``CodeUri`` in
``template.yaml``; so it must run in the process that serves moto (see ``moto_server``).

Each invocation sees the function's own environment variables (plus ``AWS_ENDPOINT_URL`` pointing
back at moto) through a thread-local overlay of ``os.environ``, from the import of its handler on
(Lambda sets a function's environment before it imports the code: a Powertools ``Logger()`` reads its
service name then). Invocations on different threads never see each other's variables. A function
runs one invocation at a time, as one Lambda container does (its module-level state, such as a
Powertools resolver's current event or a metrics set, is never shared by two invocations in
flight); no global lock is held while a handler runs, so a handler may call services whose side
effects invoke other functions.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from meridian_local.delivery.thread_environ import thread_local_environ as thread_local_environ

REPO_ROOT = Path(__file__).resolve().parents[3]
ROOT_TEMPLATE = REPO_ROOT / "template.yaml"
LOGICAL_ID_TAG = "meridian:logical-id"
ACCOUNT = "123456789012"

Handler = Callable[[Any, Any], Any]


class HandlerNotFoundError(LookupError):
    """No function of the template matches the function moto was asked to run."""


@dataclass(frozen=True, slots=True)
class FunctionSource:
    """Where a function's code lives in this repository, as the template declares it."""

    logical_id: str
    handler: str  # "module.attribute", module path relative to code_dir
    code_dir: Path
    environment: Mapping[str, Any] = field(default_factory=dict)  # raw template values
    timeout: int = 3
    memory_size: int = 128
    function_name: Any = None  # raw template value (a string or an intrinsic), if given


def _merged(globals_function: Mapping[str, Any], props: Mapping[str, Any], key: str) -> Any:
    return props.get(key, globals_function.get(key))


def functions_in(template: Mapping[str, Any], base: Path = REPO_ROOT) -> dict[str, FunctionSource]:
    """Every function of a SAM or CloudFormation template whose code is a local folder.

    Functions whose code is not a folder of this repository (inline code, images, S3 artefacts)
    are left out rather than failing: the template is shared and grows while this runs.
    """
    globals_function = template.get("Globals", {}).get("Function", {}) or {}
    global_env = (globals_function.get("Environment") or {}).get("Variables", {}) or {}
    found: dict[str, FunctionSource] = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if not isinstance(resource, Mapping) or resource.get("Type") not in (
            "AWS::Serverless::Function",
            "AWS::Lambda::Function",
        ):
            continue
        props = resource.get("Properties") or {}
        handler, code_uri = (
            _merged(globals_function, props, "Handler"),
            _merged(globals_function, props, "CodeUri"),
        )
        if not isinstance(handler, str) or not isinstance(code_uri, str) or code_uri.startswith("s3://"):
            continue
        code_dir = (base / code_uri).resolve()
        if not code_dir.is_dir():
            continue
        environment = dict(global_env)
        environment.update((props.get("Environment") or {}).get("Variables", {}) or {})
        found[logical_id] = FunctionSource(
            logical_id=logical_id,
            handler=handler,
            code_dir=code_dir,
            environment=environment,
            timeout=int(_merged(globals_function, props, "Timeout") or 3),
            memory_size=int(_merged(globals_function, props, "MemorySize") or 128),
            function_name=props.get("FunctionName"),
        )
    return found


def read_template(path: Path = ROOT_TEMPLATE) -> dict[str, Any]:
    """Parse a template, short intrinsic forms (``!Ref``, ``!Sub``) included."""
    from samtranslator.yaml_helper import yaml_parse  # noqa: PLC0415 - a development-only dependency

    parsed: dict[str, Any] = yaml_parse(path.read_text())
    return parsed


def template_functions(path: Path = ROOT_TEMPLATE) -> dict[str, FunctionSource]:
    return functions_in(read_template(path), path.parent)


# ---- loading handlers ------------------------------------------------------------------------------


@dataclass(slots=True)
class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_s: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


class HandlerRegistry:
    """Maps the functions moto knows to the handlers of this repository, loading each once.

    A function is found by, in order: an explicit :meth:`bind`, its ``meridian:logical-id`` tag,
    a template ``FunctionName`` equal to its name, or a name equal to (or ending in ``-``) a
    logical id. Each function gets its own module instance, like its own Lambda container.
    """

    def __init__(self, sources: Mapping[str, FunctionSource] | None = None) -> None:
        self.sources: dict[str, FunctionSource] = dict(sources or {})
        self._bound: dict[str, FunctionSource] = {}
        self._handlers: dict[tuple[str, str, str], Handler] = {}
        self._containers: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def bind(self, function_name: str, source: FunctionSource) -> None:
        self._bound[function_name] = source

    def resolve(self, function_name: str, tags: Mapping[str, str] | None = None) -> FunctionSource:
        if function_name in self._bound:
            return self._bound[function_name]
        logical_id = (tags or {}).get(LOGICAL_ID_TAG)
        if logical_id and logical_id in self.sources:
            return self.sources[logical_id]
        for source in self.sources.values():
            if source.function_name == function_name:
                return source
        if function_name in self.sources:
            return self.sources[function_name]
        suffixed = [s for lid, s in self.sources.items() if function_name.endswith(f"-{lid}")]
        if len(suffixed) == 1:
            return suffixed[0]
        raise HandlerNotFoundError(f"function {function_name!r} matches no function of the template")

    def handler(
        self, function_name: str, source: FunctionSource, environment: Mapping[str, str] | None = None
    ) -> Handler:
        """The function's handler, imported once (under ``environment``, when given)."""
        key = (function_name, str(source.code_dir), source.handler)
        with self._lock:
            if key not in self._handlers:
                if environment is None:
                    self._handlers[key] = import_handler(function_name, source)
                else:
                    with thread_local_environ().overlaid(environment):
                        self._handlers[key] = import_handler(function_name, source)
            return self._handlers[key]

    def container(self, function_name: str) -> threading.Lock:
        """Held while an invocation of ``function_name`` runs: one at a time per function."""
        with self._lock:
            return self._containers.setdefault(function_name, threading.Lock())


def import_handler(function_name: str, source: FunctionSource) -> Handler:
    module_path, _, attribute = source.handler.rpartition(".")
    if not module_path or not attribute:
        raise HandlerNotFoundError(f"handler {source.handler!r} is not module.function")
    file = source.code_dir.joinpath(*module_path.split(".")).with_suffix(".py")
    if not file.is_file():
        raise HandlerNotFoundError(f"{file} does not exist (handler {source.handler!r})")
    # The function's folder is the root of its package in Lambda: its siblings import by name.
    if str(source.code_dir) not in sys.path:
        sys.path.append(str(source.code_dir))
    unique = re.sub(r"\W", "_", f"meridian_fn_{function_name}_{module_path}")
    spec = importlib.util.spec_from_file_location(unique, file)
    if spec is None or spec.loader is None:
        raise HandlerNotFoundError(f"cannot load {file}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    spec.loader.exec_module(module)
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise HandlerNotFoundError(f"{file} has no callable {attribute!r}")
    return handler  # type: ignore[no-any-return]


# ---- invoking --------------------------------------------------------------------------------------


class _ThreadLogs(logging.Handler):
    """Collects the log records emitted on one thread during one invocation."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread = threading.get_ident()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(self.format(record))


def decode_event(event: Any) -> Any:
    """moto hands over the parsed payload, or its JSON text (``"{}"`` for an empty payload)."""
    if event is None:
        return {}
    if isinstance(event, str | bytes):
        try:
            return json.loads(event)
        except ValueError:
            return event.decode() if isinstance(event, bytes) else event
    return event


def invocation_environment(
    variables: Mapping[str, Any], function_name: str, region: str, endpoint_url: str | None, handler: str
) -> dict[str, str]:
    env = {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "_HANDLER": handler,
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
    }
    env.update({str(k): str(v) for k, v in variables.items()})
    if endpoint_url and not env.get("AWS_ENDPOINT_URL"):  # the template declares it empty (sam_env)
        env["AWS_ENDPOINT_URL"] = endpoint_url
    return env


def run_handler(
    handler: Handler, event: Any, environment: Mapping[str, str], context: LambdaContext
) -> tuple[str, bool, str]:
    """Call ``handler`` as Lambda would; answer ``(payload_json, errored, logs)`` as moto expects."""
    environ = thread_local_environ()
    logs = _ThreadLogs()
    root = logging.getLogger()
    root.addHandler(logs)
    started = time.perf_counter()
    lines = [f"START RequestId: {context.aws_request_id} Version: $LATEST"]
    try:
        with environ.overlaid(environment):
            result = handler(decode_event(event), context)
        payload, errored = json.dumps(result, default=str), False
    except Exception as exc:  # every handler failure becomes a Lambda function error
        stack = traceback.format_exception(exc)
        payload = json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__, "stackTrace": stack})
        errored = True
        lines.append("".join(stack).rstrip())
    finally:
        root.removeHandler(logs)
    elapsed_ms = (time.perf_counter() - started) * 1000
    lines[1:1] = logs.lines
    lines.append(f"END RequestId: {context.aws_request_id}")
    lines.append(f"REPORT RequestId: {context.aws_request_id}\tDuration: {elapsed_ms:.2f} ms")
    return payload, errored, "\n".join(lines)


_original_invoke: Any = None
_active_registry: HandlerRegistry | None = None
_regional: Any = None  # a containers.ContainerCaches when two regions share this process


def separate_regions(caches: Any) -> None:
    """Give each function of each region its own process-wide caches (``containers.ContainerCaches``),
    renewed when its configuration changes; None shares them again."""
    global _regional
    _regional = caches


def install(registry: HandlerRegistry, endpoint_url: str | None = None) -> None:
    """Make moto's Lambda run the handlers ``registry`` resolves (in this process)."""
    global _original_invoke, _active_registry
    from moto.awslambda.models import LambdaFunction  # noqa: PLC0415

    thread_local_environ()
    _active_registry = registry

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        name = str(self.function_name)
        variables = dict(self.environment_vars or {})
        try:
            source = registry.resolve(name, getattr(self, "tags", None))
            environment = invocation_environment(
                variables, name, str(self.region), endpoint_url, source.handler
            )
            handler = registry.handler(name, source, environment)
        except (HandlerNotFoundError, ImportError, SyntaxError) as exc:
            message = {"errorMessage": str(exc), "errorType": type(exc).__name__}
            return json.dumps(message), True, f"cannot load the handler of {name}: {exc}"
        context = LambdaContext(
            function_name=name,
            memory_limit_in_mb=int(self.memory_size or source.memory_size),
            invoked_function_arn=str(self.function_arn),
            timeout_s=int(self.timeout or source.timeout),
            log_group_name=f"/aws/lambda/{name}",
        )
        with registry.container(f"{self.region}:{name}"):  # a function is its name in its region
            if _regional is not None:  # one container per function and configuration, as Lambda keeps
                container = json.dumps([str(self.region), name, variables], sort_keys=True, default=str)
                result: tuple[str, bool, str] = _regional.run(
                    container, lambda: run_handler(handler, event, environment, context)
                )
                return result
            return run_handler(handler, event, environment, context)

    if _original_invoke is None:
        _original_invoke = LambdaFunction._invoke_lambda
    LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]


def uninstall() -> None:
    global _original_invoke, _active_registry
    from moto.awslambda.models import LambdaFunction  # noqa: PLC0415

    if _original_invoke is not None:
        LambdaFunction._invoke_lambda = _original_invoke  # type: ignore[method-assign]
        _original_invoke = None
    _active_registry = None


# ---- making moto know the functions ----------------------------------------------------------------


def placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "the code runs in-process from the repository")
    return buffer.getvalue()


def create_functions(
    lambda_client: Any,
    role_arn: str,
    functions: Mapping[str, tuple[FunctionSource, Mapping[str, str]]],
) -> dict[str, str]:
    """Create each ``name -> (source, environment)`` in moto (placeholder code); return name -> ARN."""
    arns: dict[str, str] = {}
    for name, (source, environment) in functions.items():
        created = lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role_arn,
            Handler=source.handler,
            Code={"ZipFile": placeholder_zip()},
            Timeout=source.timeout,
            MemorySize=source.memory_size,
            Environment={"Variables": {k: str(v) for k, v in environment.items()}},
            Tags={LOGICAL_ID_TAG: source.logical_id},
        )
        arns[name] = str(created["FunctionArn"])
    return arns


def ensure_lambda_role(iam_client: Any, name: str = "meridian-local-lambda") -> str:
    """moto only creates functions whose role exists."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    try:
        return str(iam_client.get_role(RoleName=name)["Role"]["Arn"])
    except iam_client.exceptions.NoSuchEntityException:
        role = iam_client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        return str(role["Role"]["Arn"])
