"""The four pairings of a comparison, their codes and labels, and the order they run in.

A code is the client's side then the server's: ``p`` for Python, ``o`` for the other
implementation (``op`` = the other's client against the Python server). The JSON always
says ``p``/``o``; on the command line the other's initial (``j`` for Java) stands for ``o``.
"""

from __future__ import annotations

PYTHON, OTHER = "p", "o"
#: Every pairing, in the order of a comparison's first round.
CODES = ("pp", "po", "op", "oo")
PYTHON_NAME = "Python"


class PairingError(ValueError):
    """A ``--only`` list that names no pairing, or a code that is none; one line for the user."""


def side_name(side: str, names: dict[str, str]) -> str:
    """``Python`` or the other's name for a side letter."""
    return names["python"] if side == PYTHON else names["other"]


def pairing(code: str, names: dict[str, str]) -> dict[str, str]:
    """The client's name, the server's name and the label (``Python → Java``) of ``code``."""
    client, server = side_name(code[0], names), side_name(code[1], names)
    return {"client": client, "server": server, "label": f"{client} → {server}"}


def codes_table(names: dict[str, str]) -> dict[str, dict[str, str]]:
    """Every code's :func:`pairing`, as the JSON's ``codes``."""
    return {code: pairing(code, names) for code in CODES}


def abba_order(codes: tuple[str, ...] | list[str], rounds: int) -> list[tuple[str, int]]:
    """(code, round) in the order run: round 1 forward, round 2 backward, and so on, so that
    a drift over the sitting (heat, a neighbour's load) favours no pairing."""
    order = []
    for round_number in range(1, rounds + 1):
        codes_this_round = codes if round_number % 2 else list(reversed(codes))
        order.extend((code, round_number) for code in codes_this_round)
    return order


def other_initial(other_name: str) -> str | None:
    """The letter that stands for ``o`` on the command line, or None when it would be ``p``
    or is no letter (then only ``o`` does)."""
    initial = other_name[:1].lower()
    return initial if initial.isalpha() and initial not in (PYTHON, OTHER) else None


def parse_only(text: str, other_name: str) -> list[str]:
    """``pp,jp`` → ``["pp", "op"]``: the pairings asked for, in ``CODES`` order, each once."""
    initial = other_initial(other_name)
    wanted = set()
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        code = item.replace(initial, OTHER) if initial else item
        if code not in CODES:
            letters = f"p and o (or {initial})" if initial else "p and o"
            raise PairingError(f"unknown pairing {item!r}: a pairing is two letters, client then server, "
                               f"of {letters}, e.g. pp,{(initial or OTHER)}p")
        wanted.add(code)
    if not wanted:
        raise PairingError("no pairing named: give codes such as pp,po,op,oo")
    return [code for code in CODES if code in wanted]
