"""The deployment's systemd files read as systemd reads them, for a machine without systemd
as PID 1: the unit's settings, its EnvironmentFile, and the command line its ExecStart
becomes.

Only the part of systemd's syntax that ``deploy/`` uses: one ``KEY=VALUE`` a line, ``#``
comments, optional double quotes around an environment value; in ExecStart, words
separated by spaces, ``${NAME}`` replaced by the value as one argument and ``$NAME`` as a
word of its own split at spaces into zero or more (systemd.service(5), "Command lines").
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.processes import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
UNIT = DEPLOY / "chatflow-server.service"
ENV_FILE = DEPLOY / "chatflow-server.env"
SETUP_HOST = DEPLOY / "setup-host.sh"

_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_BARE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def _assignments(text: str) -> list[tuple[str, str]]:
    """``KEY=VALUE`` lines, comments and blank lines and ``[Section]`` headers left out."""
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line!r}"
        pairs.append((key.strip(), value.strip()))
    return pairs


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Every setting of a unit file, each key's values in order (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    for key, value in _assignments(path.read_text()):
        settings.setdefault(key, []).append(value)
    return settings


def environment_file(path: Path) -> dict[str, str]:
    """An EnvironmentFile's variables (a later line wins)."""
    return {key: value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
            for key, value in _assignments(path.read_text())}


def command_line(exec_start: str, environment: dict[str, str]) -> list[str]:
    """The arguments systemd runs for ``exec_start`` in ``environment``."""
    argv: list[str] = []
    for word in exec_start.split():
        bare = _BARE.fullmatch(word)
        if bare is not None:
            argv.extend(environment.get(bare.group(1), "").split())
        else:
            argv.append(_BRACED.sub(lambda m: environment.get(m.group(1), ""), word))
    return argv


def seconds(value: str) -> float:
    """A systemd time span as this unit writes one: a number of seconds, or ``Ns``."""
    return float(value.removesuffix("s"))
