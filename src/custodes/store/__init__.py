"""The state store: versioned, encrypted, MAC'd records with rollback detection (DESIGN.md §7).

Mode A, the embedded default, is :class:`SqliteStore`::

    from custodes.store import SqliteStore, load_or_create_storage_key

    key = load_or_create_storage_key(data_dir)
    with SqliteStore.open(data_dir / "state.db", key) as store:
        head = store.commit({"policy/clinic": b"..."}, expect={"policy/clinic": None})
        value = store.get("policy/clinic")

What it detects and what it cannot (a whole-file rollback across a restart) is in docs/state.md.
"""

from custodes.store.errors import (
    StoreClosedError,
    StoreConflictError,
    StoreCorruptError,
    StoreForkError,
    StoreIOError,
    StoreKeyInvalidError,
    StoreNameInvalidError,
    StoreRollbackError,
    StoreTamperedError,
    StoreValueTooLargeError,
)
from custodes.store.head import Head, LogEntry
from custodes.store.keys import KeySealer, UnsafeSimulationKeySealer, load_or_create_storage_key
from custodes.store.sqlite import MAX_NAME_BYTES, MAX_VALUE_BYTES, SqliteStore

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_VALUE_BYTES",
    "Head",
    "KeySealer",
    "LogEntry",
    "SqliteStore",
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
    "UnsafeSimulationKeySealer",
    "load_or_create_storage_key",
]
