"""Python client of the Meridian order API: SigV4-signed requests and a command line."""

from meridian_client.api import ApiError, MeridianClient
from meridian_client.auth import SigV4RequestAuth

__all__ = ["ApiError", "MeridianClient", "SigV4RequestAuth"]
