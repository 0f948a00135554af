"""Built-in kernels for campaigns, tests and benchmarks: small, deterministic, integer-only.

Each kernel is written as plain Python and encoded with ``@encoded``; ``Kernel.fn.original`` is the unencoded
function. ``default_args`` are the inputs of the fault campaigns (one golden run per variant, as FAIL* does);
``random_args`` draws in-range inputs for the equivalence tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from custodes.encoded.transform import EncodedFunction, encoded

__all__ = ["KERNELS", "Kernel"]

MAX_RATE_UL_H = 999_000  # the pump's limit: 999 ml/h
I_LIMIT = 100_000  # PID anti-windup bound
OUT_LIMIT = 1_000_000  # PID actuator bound


@encoded
def dosage(weight_g, dose_ug_kg_h, conc_ug_ml):
    """Infusion-pump rate in µl/h for a weight-based continuous infusion; -1 refuses bad inputs."""
    if conc_ug_ml <= 0 or weight_g <= 0 or dose_ug_kg_h < 0:
        return -1
    dose_ug_h = weight_g * dose_ug_kg_h // 1000
    rate_ul_h = dose_ug_h * 1000 // conc_ug_ml
    return min(rate_ul_h, MAX_RATE_UL_H)


@encoded
def fletcher16(data: list[int]):
    """Fletcher-16 checksum of a byte array."""
    s1 = 0
    s2 = 0
    for i in range(len(data)):
        s1 = (s1 + data[i]) % 255
        s2 = (s2 + s1) % 255
    return (s2 << 8) + s1


@encoded
def matmul(a: list[int], b: list[int], n):
    """Product of two n×n matrices stored row-major in flat lists."""
    c = [0] * (n * n)
    for i in range(n):
        for j in range(n):
            s = 0
            for k in range(n):
                s += a[i * n + k] * b[k * n + j]
            c[i * n + j] = s
    return c


@encoded
def bubblesort(a: list[int]):
    """Bubble sort with early exit; sorts in place and returns the list."""
    n = len(a)
    swapped = 1
    while swapped:
        swapped = 0
        for j in range(n - 1):
            if a[j] > a[j + 1]:
                a[j], a[j + 1] = a[j + 1], a[j]
                swapped = 1
        n -= 1
    return a


@encoded
def pid_step(state: list[int], setpoint, measured, kp, ki, kd):
    """One step of an integer PID controller (gains in 1/1000); state = [integral, previous error]."""
    err = setpoint - measured
    integral = max(min(state[0] + err, I_LIMIT), -I_LIMIT)
    deriv = err - state[1]
    out = (kp * err + ki * integral + kd * deriv) // 1000
    out = max(min(out, OUT_LIMIT), -OUT_LIMIT)
    state[0] = integral
    state[1] = err
    return out


@dataclass(frozen=True, slots=True)
class Kernel:
    """A built-in kernel: the encoded function, campaign inputs and an input generator."""

    name: str
    fn: EncodedFunction
    default_args: Callable[[], tuple[Any, ...]]
    random_args: Callable[[random.Random], tuple[Any, ...]]


def _dosage_args(r: random.Random) -> tuple[Any, ...]:
    return (r.randint(500, 200_000), r.randint(0, 5_000), r.randint(1, 100_000))


def _bytes(r: random.Random, n: int) -> list[int]:
    return [r.randint(0, 255) for _ in range(n)]


def _matmul_args(r: random.Random) -> tuple[Any, ...]:
    n = r.randint(1, 4)
    return ([r.randint(-1000, 1000) for _ in range(n * n)], [r.randint(-1000, 1000) for _ in range(n * n)], n)


def _pid_args(r: random.Random) -> tuple[Any, ...]:
    state = [r.randint(-I_LIMIT, I_LIMIT), r.randint(-50_000, 50_000)]
    return (state, r.randint(-50_000, 50_000), r.randint(-50_000, 50_000), *(r.randint(0, 5_000) for _ in range(3)))


KERNELS: dict[str, Kernel] = {
    k.name: k
    for k in (
        Kernel("dosage", dosage, lambda: (72_500, 1_500, 4_000), _dosage_args),
        Kernel(
            "checksum",
            fletcher16,
            lambda: ([7, 200, 31, 99, 255, 0, 18, 64],),
            lambda r: (_bytes(r, r.randint(0, 16)),),
        ),
        Kernel(
            "matmul", matmul, lambda: ([1, -2, 3, 4, 5, -6, 7, 8, 9], [9, 8, 7, -6, 5, 4, 3, 2, -1], 3), _matmul_args
        ),
        Kernel(
            "bubblesort",
            bubblesort,
            lambda: ([5, -3, 9, 1, 0, 7],),
            lambda r: ([r.randint(-999, 999) for _ in range(r.randint(0, 8))],),
        ),
        Kernel("pid", pid_step, lambda: ([1_200, -35], 20_000, 18_500, 1_200, 150, 40), _pid_args),
    )
}
