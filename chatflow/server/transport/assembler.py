"""Data frames in, whole messages out: fragment reassembly with its UTF-8 check.

The `websockets` protocol hands over frames as they arrive, fragments included; this
joins them. A text message is decoded fragment by fragment, so that invalid UTF-8 fails
as soon as it arrives (RFC 6455 §8.1: fail fast), not only when the last fragment does.
No I/O, no clock: a pure state machine, one per connection.
"""

from __future__ import annotations

import codecs

from websockets.frames import Frame, Opcode

_TEXT, _CONT = Opcode.TEXT, Opcode.CONT
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class MessageAssembler:
    """Joins a connection's data frames; ``add`` returns each message once it is whole.

    A text message comes out as ``str``, a binary one as ``bytes``. Invalid UTF-8 raises
    ``UnicodeDecodeError`` and forgets the message begun, so the connection can fail
    with 1007.
    """

    __slots__ = ("_parts", "_decoder")

    def __init__(self) -> None:
        self._parts: list[str | bytes] = []
        self._decoder: codecs.IncrementalDecoder | None = None

    @property
    def pending_parts(self) -> int:
        """Fragments held for the message begun (empty ones are not kept)."""
        return len(self._parts)

    def add(self, frame: Frame) -> str | bytes | None:
        """The message ``frame`` completes, or None while it is incomplete."""
        opcode = frame.opcode
        if frame.fin and opcode is not _CONT:
            # The common case, a message in one frame: nothing to keep.
            return frame.data.decode() if opcode is _TEXT else frame.data
        try:
            if opcode is _TEXT:
                self._decoder = _utf8_decoder()
            part = self._decoder.decode(frame.data, frame.fin) if self._decoder is not None else frame.data
        except UnicodeDecodeError:
            self._parts, self._decoder = [], None
            raise
        # Empty fragments add nothing to the size limit's count: kept, a stream of
        # them would grow this list without bound.
        if part:
            self._parts.append(part)
        if not frame.fin:
            return None
        parts, self._parts = self._parts, []
        decoder, self._decoder = self._decoder, None
        return "".join(parts) if decoder is not None else b"".join(parts)
