"""Services from Debian's packages that some tests start for themselves (redis-server,
nginx, tmux): found on the PATH, or the test skips with the reason.

Where ``$CHATFLOW_REQUIRE_SERVICES`` is 1 (CI sets it, and installs the packages) a
missing service fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_VARIABLE = "CHATFLOW_REQUIRE_SERVICES"


def missing(executable: str, package: str) -> str | None:
    """Why ``executable`` cannot run here, or None."""
    if shutil.which(executable) is None:
        return f"{executable} is not installed (Debian: apt-get install {package})"
    return None


def require(executable: str, package: str) -> None:
    """Skip the calling test where ``executable`` is missing, or fail where it is required."""
    reason = missing(executable, package)
    if reason is not None:
        if os.environ.get(REQUIRE_VARIABLE) == "1":
            pytest.fail(f"{reason}, and ${REQUIRE_VARIABLE}=1")
        pytest.skip(reason)
