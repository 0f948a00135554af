"""Encoded processing: detect hardware faults in safety-critical integer code and stop (fail-stop).

A value ``x`` is computed as the code word ``A*x + B + D`` (AN, ANB, ANBD codes). Checked operations keep words
valid; a fault that corrupts a word, swaps operands or operators, loses a store or takes a wrong branch yields an
invalid word and :class:`FaultDetectedError`. Use ``@encoded`` on a plain integer function, the scalar ALU
(:class:`EncodedOps`) or numpy vectors (:class:`VectorOps`). See docs/encoded.md for guarantees and limits.

Example::

    from custodes.encoded import encoded

    @encoded
    def rate(weight_g, dose_ug_kg_h, conc_ug_ml):
        return weight_g * dose_ug_kg_h // 1000 * 1000 // conc_ug_ml

    rate(72_500, 1_500, 4_000)  # 27187, or FaultDetectedError: stop, never a wrong dose
"""

from custodes.encoded.baseline import PlainOps
from custodes.encoded.code import DEFAULT_A, SUPER_AS, Code, Scheme
from custodes.encoded.errors import (
    EncodedError,
    EncodedOverflowError,
    EncodedRangeError,
    EncodedUsageError,
    EncoderError,
    FaultDetectedError,
)
from custodes.encoded.memory import EncodedArray, EncodedCell
from custodes.encoded.ops import EncodedOps
from custodes.encoded.transform import EncodedFunction, encoded
from custodes.encoded.vector import EncodedVector, VectorOps

__all__ = [
    "DEFAULT_A",
    "SUPER_AS",
    "Code",
    "EncodedArray",
    "EncodedCell",
    "EncodedError",
    "EncodedFunction",
    "EncodedOps",
    "EncodedOverflowError",
    "EncodedRangeError",
    "EncodedUsageError",
    "EncodedVector",
    "EncoderError",
    "FaultDetectedError",
    "PlainOps",
    "Scheme",
    "VectorOps",
    "encoded",
]
