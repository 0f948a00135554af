"""Limits on record names and values, checked before anything touches the database."""

from __future__ import annotations

from custodes.store._codec import MAX_NAME_BYTES
from custodes.store.errors import StoreNameInvalidError, StoreValueTooLargeError

__all__ = ["MAX_NAME_BYTES", "MAX_VALUE_BYTES", "check_name", "check_value"]

MAX_VALUE_BYTES = 4 * 1024 * 1024


def check_name(name: object) -> bytes:
    """A record name as UTF-8 bytes, or STORE_NAME_INVALID."""
    if not isinstance(name, str):
        raise TypeError("record names are str")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise StoreNameInvalidError(message="a record name is not valid UTF-8") from e
    if not raw or len(raw) > MAX_NAME_BYTES:
        raise StoreNameInvalidError(message=f"a record name must be 1 to {MAX_NAME_BYTES} bytes of UTF-8")
    return raw


def check_value(value: object) -> bytes:
    """A record value as bytes, or STORE_VALUE_TOO_LARGE."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError("record values are bytes")
    raw = bytes(value)
    if len(raw) > MAX_VALUE_BYTES:
        raise StoreValueTooLargeError(message=f"a record value is larger than {MAX_VALUE_BYTES} bytes")
    return raw
