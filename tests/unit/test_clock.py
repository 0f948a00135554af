"""FlooredClock: never below the newest signed timestamp, and never back in time while it runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from custodes.clock import FixedClock, FlooredClock

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class Monotonic:
    def __init__(self) -> None:
        self.value = 50.0

    def __call__(self) -> float:
        return self.value


def clocks() -> tuple[FixedClock, Monotonic, FlooredClock]:
    wall, mono = FixedClock(T0), Monotonic()
    return wall, mono, FlooredClock(wall, monotonic=mono)


def test_follows_the_wall_clock_while_it_runs_forward() -> None:
    wall, mono, clock = clocks()
    assert clock.now() == T0
    wall.set(T0 + timedelta(seconds=30))
    mono.value += 30
    assert clock.now() == T0 + timedelta(seconds=30)


def test_after_a_rewind_it_carries_on_from_the_latest_time_at_the_monotonic_rate() -> None:
    wall, mono, clock = clocks()
    wall.set(T0 + timedelta(hours=1))
    mono.value += 3600
    assert clock.now() == T0 + timedelta(hours=1)
    wall.set(T0)  # wound back an hour
    mono.value += 10
    assert clock.now() == T0 + timedelta(hours=1, seconds=10)
    wall.set(T0 + timedelta(hours=2))  # the wall clock overtakes it again: followed
    assert clock.now() == T0 + timedelta(hours=2)


def test_a_step_forward_is_kept() -> None:
    wall, mono, clock = clocks()
    clock.now()
    wall.set(T0 + timedelta(days=1))  # stepped forward, no time elapsed
    assert clock.now() == T0 + timedelta(days=1)
    wall.set(T0 + timedelta(seconds=5))
    mono.value += 5
    assert clock.now() == T0 + timedelta(days=1, seconds=5)


def test_without_a_monotonic_clock_it_is_a_high_water_mark() -> None:
    wall = FixedClock(T0 + timedelta(minutes=1))
    clock = FlooredClock(wall)
    assert clock.now() == T0 + timedelta(minutes=1)
    wall.set(T0)
    assert clock.now() == T0 + timedelta(minutes=1)


def test_the_signed_floor_still_bounds_it() -> None:
    _, _, clock = clocks()
    clock.observe_signed(T0 + timedelta(days=3))
    assert clock.now() == T0 + timedelta(days=3)


def test_a_lead_taken_up_from_another_clock_bounds_this_one() -> None:
    wall, mono, first = clocks()
    second = FlooredClock(wall, monotonic=mono)
    wall.set(T0 + timedelta(minutes=10))
    first.now()
    wall.set(T0)
    second.raise_lead(first.lead)
    assert second.now() == T0 + timedelta(minutes=10)


@given(st.lists(st.tuples(st.integers(-10**6, 10**6), st.integers(0, 10**4)), max_size=40))
def test_never_goes_back_and_never_falls_behind_elapsed_time(steps: list[tuple[int, int]]) -> None:
    wall, mono, clock = clocks()
    previous = clock.now()
    for wall_offset, elapsed in steps:
        wall.set(T0 + timedelta(seconds=wall_offset))
        mono.value += elapsed
        now = clock.now()
        assert now >= previous + timedelta(seconds=elapsed) - timedelta(microseconds=2)
        previous = now
