"""A restricted YAML reader that remembers where every value came from.

It walks the parser's event stream with an explicit stack (no recursion, no composer), and accepts only plain data:
no anchors, aliases, merge keys or tags (so billion-laughs expansion is impossible), one document, nesting at most
:data:`MAX_DEPTH` deep, unique mapping keys. Mapping keys are always taken as text. Scalars resolve as in YAML 1.1
(PyYAML's safe resolver): ``true``, ``42``, ``~`` and timestamps become booleans, integers, null and datetimes; base 60
numbers (``1:30``) and numbers longer than :data:`MAX_NUMBER_CHARS` are refused before conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import events
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

__all__ = ["MAX_DEPTH", "Mark", "YamlDocument", "YamlIssue", "parse_yaml"]

MAX_DEPTH = 32
#: Longer numbers are refused before conversion (the largest integer a policy accepts, 2**53 - 1, has 16 digits).
MAX_NUMBER_CHARS = 64
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CONSTRUCTIBLE = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str", "timestamp", "binary")
) - {"tag:yaml.org,2002:binary"}
_NUMBERS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})
#: How a scalar that resolves to a tag but does not construct (2026-02-30) is named in the error.
_KINDS = {
    "tag:yaml.org,2002:int": "integer",
    "tag:yaml.org,2002:float": "number",
    "tag:yaml.org,2002:timestamp": "timestamp",
}

Mark = tuple[int, int]  # 1-based line, column
Path = tuple[str | int, ...]


class YamlIssue(Exception):
    """Findings that make the document unusable; each is ``(mark, message)``."""

    def __init__(self, issues: list[tuple[Mark, str]]) -> None:
        super().__init__(issues[0][1])
        self.issues = issues


@dataclass(slots=True)
class YamlDocument:
    """Plain data (dicts, lists, scalars) and, for each path, the position of its key (if any) and value."""

    data: Any
    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)


def _mark(event: events.Event) -> Mark:
    m = event.start_mark
    return (m.line + 1, m.column + 1) if m is not None else (1, 1)


class _Refused(ValueError):
    """A scalar the reader cannot take; the message is reported as is (it never quotes the value)."""


class _Scalars:
    def __init__(self) -> None:
        self._resolver = Resolver()
        self._constructor = SafeConstructor()

    def value(self, event: events.ScalarEvent) -> Any:
        tag = self._resolver.resolve(ScalarNode, event.value, event.implicit)
        if tag not in _CONSTRUCTIBLE:
            raise _Refused("unsupported YAML value")
        if tag in _NUMBERS:
            # YAML 1.1 base 60 (1:30 is 90) takes PyYAML quadratic time to convert: refuse it, and bound the rest.
            if ":" in event.value:
                raise _Refused("YAML base-60 numbers are not allowed (quote the value if it is text)")
            if len(event.value) > MAX_NUMBER_CHARS:
                raise _Refused(f"number is longer than {MAX_NUMBER_CHARS} characters")
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return self._constructor.construct_object(node)
        except Exception as e:  # e.g. 2026-02-30; never quote the scalar: it may be an explicit secret's value
            raise _Refused(f"invalid YAML {_KINDS.get(tag, 'scalar')} (quote the value if it is text)") from e


def _location(exc: yaml.YAMLError, text: str) -> Mark:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return mark.line + 1, mark.column + 1
    position = getattr(exc, "position", None)
    if isinstance(position, int):
        before = text[:position]
        return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1
    return 1, 1


def _syntax_message(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "cannot parse"
    return f"YAML syntax error: {problem}"


class _Builder:
    """Turns events into data, one event at a time."""

    def __init__(self) -> None:
        self.doc = YamlDocument(data=None)
        self.issues: list[tuple[Mark, str]] = []
        self.scalars = _Scalars()
        # Frames: [container, path, pending_key] ; pending_key is used by mappings only.
        self.stack: list[list[Any]] = []
        self.done = False

    def _child_path(self) -> Path | None:
        if not self.stack:
            return ()
        container, path, pending = self.stack[-1]
        if isinstance(container, list):
            return (*path, len(container))
        return None if pending is None else (*path, pending)

    def _place(self, value: Any, mark: Mark) -> Path:
        """Attach a finished value (or a new container) to its parent; return its path."""
        if not self.stack:
            self.doc.data = value
            self.doc.values[()] = mark
            return ()
        frame = self.stack[-1]
        container, path, pending = frame
        if isinstance(container, list):
            child = (*path, len(container))
            container.append(value)
        else:
            child = (*path, pending)
            frame[2] = None
            if pending is not _DUPLICATE:
                container[pending] = value
        self.doc.values[child] = mark
        return child

    def _expecting_key(self) -> bool:
        return bool(self.stack) and isinstance(self.stack[-1][0], dict) and self.stack[-1][2] is None

    def feed(self, event: events.Event) -> None:
        if isinstance(event, events.AliasEvent):
            raise YamlIssue([(_mark(event), "YAML aliases are not allowed")])
        if isinstance(event, events.NodeEvent) and event.anchor is not None:
            raise YamlIssue([(_mark(event), "YAML anchors are not allowed")])
        if isinstance(event, events.CollectionStartEvent | events.ScalarEvent) and event.tag is not None:
            raise YamlIssue([(_mark(event), "YAML tags are not allowed")])
        if isinstance(event, events.DocumentStartEvent) and self.done:
            raise YamlIssue([(_mark(event), "expected a single YAML document")])
        if isinstance(event, events.ScalarEvent):
            self._scalar(event)
        elif isinstance(event, events.CollectionStartEvent):
            if self._expecting_key():
                raise YamlIssue([(_mark(event), "mapping keys must be plain text")])
            if len(self.stack) >= MAX_DEPTH:
                raise YamlIssue([(_mark(event), f"nesting is deeper than {MAX_DEPTH} levels")])
            container: Any = {} if isinstance(event, events.MappingStartEvent) else []
            path = self._place(container, _mark(event))
            self.stack.append([container, path, None])
        elif isinstance(event, events.CollectionEndEvent):
            self.stack.pop()
        elif isinstance(event, events.DocumentEndEvent):
            self.done = True

    def _scalar(self, event: events.ScalarEvent) -> None:
        mark = _mark(event)
        if self._expecting_key():
            frame = self.stack[-1]
            key = event.value
            if key == "<<" and event.implicit[0]:
                raise YamlIssue([(mark, "YAML merge keys are not allowed")])
            if key in frame[0]:
                self.issues.append((mark, f"duplicate key {key[:80]!r}"))
                frame[2] = _DUPLICATE
            else:
                frame[2] = key
                self.doc.keys[(*frame[1], key)] = mark
            return
        try:
            value = self.scalars.value(event)
        except _Refused as e:
            raise YamlIssue([(mark, str(e))]) from e
        self._place(value, mark)


class _Duplicate(str):
    __slots__ = ()


_DUPLICATE = _Duplicate("<duplicate>")


def parse_yaml(text: str) -> YamlDocument:
    """Parse one restricted YAML document.

    Raises:
        YamlIssue: with every finding (syntax errors stop at the first).
    """
    builder = _Builder()
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except YamlIssue:
        raise
    except yaml.YAMLError as e:
        raise YamlIssue([(_location(e, text), _syntax_message(e))]) from e
    if builder.issues:
        raise YamlIssue(builder.issues)
    return builder.doc
