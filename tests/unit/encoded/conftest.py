"""Shared fixtures of the encoded tests: the C backend compiles into a private temporary cache.

The cache directory is set when this conftest is imported, before the test modules are collected: some of them
decorate functions with ``@encoded(backend="c")`` at import time, which compiles. It is removed at the end.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_OLD = os.environ.get("CUSTODES_CACHE_DIR")
_CACHE = tempfile.mkdtemp(prefix="custodes-c-cache-")  # 0700, private to this test process
os.environ["CUSTODES_CACHE_DIR"] = _CACHE


def pytest_unconfigure(config: pytest.Config) -> None:
    """Restore the environment and remove the cache (in every process that imported this conftest)."""
    if _OLD is None:
        os.environ.pop("CUSTODES_CACHE_DIR", None)
    else:
        os.environ["CUSTODES_CACHE_DIR"] = _OLD
    shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def have_cc() -> None:
    """The C backend needs a C compiler. CI (Debian with gcc) has one; fail loudly rather than skip silently."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.fail("no C compiler on PATH: the C backend tests need gcc or cc (CI installs gcc)")
