"""Instants as the Java original writes and reads them.

ChatFlow carries instants as integer epoch milliseconds: the wire form
``yyyy-MM-ddTHH:mm:ss.SSSZ`` has exactly millisecond precision, and finer input is
truncated as Java's ``DateTimeFormatter`` truncates it.
"""

from __future__ import annotations

import re
import time
from datetime import date
from decimal import Decimal, InvalidOperation
from time import time_ns

#: Instants the wire format can express: years 0001..9999.
MIN_EPOCH_MS = -62_135_596_800_000
MAX_EPOCH_MS = 253_402_300_799_999

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_OFFSET_SECONDS = 18 * 3600

# ISO-8601 as java.time.Instant.parse reads it: seconds required, 0-9 fraction
# digits, "Z" or a numeric offset; case-insensitive like DateTimeFormatter.ISO_INSTANT.
_ISO_INSTANT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:[Zz]|([+-])(\d{2}):(\d{2})(?::(\d{2}))?)",
    re.ASCII,
)

# Both caches map a whole second to its text or back. A load run touches a few
# hundred distinct seconds; the caches are emptied when they grow past this size.
_CACHE_LIMIT = 4096
_prefix_of_second: dict[int, str] = {}
_second_of_prefix: dict[str, int] = {}


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return time_ns() // 1_000_000


def format_instant(epoch_ms: int) -> str:
    """Format as ``yyyy-MM-ddTHH:mm:ss.SSSZ``, UTC.

    Every reply carries two of these, so the text up to the second is cached (a dict
    is safe to share between threads).
    """
    second, millis = divmod(epoch_ms, 1000)
    prefix = _prefix_of_second.get(second)
    if prefix is None:
        t = time.gmtime(second)
        prefix = (
            f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
            f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}."
        )
        if len(_prefix_of_second) >= _CACHE_LIMIT:
            _prefix_of_second.clear()
        _prefix_of_second[second] = prefix
    return f"{prefix}{millis:03d}Z"


def parse_instant(value: object) -> int | None:
    """Epoch milliseconds of an ISO-8601 string or a JSON number of epoch seconds.

    Returns None for anything else, including instants outside years 1..9999. The
    Java client sends numbers such as ``1795518076.943278969``; a float is read through
    its shortest decimal form so that ``.943`` is not turned into ``.942999``.
    """
    if isinstance(value, str):
        return _parse_iso(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        epoch_ms = value * 1000
    elif isinstance(value, float):
        try:
            epoch_ms = int((Decimal(repr(value)) * 1000).to_integral_value(rounding="ROUND_FLOOR"))
        except (InvalidOperation, ValueError, OverflowError):
            return None
    else:
        return None
    return epoch_ms if MIN_EPOCH_MS <= epoch_ms <= MAX_EPOCH_MS else None


def _parse_iso(text: str) -> int | None:
    # Fast path for the canonical form, whose second was seen before.
    if len(text) == 24 and text[19] == "." and text[23] in "Zz":
        seconds = _second_of_prefix.get(text[:19])
        millis = text[20:23]
        if seconds is not None and millis.isascii() and millis.isdigit():
            return seconds * 1000 + int(millis)
    match = _ISO_INSTANT.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m, off_s = match.groups()
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    hour, minute, second = int(hour), int(minute), int(second)
    if hour > 23 or minute > 59 or second > 59:
        return None
    offset = 0
    if sign is not None:
        off_h, off_m, off_s = int(off_h), int(off_m), int(off_s or 0)
        offset = off_h * 3600 + off_m * 60 + off_s
        # Java's ZoneOffset ends at ±18:00, so "+18:30" is no offset there either.
        if off_m > 59 or off_s > 59 or offset > _MAX_OFFSET_SECONDS:
            return None
        if sign == "-":
            offset = -offset
    seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    epoch_ms = seconds * 1000 + millis
    if not MIN_EPOCH_MS <= epoch_ms <= MAX_EPOCH_MS:
        return None
    if sign is None:
        if len(_second_of_prefix) >= _CACHE_LIMIT:
            _second_of_prefix.clear()
        _second_of_prefix[text[:19]] = seconds
    return epoch_ms
