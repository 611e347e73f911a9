"""Headless Chromium (Debian's ``chromium`` package) for the tests of pages the platform serves.

``.ci/run`` installs the package; a machine without it skips the browser checks, except in CI where
a missing browser is a failure. Chromium runs as the probe of this machine runs it: headless, no
sandbox (root), no network but loopback, a fresh profile per call.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed (.ci/run installs it)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return found


def rendered_dom(url: str, virtual_time_ms: int = 8000, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran for ``virtual_time_ms`` of (virtual) time."""
    with tempfile.TemporaryDirectory() as profile:
        base = [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={virtual_time_ms}",
        ]
        if screenshot is not None:
            subprocess.run(
                [*base, "--window-size=1200,1000", f"--screenshot={screenshot}", url],
                capture_output=True,
                timeout=120,
                check=False,
            )
        done = subprocess.run(
            [*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
        )
    return done.stdout
