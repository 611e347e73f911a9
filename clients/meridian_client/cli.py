"""``meridian`` (or ``python -m meridian_client``): orders, positions, trades, market data and the
officers' commands from the command line (click; tables by rich, or the API's JSON with
``--output json``). ``pip install ./clients`` installs the command; ``make setup`` does in the dev venv.

Who signs: ``--user alice`` (a local platform user: credentials and URL from ``make run``'s state
directory), ``--profile`` (an AWS profile), or the usual AWS environment. The URL: ``--url``,
``MERIDIAN_API_URL``, the local platform's (with ``--user``), else http://127.0.0.1:3000.
Exit codes: 0 success, 1 the API refused (its error code and field details are printed), 2 bad
command-line input, 3 the API did not answer (not running, unreachable, timed out).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import click
import requests
from pydantic import ValidationError

from meridian_client import cli_orders, cli_reads, cli_stream
from meridian_client.api import ApiError, MeridianClient
from meridian_client.output import Format, Printer, refusal
from meridian_client.profiles import Identity, ProfileError, resolve

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
ClientFactory = Callable[[Identity, str], MeridianClient]


def default_client(identity: Identity, region: str) -> MeridianClient:
    import botocore.session  # noqa: PLC0415 - credentials only when a command runs

    credentials = identity.credentials
    if credentials is None:
        credentials = botocore.session.Session(profile=identity.profile).get_credentials()
    if credentials is None:
        raise click.UsageError(
            "no AWS credentials found: use --user NAME (a local platform user), --profile, "
            "or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    return MeridianClient(identity.url, credentials, region)


@dataclass
class Context:
    """What every command gets: the client (made on first use) and the printer."""

    factory: ClientFactory
    identity: Identity
    region: str
    printer: Printer
    _client: MeridianClient | None = None

    @property
    def client(self) -> MeridianClient:
        if self._client is None:
            self._client = self.factory(self.identity, self.region)
        return self._client


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="meridian-client", prog_name="meridian")
@click.option("--url", envvar="MERIDIAN_API_URL", help="The API's URL (default: the local platform's).")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default="us-east-1", show_default=True)
@click.option(
    "--user", envvar="MERIDIAN_USER", help="Sign as this local platform user (alice, bob, rita, carl, otto)."
)
@click.option("--profile", help="Sign with this AWS profile.")
@click.option(
    "--state-dir", envvar="MERIDIAN_STATE_DIR", help="The local platform's state (default .local-platform)."
)
@click.option(
    "--output",
    "-o",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    envvar="MERIDIAN_OUTPUT",
    show_default=True,
)
@click.pass_context
def cli(
    ctx: click.Context,
    url: str | None,
    region: str,
    user: str | None,
    profile: str | None,
    state_dir: str | None,
    fmt: Format,
) -> None:
    """Meridian order API client."""
    settings = ctx.obj
    try:
        identity = resolve(url, user, profile, state_dir)
    except ProfileError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.obj = settings["context"] = Context(
        settings["factory"], identity, region, Printer(settings["out"], fmt)
    )


cli_orders.register(cli)
cli_reads.register(cli)
cli.add_command(cli_stream.stream)


def main(
    argv: Sequence[str] | None = None,
    client_factory: ClientFactory = default_client,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run one command; returns the exit code (see the module docstring). Never raises."""
    state: dict[str, Any] = {"factory": client_factory, "out": out}
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with _Redirect(out, err):
            result = cli.main(args=args, prog_name="meridian", obj=state, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show(file=err)
        return EXIT_USAGE
    except click.exceptions.Abort:
        return EXIT_USAGE
    except ValidationError as exc:  # the SDK's request models refused the input
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        print(f"error: {where}: {first['msg']}", file=err)
        return EXIT_USAGE
    except ApiError as exc:
        refusal(exc, err)
        if _json_output(state):
            print(json.dumps(exc.body, indent=2), file=err)
        return EXIT_REFUSED
    except requests.RequestException as exc:  # connection refused, DNS, timeout: the API never answered
        url = state["context"].identity.url if "context" in state else "the configured URL"
        print(
            f"error: no answer from the Meridian API at {url} ({type(exc).__name__}); is it running?",
            file=err,
        )
        return EXIT_UNREACHABLE
    return int(result or 0)


def _json_output(state: dict[str, Any]) -> bool:
    context = state.get("context")
    return isinstance(context, Context) and context.printer.format == "json"


class _Redirect:
    """click writes help, usage errors and --version to sys.stdout/stderr: send them to out/err."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out, self.err = out, err

    def __enter__(self) -> None:
        self.saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = self.out, self.err

    def __exit__(self, *exc: object) -> None:
        sys.stdout, sys.stderr = self.saved
