"""The state store's refusals, each with a stable code.

Every class is a :class:`custodes.errors.StoreError`, so callers that only care "the store said no" catch that.
Messages name records and versions at most; they never carry record values or key material.
"""

from __future__ import annotations

from custodes.errors import StoreError

__all__ = [
    "StoreClosedError",
    "StoreConflictError",
    "StoreCorruptError",
    "StoreForkError",
    "StoreIOError",
    "StoreKeyInvalidError",
    "StoreNameInvalidError",
    "StoreRollbackError",
    "StoreTamperedError",
    "StoreValueTooLargeError",
]


class StoreTamperedError(StoreError):
    """A MAC, AEAD tag or hash did not match: a record, bucket, log entry or the head was edited, swapped or
    replayed."""

    code = "STORE_TAMPERED"


class StoreRollbackError(StoreError):
    """The stored head is older than the newest head this process wrote or verified."""

    code = "STORE_ROLLBACK"


class StoreForkError(StoreError):
    """The stored head is validly MAC'd but its history does not extend the history this process knows."""

    code = "STORE_FORK"


class StoreConflictError(StoreError):
    """An optimistic-concurrency expectation (``expect=``) did not hold; nothing was written."""

    code = "STORE_CONFLICT"


class StoreKeyInvalidError(StoreError):
    """The storage root key is malformed, unsafe to use, or not the key this database was created with."""

    code = "STORE_KEY_INVALID"


class StoreCorruptError(StoreError):
    """The file is not a custodes store (wrong format or schema), or SQLite reports it as corrupt."""

    code = "STORE_CORRUPT"


class StoreIOError(StoreError):
    """SQLite failed for an operational reason (I/O error, disk full, lock timeout). The outcome of a commit that
    fails this way is unknown to the caller, but it is never acknowledged."""

    code = "STORE_IO"


class StoreClosedError(StoreError):
    """The store was used after :meth:`close`."""

    code = "STORE_CLOSED"


class StoreNameInvalidError(StoreError):
    """A record name is empty, not valid UTF-8, or longer than the limit."""

    code = "STORE_NAME_INVALID"


class StoreValueTooLargeError(StoreError):
    """A record value is larger than the limit."""

    code = "STORE_VALUE_TOO_LARGE"
