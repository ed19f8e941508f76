"""Keeping every output record under the producer's `max_request_size`.

A record the producer refuses (MessageSizeTooLargeError) would stop the output stage, and after a
restart the same input would fail again: a poison record that blocks its partition for good. So
an output record that would be too large is cut down, in this order, and says so in its headers:

1. a dead letter's value (the refused input, copied for inspection) is truncated:
   `guard.input.truncated` = the original length in bytes;
2. the input's own headers are left off (guard's headers and the trace context stay):
   `guard.input.headers_dropped` = how many;
3. the key is truncated (only a key near the size limit itself gets here):
   `guard.input.key_truncated` = its original length.

Decision values are never cut: they are small and bounded (the input's attributes are limited).
"""

from __future__ import annotations

from collections.abc import Sequence

Headers = list[tuple[str, bytes]]  # Kafka record headers, as kafka-python gives and takes them

TRUNCATED = "guard.input.truncated"
HEADERS_DROPPED = "guard.input.headers_dropped"
KEY_TRUNCATED = "guard.input.key_truncated"
# What the producer adds around a record in a batch (record batch header, varints): generous.
RECORD_OVERHEAD = 512
_HEADER_OVERHEAD = 10


def record_bytes(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    """An upper bound of the record's size as the producer counts it."""
    size = RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    return size + sum(len(k.encode()) + len(v or b"") + _HEADER_OVERHEAD for k, v in headers)


def fit_record(
    key: bytes | None, value: bytes | None, own: Headers, guard: Headers, limit: int, cut_value: bool
) -> tuple[bytes | None, bytes | None, Headers]:
    """(key, value, headers) of at most `limit` bytes. `own` are the input's headers, `guard` the
    ones guard adds; `cut_value` says whether the value may be truncated (dead letters)."""
    headers = own + guard
    if record_bytes(key, value, headers) <= limit:
        return key, value, headers
    notes: Headers = []
    if cut_value and value:
        room = limit - record_bytes(key, b"", headers) - _note_bytes(TRUNCATED, len(value))
        if room < len(value):
            notes.append((TRUNCATED, str(len(value)).encode()))
            value = value[: max(0, room)]
    if record_bytes(key, value, headers + notes) > limit and own:
        notes.append((HEADERS_DROPPED, str(len(own)).encode()))
        headers = list(guard)
    if key and record_bytes(key, value, headers + notes) > limit:
        room = limit - record_bytes(b"", value, headers + notes) - _note_bytes(KEY_TRUNCATED, len(key))
        notes.append((KEY_TRUNCATED, str(len(key)).encode()))
        key = key[: max(0, room)]
    return key, value, headers + notes


def _note_bytes(name: str, number: int) -> int:
    return len(name) + len(str(number)) + _HEADER_OVERHEAD
