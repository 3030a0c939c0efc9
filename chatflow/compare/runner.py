"""One run of one pairing: its server started in a fresh directory, a delay proxy in front
of it if asked, its client run to the end in another, both measured, the server stopped.

Server CPU is its process tree's, from /proc, while the client runs (not its start-up);
client CPU comes from ``wait4`` on the client, its peak memory from its process tree
(``chatflow.compare.accounting``).
Whatever fails (a command that does not start, exits non-zero, writes no CSV, or an error
of the tool's own) ends that run with one line of error, never the comparison
(docs/comparison-tool.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import chatflow
from chatflow.analysis.performance_analyzer import AnalysisError, MetricsTable
from chatflow.compare import yardstick
from chatflow.compare.accounting import Accounting, StartError, run_accounted
from chatflow.compare.commands import Command, CommandTemplate, run_values
from chatflow.compare.pairings import PYTHON
from chatflow.server.process import LOOPBACK, ServerProcess, ServerProcessError, local_server_command
from chatflow.wan.proxy import DelayProxy

#: A client may take this long, plus ``CLIENT_SECONDS_PER_MESSAGE`` a message (500 msg/s,
#: a quarter of the seed's rate through 34 ms), before it is killed.
CLIENT_BASE_TIMEOUT = 120.0
CLIENT_SECONDS_PER_MESSAGE = 0.002
#: The longest tail of a command's output quoted in an error line.
ERROR_DETAIL = 200
#: Where ChatFlow's package is, so that its server and client start from any directory.
PACKAGE_ROOT = str(Path(chatflow.__file__).resolve().parents[1])
#: Where a run's unexpected error is written out in full, in the run's folder.
TRACEBACK_NAME = "internal-error.txt"


@dataclass(frozen=True)
class Experiment:
    """What every run of a comparison does: the client's run and the network between."""

    messages: int
    warmup_threads: int
    warmup_messages: int
    threads: int
    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    seed: int | None = None

    @property
    def client_timeout(self) -> float:
        return CLIENT_BASE_TIMEOUT + CLIENT_SECONDS_PER_MESSAGE * self.messages

    def client_env(self) -> dict[str, str]:
        """The run's sizes as the Java original's client reads them."""
        return {"CHATFLOW_TOTAL_MESSAGES": str(self.messages), "CHATFLOW_WARMUP_THREADS": str(self.warmup_threads),
                "CHATFLOW_WARMUP_MESSAGES": str(self.warmup_messages), "CHATFLOW_MAIN_THREADS": str(self.threads)}


@dataclass(frozen=True)
class Sides:
    """The commands of each side: the other's two templates, and ChatFlow's client's."""

    other_name: str
    other_server: CommandTemplate
    other_client: CommandTemplate
    python_client: CommandTemplate
    #: Options after ChatFlow's server command (``--workers 2``: bench.workers).
    python_server_args: tuple[str, ...] = ()


class RunError(Exception):
    """Why a run failed, in one line."""


@dataclass(frozen=True)
class RunningServer:
    process: ServerProcess
    port: int
    health_port: int


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on now, for a command told its ports."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]


def one_line(text: str) -> str:
    """The last non-empty line of ``text``, shortened."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if len(last) <= ERROR_DETAIL else last[:ERROR_DETAIL - 1] + "…"


def what_happened(exc: ServerProcessError) -> str:
    """The launcher's reason, said of "it", then the last line of the server's stderr."""
    detail = one_line("\n".join(exc.tail))
    return exc.reason.replace("the server", "it", 1) + (f" ({detail})" if detail else "")


def resolved(command: Command, role: str, name: str) -> list[str]:
    """``command``'s words with its program made absolute (found on PATH, or relative to the
    tool's directory), as the command runs in its run's folder; RunError if there is none."""
    found = shutil.which(command.argv[0])
    if found is None:
        raise RunError(f"the {name} {role} did not start: no program {command.argv[0]!r} "
                       "(not on PATH, or not executable)")
    return [os.path.abspath(found), *command.argv[1:]]


def python_env() -> dict[str, str]:
    """PYTHONPATH with ChatFlow's package first, for a Python side started elsewhere."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": PACKAGE_ROOT + (os.pathsep + path if path else "")}


class PairingRunner:
    """Runs pairings one at a time, each run in its own directory under ``output_dir``."""

    def __init__(self, experiment: Experiment, sides: Sides, output_dir: Path) -> None:
        self.experiment = experiment
        self.sides = sides
        self.output_dir = output_dir
        #: The tool's directory, ``{cwd}`` to the commands (which run in their run's folders).
        self.start_dir = Path.cwd()

    def side_name(self, side: str) -> str:
        return "Python" if side == PYTHON else self.sides.other_name

    def run(self, code: str, round_number: int, index: int) -> dict[str, Any]:
        """The run's entry of the JSON's ``runs``, ok or not: whatever goes wrong inside a
        run (the tool's own errors too, their traceback kept in its folder) is its one-line
        ``error``; only an interrupt gets through."""
        directory = self.output_dir / "runs" / f"{index:02d}-{code}-r{round_number}"
        entry: dict[str, Any] = {"code": code, "round": round_number, "index": index, "ok": False, "error": None,
                                 "client_exit": None, "csv": None, "figures": None, "timeline": None, "cdf": None}
        try:
            self._measure(code, directory, entry)
        except RunError as exc:
            entry["ok"], entry["error"] = False, str(exc)
        except Exception as exc:  # the tool's own error: one odd run must not end the sitting
            detail = " ".join(str(exc).split())
            entry["ok"], entry["error"] = False, f"internal error: {type(exc).__name__}: {detail}"
            with contextlib.suppress(OSError):
                directory.mkdir(parents=True, exist_ok=True)
                (directory / TRACEBACK_NAME).write_text(traceback.format_exc())
        return entry

    def _measure(self, code: str, directory: Path, entry: dict[str, Any]) -> None:
        """Fills ``entry``; RunError for a run that could not be measured at all."""
        errors: list[str] = []  # the first cause first: the server's end, the client's, its CSV
        stop_errors: list[str] = []
        server_name = self.side_name(code[1])
        with self._server(code[1], directory / "server", stop_errors) as server, \
                self._front(server.port) as (port, proxy):
            cpu_before = sum(server.process.cpu_seconds())
            accounting = self._client(code[0], port, server, directory / "client")
            server_cpu_s: float | None = sum(server.process.cpu_seconds()) - cpu_before
            proxy_cpu_s = proxy.cpu_seconds() if proxy is not None else None
            if server.process.returncode is not None:  # its tree's CPU is gone with it
                server_cpu_s = None
                errors.append(f"the {server_name} server exited during the run with status "
                              f"{server.process.returncode}")
            elif server_cpu_s < 0:
                server_cpu_s = None
                errors.append(f"the {server_name} server's CPU time fell during the run (a process left its "
                              "tree alive): not measured")
            if proxy is not None and not proxy.alive:
                errors.append(f"the delay proxy stopped during the run ({proxy.failure or 'its thread ended'})")
        entry["client_exit"] = accounting.returncode
        errors += self._client_errors(code[0], accounting, directory / "client")
        try:
            csv, table = self._result(code[0], directory / "client")
        except RunError as exc:
            errors.append(str(exc))
        else:
            entry["csv"] = str(csv.relative_to(self.output_dir))
            figures, entry["timeline"], entry["cdf"] = (yardstick.figures(table, self.experiment.messages),
                                                        yardstick.timeline(table), yardstick.cdf(table))
            entry["figures"] = {**figures, **self._costs(accounting, server_cpu_s, proxy_cpu_s)}
        errors += stop_errors
        entry["ok"] = not errors
        entry["error"] = errors[0] if errors else None

    # -- the server

    @contextlib.contextmanager
    def _server(self, side: str, directory: Path, stop_errors: list[str]) -> Iterator[RunningServer]:
        """The server, listening, until the block ends; a failure to stop it is added to ``stop_errors``."""
        directory.mkdir(parents=True, exist_ok=True)
        name = self.side_name(side)
        try:
            if side == PYTHON:
                process = ServerProcess(local_server_command(*self.sides.python_server_args), cwd=directory,
                                        env={**os.environ, **python_env()}, log_path=directory / "server.log")
            else:
                port, health_port = free_ports(2)
                command = self.sides.other_server.fill(self._values(port, health_port))
                env = {**os.environ, "CHATFLOW_WS_PORT": str(port), "CHATFLOW_HEALTH_PORT": str(health_port),
                       "SERVER_WORKDIR": str(directory.resolve()), **command.env}
                process = ServerProcess(resolved(command, "server", name), cwd=directory, env=env,
                                        log_path=directory / "server.log")
        except ServerProcessError as exc:
            raise RunError(f"the {name} server did not start: {what_happened(exc)}") from None
        with contextlib.ExitStack() as stop:
            stop.callback(self._stop, process, name, stop_errors)
            try:
                if side == PYTHON:
                    port = process.wait_listening("ws").port
                    health_port = process.wait_listening("http").port
                else:
                    process.wait_accepting(port)
            except ServerProcessError as exc:
                raise RunError(f"the {name} server did not start: {what_happened(exc)}") from None
            yield RunningServer(process, port, health_port)

    @staticmethod
    def _stop(process: ServerProcess, name: str, errors: list[str]) -> None:
        try:
            process.stop()
        except ServerProcessError as exc:
            errors.append(f"the {name} server would not stop: {what_happened(exc)}")

    @contextlib.contextmanager
    def _front(self, port: int) -> Iterator[tuple[int, DelayProxy | None]]:
        """The port the client connects to: the server's, or a delay proxy's in front of it
        (in this process, so that its CPU is neither side's), and that proxy."""
        if not (self.experiment.rtt_ms or self.experiment.jitter_ms):
            yield port, None
            return
        try:
            proxy = DelayProxy(listen=(LOOPBACK, 0), upstream=(LOOPBACK, port), rtt_ms=self.experiment.rtt_ms,
                               jitter_ms=self.experiment.jitter_ms, seed=self.experiment.seed).start()
        except OSError as exc:
            raise RunError(f"the delay proxy did not start: {exc.strerror or exc}") from None
        try:
            yield proxy.port, proxy
        finally:
            proxy.stop()

    # -- the client

    def _values(self, port: int, health_port: int | None) -> dict[str, object]:
        """The placeholders' values for a command that reaches a server on ``port``."""
        e = self.experiment
        return run_values(url=f"ws://{LOOPBACK}:{port}", host=LOOPBACK, port=port, health_port=health_port,
                          messages=e.messages, warmup_threads=e.warmup_threads, warmup_messages=e.warmup_messages,
                          threads=e.threads, cwd=self.start_dir)

    def _client(self, side: str, port: int, server: RunningServer, directory: Path) -> Accounting:
        directory.mkdir(parents=True, exist_ok=True)
        template = self.sides.python_client if side == PYTHON else self.sides.other_client
        command: Command = template.fill(self._values(port, server.health_port))
        argv = resolved(command, "client", self.side_name(side))
        env = {**os.environ, **self.experiment.client_env(), "CLIENT_WORKDIR": str(directory.resolve()),
               **(python_env() if side == PYTHON else {}), **command.env}
        try:
            return run_accounted(argv, cwd=directory, env=env, stdout=directory / "stdout.txt",
                                 stderr=directory / "stderr.txt", timeout=self.experiment.client_timeout)
        except StartError as exc:
            raise RunError(f"the {self.side_name(side)} client did not start: {exc}") from None

    def _client_errors(self, side: str, accounting: Accounting, directory: Path) -> list[str]:
        name = self.side_name(side)
        if accounting.timed_out:
            return [f"the {name} client did not finish within {self.experiment.client_timeout:g} s and was killed"]
        if accounting.returncode != 0:
            output = "\n".join(path.read_text(errors="replace") for path in
                               (directory / "stdout.txt", directory / "stderr.txt") if path.exists())
            detail = one_line(output)
            return [f"the {name} client exited with status {accounting.returncode}"
                    + (f" ({detail})" if detail else "")]
        return []

    def _result(self, side: str, directory: Path) -> tuple[Path, MetricsTable]:
        try:
            return yardstick.newest_metrics(directory)
        except AnalysisError as exc:
            raise RunError(f"the {self.side_name(side)} client's metrics: {exc}") from None

    def _costs(self, accounting: Accounting, server_cpu_s: float | None,
               proxy_cpu_s: float | None) -> dict[str, float | None]:
        messages = self.experiment.messages
        return {"server_cpu_us_per_msg": server_cpu_s * 1e6 / messages if server_cpu_s is not None else None,
                "client_cpu_us_per_msg": accounting.cpu_s * 1e6 / messages,
                "client_peak_rss_mib": accounting.peak_tree_rss_kib / 1024, "client_wall_s": accounting.wall_s,
                "proxy_cpu_us_per_msg": proxy_cpu_s * 1e6 / messages if proxy_cpu_s is not None else None}
