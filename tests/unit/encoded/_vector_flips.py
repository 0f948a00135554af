"""One tally loop for the bit-flip tests of compiled vector kernels (fused loops, matmul)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from custodes.encoded import FaultDetectedError


def tally_flips(
    cases: Iterable[tuple[str, Callable[..., Any], list[Any]]],
    positions_of: Callable[[Any], Iterable[Any]],
    bits_of: Callable[[int, Any], Iterable[tuple[int, ...]]],
    flip: Callable[[Any, Any, tuple[int, ...]], Any],
) -> dict[str, int]:
    """Run every kernel once per (input, position, bits) with those bits flipped in that input's word and count
    the outcomes against the fault-free output: detected (FaultDetectedError), masked (same output) or sdc."""
    tally = {"detected": 0, "masked": 0, "sdc": 0}
    for _name, kernel, inputs in cases:
        golden = kernel(*inputs)
        for slot, vec in enumerate(inputs):
            for pos in positions_of(vec):
                for bits in bits_of(slot, pos):
                    args = list(inputs)
                    args[slot] = flip(vec, pos, bits)
                    try:
                        out = kernel(*args)
                    except FaultDetectedError:
                        tally["detected"] += 1
                        continue
                    tally["masked" if np.array_equal(out, golden) else "sdc"] += 1
    return tally
