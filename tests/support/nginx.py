"""The repository's nginx configuration (``deploy/nginx/chatflow.conf``) run for real, in
front of server instances on free ports: the same file, its ports replaced.

Debian's ``nginx`` package provides nginx; where it is missing the tests that need it skip,
or fail in CI (``tests.support.services``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from chatflow.server.process import ServerProcess
from tests.support import services
from tests.support.network import LOCALHOST, free_port
from tests.support.processes import REPO_ROOT

CONFIG = REPO_ROOT / "deploy" / "nginx" / "chatflow.conf"
EXECUTABLE = "nginx"
_UPSTREAM_SERVER = re.compile(r"^(\s*)server 127\.0\.0\.1:\d+( [^;]*)?;\n", re.MULTILINE)
_LISTEN = re.compile(r"^(\s*)listen \d+", re.MULTILINE)


def require() -> None:
    services.require(EXECUTABLE, "nginx")


def render(config: str, listen_port: int, upstream_ports: Sequence[int]) -> str:
    """``config`` listening on 127.0.0.1:``listen_port`` in front of ``upstream_ports``: its
    upstream's ``server`` lines become one per port, with the first line's options."""
    servers = list(_UPSTREAM_SERVER.finditer(config))
    if not servers or len(_LISTEN.findall(config)) != 1:
        raise ValueError("expected one listen line and an upstream of 127.0.0.1 servers")
    indent, options = servers[0].group(1), servers[0].group(2) or ""
    lines = "".join(f"{indent}server {LOCALHOST}:{port}{options};\n" for port in upstream_ports)
    config = config[:servers[0].start()] + lines + config[servers[-1].end():]
    if len(_UPSTREAM_SERVER.findall(config)) != len(upstream_ports):
        raise ValueError("the upstream's server lines are not together")
    return _LISTEN.sub(lambda m: f"{m.group(1)}listen {LOCALHOST}:{listen_port}", config)


@contextmanager
def nginx_in_front(upstream_ports: Sequence[int], directory: Path) -> Iterator[int]:
    """nginx with ``CONFIG`` in front of ``upstream_ports`` for the ``with`` body; its port.

    Everything it writes (its pid file, its temporary files) stays in ``directory``."""
    require()
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(render(CONFIG.read_text(), port, upstream_ports))
    command = [EXECUTABLE, "-p", str(directory), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"]
    with ServerProcess(command, grace=5.0) as process:
        process.wait_accepting(port)
        yield port
