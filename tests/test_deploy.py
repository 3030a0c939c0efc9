"""Deployment on a fresh host (docs/deploy.md): ``deploy/setup-host.sh`` run for real into a
throwaway root (a venv made, the package pip-installed from this checkout, the unit and
its settings installed), twice; the installed server started as its unit says and asked
for /health; the unit checked by ``systemd-analyze verify``; the script by ``bash -n`` and
shellcheck. No systemd runs here as PID 1, so nothing is started through systemctl.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from chatflow.server.config import DEFAULTS
from chatflow.server.main import build_parser, config_from
from chatflow.server.process import ServerProcess
from tests.support.health import get_health
from tests.support.network import LOCALHOST, free_port
from tests.support.processes import gone
from tests.support.services import require
from tests.support.systemd import (ENV_FILE, SETUP_HOST, UNIT, command_line, environment_file, seconds,
                                   unit_settings)
from tests.support.waiting import wait_until

#: The first run pip-installs the package and its dependencies into a new venv, as on a
#: fresh host (about 35-45 s here); the runs after it install nothing.
INSTALL_TIMEOUT = 300.0
RUN_TIMEOUT = 30.0
#: Where the script puts things, under its --root.
VENV = Path("opt/chatflow/venv")
INSTALLED_UNIT = Path("etc/systemd/system/chatflow-server.service")
INSTALLED_ENV = Path("etc/chatflow/server.env")
STEPS = ("packages", "python", "user chatflow", "venv", "package", "unit", "settings", "systemd", "firewall")


def setup_host(*args: str, timeout: float = RUN_TIMEOUT, user: int | None = None) -> subprocess.CompletedProcess[str]:
    command = ["bash", str(SETUP_HOST), "--python", sys.executable, *args]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The script's own lines (pip's may come between them)."""
    return [line.removeprefix("setup-host.sh: ") for line in result.stdout.splitlines()
            if line.startswith("setup-host.sh: ")]


def steps_of(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Each step's line: under --root each of ``STEPS`` says one line, in order, between the
    run's first line (``installing under``) and its last (the count of changes)."""
    found = lines(result)
    start = next(index for index, line in enumerate(found) if line.startswith("installing under ")) + 1
    body = found[start:-1]
    assert len(body) == len(STEPS), body
    return dict(zip(STEPS, body))


def edit_settings(path: Path, **values: str) -> None:
    """What an administrator does to the installed settings file: some values changed."""
    text = path.read_text().splitlines()
    for key, value in values.items():
        text = [f"{key}={value}" if line.startswith(f"{key}=") else line for line in text]
    path.write_text("\n".join(text) + "\n")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A throwaway root the script has installed into once, and what that run printed."""
    root = tmp_path_factory.mktemp("host")
    result = setup_host("--root", str(root), timeout=INSTALL_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    return root, result


# -- the script


def test_script_is_valid_bash() -> None:
    result = subprocess.run(["bash", "-n", str(SETUP_HOST)], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr


def test_script_passes_shellcheck() -> None:
    require("shellcheck", "shellcheck")
    result = subprocess.run(["shellcheck", str(SETUP_HOST)], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("args, error", [
    (["--bogus"], "unknown argument: --bogus"),
    (["--root"], "--root needs a value"),
    (["--source", "/nonexistent/chatflow"], "--source /nonexistent/chatflow: no such folder or file"),
    (["--source", str(UNIT)], "is not a wheel or sdist"),
])
def test_bad_arguments_get_one_line_and_status_2(args: list[str], error: str) -> None:
    result = setup_host(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("setup-host.sh: error: "), result.stderr
    assert error in result.stderr


def test_the_system_is_changed_only_by_root() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the script as another user")
    result = setup_host(user=65534)
    assert result.returncode == 1
    assert result.stderr.startswith("setup-host.sh: error: run as root"), result.stderr


def test_a_python_older_than_3_11_is_refused_in_one_line(tmp_path: Path) -> None:
    """A stand-in for Ubuntu 22.04's python3: it says it is 3.10 and fails the version check."""
    old = tmp_path / "python3.10"
    old.write_text('#!/bin/sh\ncase "$2" in *platform*) echo 3.10.12 ;; *) exit 1 ;; esac\n')
    old.chmod(0o755)
    result = setup_host("--root", str(tmp_path / "root"), "--python", str(old))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"setup-host.sh: error: {old} is Python 3.10.12; ChatFlow needs 3.11 or later (Debian 12, Ubuntu 24.04), "
        "or name one with --python"]
    assert not (tmp_path / "root").exists()


def test_a_wheel_is_a_source_too(tmp_path: Path) -> None:
    wheel = tmp_path / "chatflow-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"not opened in a dry run")
    result = setup_host("--dry-run", "--root", str(tmp_path / "root"), "--source", str(wheel))
    assert result.returncode == 0, result.stderr
    assert steps_of(result)["package"] == f"would pip install {wheel} into {tmp_path / 'root' / VENV}"


def test_dry_run_lists_every_step_and_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = setup_host("--dry-run", "--root", str(root))
    assert result.returncode == 0, result.stderr
    assert not root.exists()
    steps = steps_of(result)
    for step in ("packages", "user chatflow", "systemd", "firewall"):
        assert "skipped under --root (would " in steps[step]
    assert steps["venv"] == f"would make the venv {root / VENV}"
    assert steps["package"].startswith("would pip install ")
    assert steps["unit"] == f"would install the unit {root / INSTALLED_UNIT}"
    assert steps["settings"] == f"would install the settings {root / INSTALLED_ENV}"
    assert lines(result)[-1] == "dry run: 4 change(s) would be made"


# -- a real run into a throwaway root, and the runs after it


def test_first_run_installs_the_venv_package_unit_and_settings(installed) -> None:
    root, result = installed
    steps = steps_of(result)
    assert [steps[step] for step in ("venv", "package", "unit", "settings")] == [
        f"make the venv {root / VENV}",
        f"pip install {SETUP_HOST.parents[1]} into {root / VENV}",
        f"install the unit {root / INSTALLED_UNIT}",
        f"install the settings {root / INSTALLED_ENV}",
    ]
    assert lines(result)[-1] == "done: 4 change(s)"
    assert (root / INSTALLED_UNIT).read_bytes() == UNIT.read_bytes()
    assert (root / INSTALLED_ENV).read_bytes() == ENV_FILE.read_bytes()
    assert os.access(root / VENV / "bin/chatflow-server", os.X_OK)


def test_second_run_changes_nothing_and_an_edited_settings_file_is_kept(installed) -> None:
    root, _ = installed
    before = {path: path.stat().st_mtime_ns for path in (root / INSTALLED_UNIT, root / INSTALLED_ENV)}
    again = setup_host("--root", str(root))
    assert again.returncode == 0, again.stdout + again.stderr
    steps = steps_of(again)
    assert steps["venv"] == f"venv {root / VENV}: exists"
    assert steps["package"] == f"package: installed from {SETUP_HOST.parents[1]}, unchanged"
    assert steps["unit"] == f"unit {root / INSTALLED_UNIT}: unchanged"
    assert lines(again)[-1] == "nothing changed"
    assert {path: path.stat().st_mtime_ns for path in before} == before

    ports = free_port(), free_port()
    edit_settings(root / INSTALLED_ENV, CHATFLOW_WS_PORT=str(ports[0]), CHATFLOW_HEALTH_PORT=str(ports[1]))
    edited = (root / INSTALLED_ENV).read_text()
    third = setup_host("--root", str(root))
    assert third.returncode == 0, third.stdout + third.stderr
    steps = steps_of(third)
    assert steps["settings"].startswith(f"settings {root / INSTALLED_ENV}: edited, kept as it is")
    assert steps["firewall"].endswith(f"(would ufw allow {ports[0]}/tcp {ports[1]}/tcp)")
    assert lines(third)[-1] == "nothing changed"
    assert (root / INSTALLED_ENV).read_text() == edited


def test_the_installed_server_runs_as_its_unit_says_and_stops_on_sigterm(installed) -> None:
    """The installed unit's ExecStart, expanded with the installed settings (the ports made
    0 and the host loopback, two workers), run in the clean environment systemd gives it;
    then SIGTERM to the main process alone (KillMode=mixed) stops the whole tree."""
    root, _ = installed
    edit_settings(root / INSTALLED_ENV, CHATFLOW_HOST=LOCALHOST, CHATFLOW_WS_PORT="0", CHATFLOW_HEALTH_PORT="0",
                  CHATFLOW_WORKERS="2")
    unit = unit_settings(root / INSTALLED_UNIT)
    environment = {"PATH": "/usr/bin:/bin", **dict(v.split("=", 1) for v in unit["Environment"]),
                   **environment_file(root / unit["EnvironmentFile"][0].lstrip("/"))}
    argv = command_line(unit["ExecStart"][0], environment)
    argv[0] = str(root / argv[0].lstrip("/"))
    assert argv[0] == str(root / VENV / "bin/chatflow-server")

    where = subprocess.run([str(root / VENV / "bin/python"), "-c", "import chatflow; print(chatflow.__file__)"],
                           env=environment, cwd="/", capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert Path(where.stdout.strip()).is_relative_to(root / VENV), where.stdout + where.stderr

    stop_timeout = seconds(unit["TimeoutStopSec"][0])
    with ServerProcess(argv, cwd=Path("/"), env=environment, own_process_group=False,
                       stop_signals=(signal.SIGTERM,), grace=stop_timeout) as server:
        server.wait_listening("ws")
        health_port = server.wait_listening("http").port
        status, body = get_health(health_port)
        assert (status, body["status"]) == (200, "healthy"), body
        tree = psutil.Process(server.pid).children(recursive=True)
        assert len(tree) >= 2 and "in 2 worker processes" in server.stderr.text, server.stderr_tail()
        assert server.stop() == 0, server.stderr_tail()
    wait_until(lambda: all(gone(child.pid) for child in tree), message="every worker has exited")
    assert "stopped" in server.stderr.text


# -- the unit and its settings


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Checked as systemd would load it, its ExecStart pointed at this venv's chatflow-server
    (verify wants the program to exist) and its settings file at the shipped one."""
    require("systemd-analyze", "systemd")
    program = Path(sys.executable).parent / "chatflow-server"
    assert program.exists()
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/opt/chatflow/venv/bin/chatflow-server", str(program))
                    .replace("/etc/chatflow/server.env", str(ENV_FILE)))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)], capture_output=True, text=True,
                            timeout=RUN_TIMEOUT)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_unit_with_the_shipped_settings_runs_the_default_server() -> None:
    """The options ExecStart builds from deploy/chatflow-server.env are run_server.py's
    defaults but ``--worker-exit stop``: a host set up by the script serves as
    ``run_server.py`` does."""
    unit = unit_settings(UNIT)
    argv = command_line(unit["ExecStart"][0], environment_file(ENV_FILE))
    assert argv[0] == "/opt/chatflow/venv/bin/chatflow-server"
    # One choice of the unit's own: a dead worker stops the server, which systemd restarts.
    assert config_from(build_parser().parse_args(argv[1:])) == dataclasses.replace(DEFAULTS, worker_exit="stop")


def test_the_unit_stops_with_sigterm_within_its_timeout_and_restarts_on_failure() -> None:
    unit = {key: values[-1] for key, values in unit_settings(UNIT).items()}
    assert (unit["KillSignal"], unit["KillMode"], unit["Restart"]) == ("SIGTERM", "mixed", "on-failure")
    assert seconds(unit["TimeoutStopSec"]) > DEFAULTS.shutdown_grace + DEFAULTS.worker_stop_margin
    assert (unit["User"], unit["Group"]) == ("chatflow", "chatflow")
    assert int(unit["LimitNOFILE"]) > DEFAULTS.limits.max_connections
    # The usage error's status: a bad setting is not restarted for ever.
    assert unit["RestartPreventExitStatus"] == "2"

