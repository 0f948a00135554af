"""The store's public value types: the head and write-log entries."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Head", "LogEntry"]


@dataclass(frozen=True, slots=True)
class Head:
    """The MAC'd summary of the whole store at one version.

    ``digest`` is the hash chain over every commit so far, so two heads with the same ``(epoch, version)`` but
    different digests are two histories (a fork). Heads order by ``(epoch, version)``.
    """

    epoch: int
    version: int
    digest: bytes

    def __repr__(self) -> str:
        return f"Head(epoch={self.epoch}, version={self.version}, digest={self.digest.hex()[:16]}…)"

    def older_than(self, other: Head) -> bool:
        """Whether this head comes strictly before ``other`` in ``(epoch, version)`` order."""
        return (self.epoch, self.version) < (other.epoch, other.version)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One verified, decrypted write-log entry: which names a commit put and deleted (never the values)."""

    version: int
    epoch: int
    puts: tuple[str, ...]
    deletes: tuple[str, ...]
    digest: bytes

    def __repr__(self) -> str:
        return (
            f"LogEntry(version={self.version}, epoch={self.epoch}, puts={self.puts!r}, deletes={self.deletes!r}, "
            f"digest={self.digest.hex()[:16]}…)"
        )
