"""Which connections are in which room."""

from __future__ import annotations

import threading
from collections.abc import Hashable


class RoomRegistry:
    """Room number → connections, safe to read from any thread (e.g. for monitoring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rooms: dict[int, set[Hashable]] = {}

    def join(self, room: int, member: Hashable) -> None:
        with self._lock:
            self._rooms.setdefault(room, set()).add(member)

    def leave(self, room: int, member: Hashable) -> None:
        with self._lock:
            members = self._rooms.get(room)
            if members is not None:
                members.discard(member)
                if not members:
                    del self._rooms[room]

    def members(self, room: int) -> tuple:
        """The room's members now, as a snapshot."""
        with self._lock:
            return tuple(self._rooms.get(room, ()))

    def occupancy(self) -> dict[int, int]:
        """Members per occupied room, as a snapshot."""
        with self._lock:
            return {room: len(members) for room, members in sorted(self._rooms.items())}
