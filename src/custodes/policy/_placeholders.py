"""Placeholders: ``$$custodes::NAME$$`` and ``$$custodes::NAME:FORMAT$$``.

Any occurrence of ``$$custodes::`` must start a well-formed placeholder: a typo is an error, never literal text,
so a misspelt placeholder cannot silently ship to a workload.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["PREFIX", "Placeholder", "find_placeholders", "substitute"]

PREFIX = "$$custodes::"
_PLACEHOLDER_RE = re.compile(r"\$\$custodes::([a-z_][a-z0-9_]{0,63})(?::([a-z0-9][a-z0-9-]{0,31}))?\$\$")


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One placeholder occurrence: ``text[start:end]`` names secret ``name`` in format ``fmt`` (None = default)."""

    start: int
    end: int
    name: str
    fmt: str | None


def find_placeholders(text: str) -> list[Placeholder]:
    """Every placeholder in ``text``, in order.

    Raises:
        ValueError: at the first ``$$custodes::`` that does not start a well-formed placeholder.
    """
    found = []
    pos = text.find(PREFIX)
    while pos != -1:
        match = _PLACEHOLDER_RE.match(text, pos)
        if match is None:
            snippet = text[pos : pos + 40]
            raise ValueError(
                f"malformed placeholder {snippet!r} (expected $$custodes::NAME$$ or $$custodes::NAME:FORMAT$$)"
            )
        found.append(Placeholder(match.start(), match.end(), match.group(1), match.group(2)))
        pos = text.find(PREFIX, match.end())
    return found


def substitute(text: str, value_of: Callable[[str, str | None], str]) -> str:
    """Replace every placeholder with ``value_of(name, fmt)``; the result is never re-scanned."""
    out = []
    last = 0
    for ph in find_placeholders(text):
        out.append(text[last : ph.start])
        out.append(value_of(ph.name, ph.fmt))
        last = ph.end
    out.append(text[last:])
    return "".join(out)
