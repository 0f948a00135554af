"""The simulated TEE's measurement of a workload: SHA-384 over its files, independent of their order.

Encoding (``custodes measure`` and the simulated evidence provider both use it)::

    SHA-384( b"custodes/measure/v1\\n"
             || for each (name, content), sorted by the UTF-8 bytes of name:
                u32be(len(name)) || name || u64be(len(content)) || SHA-384(content) )

``name`` is a file's base name when a file is given, and ``<dir base name>/<path relative to dir>`` (with ``/``
separators) for each regular file below a directory. Two entries with the same name are an error, so a
measurement never depends on which of two same-named files came first.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["measure_entries", "measure_paths"]

_DOMAIN = b"custodes/measure/v1\n"


def measure_entries(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """Measure (name, content) pairs. Pure. Raises ValueError for duplicate or empty names."""
    items: dict[bytes, bytes] = {}
    for name, content in entries:
        key = name.encode("utf-8")
        if not key:
            raise ValueError("empty file name in measurement")
        if key in items:
            raise ValueError(f"duplicate name in measurement: {name!r}")
        items[key] = hashlib.sha384(content).digest() + struct.pack(">Q", len(content))
    h = hashlib.sha384(_DOMAIN)
    for key in sorted(items):
        digest, length = items[key][:48], items[key][48:]
        h.update(struct.pack(">I", len(key)) + key + length + digest)
    return h.digest()


def _entries(paths: Sequence[Path]) -> Iterable[tuple[str, bytes]]:
    for path in paths:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                yield f"{path.resolve().name}/{file.relative_to(path).as_posix()}", file.read_bytes()
        elif path.is_file():
            yield path.name, path.read_bytes()
        else:
            raise FileNotFoundError(f"cannot measure {path}: no such file or directory")


def measure_paths(paths: Sequence[str | Path]) -> bytes:
    """Measure files and directories (read from disk). Raises FileNotFoundError or ValueError."""
    if not paths:
        raise ValueError("nothing to measure: name at least one file")
    return measure_entries(_entries([Path(p) for p in paths]))
