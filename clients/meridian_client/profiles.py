"""Who the command line signs as: AWS credentials (environment, profiles), or a local platform user.

``--user alice`` reads the local platform's state directory (``make run`` writes one access key per
local user to ``credentials.json`` and the endpoints it bound to ``endpoints.json``), so a first
trade by hand needs no exported keys and no URL.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from botocore.credentials import Credentials

DEFAULT_URL = "http://127.0.0.1:3000"
DEFAULT_STATE_DIR = ".local-platform"


class ProfileError(ValueError):
    """The credentials or endpoint asked for cannot be found; the message says where it looked."""


@dataclass(frozen=True)
class Identity:
    url: str
    credentials: Credentials | None  # None: whatever botocore finds (environment, profiles, roles)
    profile: str | None = None
    gateway_url: str | None = None  # the local platform's streaming gateway, with --user


def state_dir(given: str | None) -> Path:
    return Path(given or os.environ.get("MERIDIAN_STATE_DIR") or DEFAULT_STATE_DIR)


def local_user(directory: Path, user: str) -> Credentials:
    path = directory / "credentials.json"
    try:
        users = json.loads(path.read_text())["users"]
    except FileNotFoundError:
        raise ProfileError(
            f"no local platform credentials at {path}: start it with `make run` (or give --state-dir)"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise ProfileError(f"{path} is not a local platform credentials file") from None
    if user not in users:
        known = ", ".join(sorted(u for u in users if "-" not in u))
        raise ProfileError(f"no local user {user!r} in {path} (local users: {known})")
    return Credentials(users[user]["access_key"], users[user]["secret"])


def local_url(directory: Path, endpoint: str = "api") -> str | None:
    """The REST API (or the streaming ``gateway``) the running local platform serves, if its
    endpoints file says."""
    try:
        found = json.loads((directory / "endpoints.json").read_text()).get(endpoint)
    except (FileNotFoundError, ValueError, AttributeError):
        return None
    return str(found) if found else None


def resolve(url: str | None, user: str | None, profile: str | None, directory: str | None) -> Identity:
    """The API URL and the credentials to sign with, from the options given (see module docstring)."""
    if user and profile:
        raise ProfileError("--user (a local platform user) and --profile (an AWS profile) exclude each other")
    state = state_dir(directory)
    chosen = url or os.environ.get("MERIDIAN_API_URL") or (local_url(state) if user else None) or DEFAULT_URL
    if not user:
        return Identity(chosen, None, profile)
    return Identity(chosen, local_user(state, user), profile, local_url(state, "gateway"))
