"""``load_policy``: YAML text in, a validated :class:`Policy` out, or every error as ``SOURCE:LINE:COL: message``.

Three stages, each reporting with positions: the restricted YAML reader (:mod:`._yaml`), the pydantic models
(error ``loc`` paths are mapped back to YAML nodes), and the cross-field rules (:mod:`._checks`).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from custodes.errors import PolicyError
from custodes.policy._checks import LOADER_CONTEXT, Path, check_policy, format_path, policy_warnings
from custodes.policy._model import Policy
from custodes.policy._yaml import Mark, YamlDocument, YamlIssue, parse_yaml

__all__ = ["MAX_POLICY_BYTES", "load_policy"]

#: Larger inputs are refused before parsing.
MAX_POLICY_BYTES = 1024 * 1024

_TYPE_MESSAGES = {
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "bool_type": "expected true or false",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "int_from_float": "expected an integer",
    "none_required": "expected null",
}


def _describe(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "custodes":
        return str(ctx["detail"])
    if kind == "missing":
        return f"missing required key {error['loc'][-1]!r}"
    if kind == "extra_forbidden":
        return f"unknown key {error['loc'][-1]!r}"
    if kind in _TYPE_MESSAGES:
        return _TYPE_MESSAGES[kind]
    if kind == "union_tag_not_found":
        return f"missing required key {ctx.get('discriminator', '').strip(chr(39))!r}"
    if kind == "union_tag_invalid":
        field = ctx["discriminator"].strip("'")
        return f"unknown {field} {ctx['tag']!r} (expected one of: {ctx['expected_tags']})"
    if kind == "literal_error":
        return f"unexpected value {str(error['input'])[:40]!r} (expected {ctx['expected']})"
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        limit = ctx["min_length"] if kind == "too_short" else ctx["max_length"]
        return f"needs {bound} {limit} item{'s' if limit != 1 else ''}, got {ctx['actual_length']}"
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = ctx.get("ge", ctx.get("le"))
        return f"must be {'at least' if kind == 'greater_than_equal' else 'at most'} {bound}"
    return str(error["msg"])


class _Positions:
    """Maps validation paths to YAML marks."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc

    def resolve(self, loc: tuple[Any, ...]) -> tuple[Path, Any]:
        """The longest prefix of ``loc`` that names a node, skipping union tags and pydantic's extra segments."""
        path: Path = ()
        node = self.doc.data
        for part in loc:
            in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if in_dict or in_list:
                path, node = (*path, part), node[part]
        return path, node

    def mark(self, path: Path, *, key: bool = False) -> Mark:
        if key and path in self.doc.keys:
            return self.doc.keys[path]
        while path not in self.doc.values and path:
            path = path[:-1]
        return self.doc.values.get(path, (1, 1))


def _validation_issues(exc: ValidationError, positions: _Positions) -> list[tuple[Mark, str]]:
    issues = []
    errors = exc.errors(include_url=False)
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "too_short" and any(
            len(other["loc"]) > len(loc) and tuple(other["loc"][: len(loc)]) == loc for other in errors
        ):
            continue  # pydantic counts only the valid items: the item's own error is the real finding
        path, node = positions.resolve(loc)
        if error["type"] == "union_tag_invalid" and isinstance(node, dict):
            path = next(((*path, tag) for tag in ("tee", "kind") if tag in node), path)
        if error["type"] == "extra_forbidden" or "[key]" in loc:
            mark = positions.mark(path, key=True)
            where = format_path(path[:-1]) if error["type"] == "extra_forbidden" else format_path(path)
        else:
            mark = positions.mark(path)
            where = format_path(path)
        message = _describe(error)
        issues.append((mark, f"{where}: {message}" if where else message))
    return issues


def _decode(text: str | bytes) -> str:
    if isinstance(text, str):
        if len(text) > MAX_POLICY_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
            raise YamlIssue([((1, 1), f"policy is larger than {MAX_POLICY_BYTES} bytes")])
        if any("\ud800" <= ch <= "\udfff" for ch in text):
            raise YamlIssue([((1, 1), "policy contains unpaired surrogate characters")])
        return text
    if len(text) > MAX_POLICY_BYTES:
        raise YamlIssue([((1, 1), f"policy is larger than {MAX_POLICY_BYTES} bytes")])
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as e:
        before = text[: e.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        raise YamlIssue([((line, column), "policy is not valid UTF-8")]) from e


def _fail(source: str, issues: list[tuple[Mark, str]]) -> PolicyError:
    issues = sorted(issues, key=lambda item: item[0])
    reasons = [f"{source}:{line}:{col}: {message}" for (line, col), message in issues]
    return PolicyError(message=reasons[0], reasons=reasons)


def load_policy(text: str | bytes, source: str = "<policy>") -> Policy:
    """Parse and validate a policy.

    Args:
        text: the YAML document (bytes must be UTF-8; at most :data:`MAX_POLICY_BYTES`).
        source: the name used in error positions (usually the file name).

    Returns:
        The validated policy; ``policy.warnings`` holds positioned non-fatal findings.

    Raises:
        PolicyError: code ``POLICY_INVALID``; ``message`` is the first error, ``reasons`` lists all of them,
            each as ``SOURCE:LINE:COL: message``.
    """
    try:
        doc = parse_yaml(_decode(text).removeprefix("\ufeff"))
    except YamlIssue as e:
        raise _fail(source, e.issues) from None
    positions = _Positions(doc)
    if doc.data is None:
        raise _fail(source, [((1, 1), "the policy is empty")])
    try:
        policy = Policy.model_validate(doc.data, context={LOADER_CONTEXT: True})
    except ValidationError as e:
        raise _fail(source, _validation_issues(e, positions)) from None
    except RecursionError:  # defensive: nesting is capped by the reader
        raise _fail(source, [((1, 1), "the policy is nested too deeply")]) from None
    issues = check_policy(policy)
    if issues:
        raise _fail(source, [(positions.mark(path), f"{format_path(path)}: {msg}") for path, msg in issues])
    warnings = sorted((positions.mark(path), f"{format_path(path)}: {msg}") for path, msg in policy_warnings(policy))
    policy._warnings = tuple(f"{source}:{line}:{col}: {message}" for (line, col), message in warnings)
    return policy
