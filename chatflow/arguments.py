"""Argument types shared by the command lines: each refuses bad values with one line."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def port(text: str) -> int:
    """A TCP port; 0 means any free port."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535 (0: any free port), not {value}")
    return value


def whole_number(minimum: int = 1) -> Callable[[str], int]:
    """An integer of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value
    return parse


def seconds(minimum: float = 0.0, maximum: float = math.inf, *, allow_minimum: bool = False) -> Callable[[str], float]:
    """A finite duration above ``minimum`` (or equal to it, with ``allow_minimum``), at most ``maximum``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        low_ok = value >= minimum if allow_minimum else value > minimum
        if not (math.isfinite(value) and low_ok and value <= maximum):
            low = f"at least {minimum:g}" if allow_minimum else f"more than {minimum:g}"
            high = f" and at most {maximum:g}" if maximum != math.inf else ""
            raise argparse.ArgumentTypeError(f"must be {low}{high} seconds, not {text}")
        return value
    return parse


def milliseconds(maximum: float) -> Callable[[str], float]:
    """A finite duration of 0 ms or more, at most ``maximum`` ms (more is surely a unit mistake)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(value) and 0 <= value <= maximum):
            raise argparse.ArgumentTypeError(f"must be 0-{maximum:g} ms, not {text}")
        return value
    return parse


def redis_url(text: str) -> str:
    """A Redis URL (``redis://HOST:PORT/DB``, ``rediss://…``, ``unix://PATH``) as redis-py reads it."""
    from redis.connection import parse_url  # only the server's --bus needs it

    try:
        parse_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a Redis URL (redis://HOST:PORT/DB): {exc}") from None
    return text
