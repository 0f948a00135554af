"""Durations in the policy language: ``30s``, ``15m``, ``1h``, ``7d`` and combinations such as ``1h30m``.

Units must appear in the order d, h, m, s, each at most once, with a decimal integer count (no sign, no fraction).
``0s`` is a valid duration; fields that need a positive one say so. The longest accepted duration is 100 years, so
that arithmetic on it can never overflow.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["MAX_DURATION", "format_duration", "parse_duration"]

MAX_DURATION = timedelta(days=36500)
_DURATION_RE = re.compile(r"(?:(\d{1,6})d)?(?:(\d{1,8})h)?(?:(\d{1,9})m)?(?:(\d{1,10})s)?")


def parse_duration(text: str) -> timedelta:
    """Parse a policy duration.

    Raises:
        ValueError: with a message fit for a policy error (it quotes the offending text).
    """
    if not isinstance(text, str):
        raise ValueError("expected a duration string such as '30s', '15m', '1h' or '7d'")
    match = _DURATION_RE.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"invalid duration {text[:40]!r} (expected e.g. '30s', '15m', '1h', '7d' or '1h30m')")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {text!r} is longer than 36500d")
    return timedelta(seconds=total)


def format_duration(value: timedelta) -> str:
    """The shortest policy spelling of a whole-second duration (``5400s`` -> ``1h30m``)."""
    total = int(value.total_seconds())
    if total == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
