"""A message's WebSocket frame, built ahead of time by the generator thread.

Framed with websocket-client's own ``ABNF``, so the bytes are those the library would
send; the senders only write them (``ChatWebSocketClient.request``).
"""

from __future__ import annotations

import os

from websocket import ABNF

MASK_POOL = 4096


class MaskKeys:
    """Masking keys from the OS's entropy source, drawn 1,024 keys per system call."""

    __slots__ = ("_pool", "_offset")

    def __init__(self) -> None:
        self._pool = b""
        self._offset = MASK_POOL

    def __call__(self, length: int) -> bytes:
        if self._offset + length > len(self._pool):
            self._pool, self._offset = os.urandom(MASK_POOL), 0
        start = self._offset
        self._offset = start + length
        return self._pool[start:start + length]


def text_frame(payload: bytes, mask_keys: MaskKeys) -> bytes:
    """The whole masked text frame for ``payload``, as websocket-client frames it."""
    frame = ABNF.create_frame(payload, ABNF.OPCODE_TEXT)
    frame.get_mask_key = mask_keys
    return frame.format()
