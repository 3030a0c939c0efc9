"""The commands a comparison runs: ChatFlow's own client (its server is
``chatflow.server.process``'s), and the other implementation's, given as templates with
placeholders.

A template is split as a shell would (``shlex``), then each word's placeholders are
filled, so a value never needs quoting; leading ``NAME=value`` words set the command's
environment, as they would in a shell. Placeholders are ``{name}`` for the names in
``PLACEHOLDERS``; any other text, ``${HOME}`` included, is left as it is. A command runs in
its run's folder: its program is found on PATH or from the tool's directory, its other
words are its own (``{cwd}`` names the tool's directory).
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: What a template may name, and what each stands for.
PLACEHOLDERS = {
    "port": "the server's WebSocket port (the tool picks a free one)",
    "health_port": "the server's health port (likewise)",
    "url": "ws://HOST:PORT of the server (or of the delay proxy in front of it), no path",
    "host": "the host of that URL (127.0.0.1)",
    "messages": "total messages of the run",
    "warmup_threads": "warmup threads",
    "warmup_messages": "messages per warmup thread",
    "threads": "main-phase threads",
    "python": "the Python running this tool",
    "cwd": "the directory the tool was started in (each command runs in its run's folder)",
}
#: ``{name}`` not preceded by ``$`` (``${HOME}`` is the shell's).
_PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)

#: ChatFlow's client as the comparison runs it: its metrics CSV only, no analysis, so
#: that its process's CPU is the load test's, as the Java client's is.
PYTHON_CLIENT = ("{python} -m chatflow.client.main --server {url} --messages {messages} "
                 "--warmup-threads {warmup_threads} --warmup-messages {warmup_messages} --threads {threads} "
                 "--quiet --no-analysis --output-dir results")
#: The Java original's scripts (its README: ports and run sizes from the environment, which
#: the runner sets for every command).
JAVA_SERVER = "{dir}/run_server.sh"
JAVA_CLIENT = "{dir}/run_client.sh {url}"
JAVA_SCRIPTS = ("run_server.sh", "run_client.sh")


class CommandError(ValueError):
    """A template that cannot be used; one line for the user."""


@dataclass(frozen=True)
class Command:
    """A filled template: the program and its arguments, and what it adds to the environment."""

    argv: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class CommandTemplate:
    """A command line with placeholders, checked once when it is given."""

    text: str

    def __post_init__(self) -> None:
        try:
            words = shlex.split(self.text)
        except ValueError as exc:
            raise CommandError(f"cannot split {self.text!r} into words: {exc}") from None
        unknown = sorted({name for name in _PLACEHOLDER.findall(self.text) if name not in PLACEHOLDERS})
        if unknown:
            raise CommandError(f"unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)} in "
                               f"{self.text!r}; known: {', '.join('{' + n + '}' for n in PLACEHOLDERS)}")
        if not [word for word in words if not _ASSIGNMENT.fullmatch(word)]:
            raise CommandError(f"no program to run in {self.text!r}")

    @property
    def placeholders(self) -> set[str]:
        return set(_PLACEHOLDER.findall(self.text))

    def fill(self, values: Mapping[str, object]) -> Command:
        """The command with every placeholder replaced by ``values``' (each must be there)."""
        def substitute(word: str) -> str:
            return _PLACEHOLDER.sub(lambda match: str(values[match[1]]), word)

        words = [substitute(word) for word in shlex.split(self.text)]
        env = {}
        while words and (assignment := _ASSIGNMENT.fullmatch(words[0])):
            env[assignment[1]] = assignment[2]
            words.pop(0)
        return Command(words, env)


def python_client_template() -> CommandTemplate:
    return CommandTemplate(PYTHON_CLIENT)


def java_templates(directory: Path) -> tuple[CommandTemplate, CommandTemplate]:
    """The server and client templates of the Java original built in ``directory``."""
    missing = [name for name in JAVA_SCRIPTS if not (directory / name).is_file()]
    if missing:
        raise CommandError(f"{directory} is not a built Java original: no {' or '.join(missing)} there "
                           f"(build it with java-original/build.sh, see its README)")
    folder = shlex.quote(str(directory.resolve()))
    return (CommandTemplate(JAVA_SERVER.replace("{dir}", folder)),
            CommandTemplate(JAVA_CLIENT.replace("{dir}", folder)))


def run_values(*, url: str, host: str, port: int, health_port: int | None, messages: int, warmup_threads: int,
               warmup_messages: int, threads: int, cwd: Path | None = None) -> dict[str, object]:
    """Every placeholder's value for one run (``cwd`` by default this process's directory)."""
    return {"port": port, "health_port": health_port, "url": url, "host": host, "messages": messages,
            "warmup_threads": warmup_threads, "warmup_messages": warmup_messages, "threads": threads,
            "python": sys.executable, "cwd": cwd or Path.cwd()}
