"""``--local``: a ChatFlow server in its own process, on free ports, for one run.

A separate process and not a thread: in the client's process the server would share
the client's GIL and both figures would be wrong.
"""

from __future__ import annotations

import signal
from pathlib import Path

from chatflow.server.process import LOOPBACK, START_TIMEOUT, ServerProcess, ServerProcessError, local_server_command

#: How long the server may take to stop after SIGTERM before it is killed: the client's
#: own bound, more generous than the launcher's STOP_GRACE.
LOCAL_STOP_GRACE = 10.0
#: Lines of the server's stderr that a failed start quotes.
DETAIL_LINES = 5


class LocalServerError(Exception):
    pass


class LocalServer:
    """Starts ``python -m chatflow.server.main`` on 127.0.0.1, port 0; stops it on exit.

    The server stays in the client's process group, so that a terminal's Ctrl-C or
    hangup reaches it as it reaches the client.
    """

    def __init__(self, log_path: Path | None = None, options: tuple[str, ...] = ()) -> None:
        self.log_path = log_path
        #: More of the server's options (``--mode broadcast``).
        self.options = options
        self.process: ServerProcess | None = None
        self.url = ""

    def __enter__(self) -> LocalServer:
        try:
            self.process = ServerProcess(
                local_server_command("--log-level", "INFO", *self.options), log_path=self.log_path, own_process_group=False,
                stop_signals=(signal.SIGTERM,), grace=LOCAL_STOP_GRACE,
            )
        except ServerProcessError as exc:
            raise LocalServerError(f"the local server did not start: {exc.reason}") from None
        try:
            port = self.process.wait_listening("ws").port
        except ServerProcessError as exc:
            self.__exit__(None, None, None)
            detail = "\n".join(exc.tail[-DETAIL_LINES:]).strip() or f"no sign of life within {START_TIMEOUT:.0f} s"
            raise LocalServerError(f"the local server did not start: {detail}") from None
        except BaseException:
            # Ctrl-C while waiting: the server must not outlive the client.
            self.__exit__(None, None, None)
            raise
        self.url = f"ws://{LOOPBACK}:{port}"
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None:
            self.process.stop()
