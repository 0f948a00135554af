"""Evidence verifiers: bytes plus collateral in, verified :class:`Claims` out. Pure: no I/O, no clock."""

from custodes.evidence.claims import TCB_STATUSES, Claims, TcbStatus, TeeType

__all__ = ["TCB_STATUSES", "Claims", "TcbStatus", "TeeType"]
