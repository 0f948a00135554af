"""Errors of encoded processing.

The contract (docs/encoded.md, "Fail-stop"): :class:`FaultDetectedError` means the hardware computed something that
is not a valid code word. The process must stop, not retry: the runtime's supervisor treats it as a crash, so the
orchestrator restarts the workload, ideally on another node. :class:`EncodedOverflowError` is a program error (a
functional result left the value range); it is fail-stop too. Messages carry op names and reasons, never values.
"""

from __future__ import annotations

from custodes.errors import CustodesError

__all__ = [
    "EncodedError",
    "EncodedOverflowError",
    "EncodedRangeError",
    "EncodedUsageError",
    "EncoderError",
    "FaultDetectedError",
]


class EncodedError(CustodesError):
    """Root of the encoded-processing errors."""

    code = "ENCODED_ERROR"


class FaultDetectedError(EncodedError):
    """A code word failed its check: a hardware fault (or tampering) was detected. Fail-stop.

    ``reasons`` holds one of ``RESIDUE`` (wrong signature or not a multiple of A), ``RANGE`` (decoded value outside
    the functional range), ``WORD`` (not an n-bit word), ``VERSION`` (stale ANBD version: a lost update),
    ``CONTROL_FLOW`` (a branch taken against its encoded condition) or ``VERIFY`` (a multiply-back check failed).
    """

    code = "FAULT_DETECTED"

    def __init__(self, reason: str, where: str = "") -> None:
        self.reason = reason
        self.where = where
        message = f"encoded check failed ({reason})" + (f" in {where}" if where else "")
        super().__init__(None, message, [reason])


class EncodedOverflowError(EncodedError):
    """A functional result does not fit the code's value range. Fail-stop: the program, not the CPU, is wrong."""

    code = "ENCODED_OVERFLOW"


class EncodedRangeError(EncodedError):
    """A value handed to ``encode`` is not an integer of the code's functional range."""

    code = "ENCODED_RANGE"


class EncodedUsageError(EncodedError):
    """An encoded API was called with inconsistent parameters (for example a signature under plain AN)."""

    code = "ENCODED_USAGE"


class EncoderError(EncodedError):
    """The ``@encoded`` transformer met a construct it cannot encode. Raised at decoration time.

    Attributes:
        filename, lineno, col: where the construct is, in the original source file.
    """

    code = "ENCODER_UNSUPPORTED"

    def __init__(self, message: str, *, filename: str, lineno: int, col: int) -> None:
        self.filename = filename
        self.lineno = lineno
        self.col = col
        super().__init__(None, f"{filename}:{lineno}:{col}: {message}")
