"""Compile C sources into a private on-disk cache and load them with ``ctypes``.

* The compiler is ``sysconfig.get_config_var("CC")`` (its first word), else ``cc``. A missing compiler or a failed
  compilation is an :class:`CompilerUnavailable` naming the cause; callers turn it into their own error. There is
  no silent fallback.
* The cache directory is ``$CUSTODES_CACHE_DIR``, else ``$XDG_CACHE_HOME/custodes/encoded``, else
  ``~/.cache/custodes/encoded``. It is created ``0700``, and refused if it is owned by another user or writable by
  group or others: a shared object found there is loaded into the process, so only its owner may write it.
* An object is named by the SHA-256 of the compiler, the flags and the source; it is compiled to a temporary file
  in the cache directory and moved into place with ``os.replace`` (atomic), so concurrent builders never load a
  half-written file. With ``-march=native`` (:data:`NATIVE`) the key also holds the CPU's model and feature flags,
  because the object is only valid on that CPU; a CPython extension (:func:`build_extension`) adds the Python ABI
  tag and include directory.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
from functools import cache
from pathlib import Path
from types import ModuleType

__all__ = [
    "BASE_FLAGS",
    "NATIVE",
    "CompilerUnavailable",
    "build",
    "build_extension",
    "cache_dir",
    "compiler",
    "host_cpu",
    "python_abi",
]

BASE_FLAGS: tuple[str, ...] = ("-std=gnu99", "-O2", "-shared", "-fPIC", "-fno-strict-aliasing")
#: Code for the CPU it runs on (e.g. AVX-512 64-bit multiplies in fused loops); the key then names the CPU.
NATIVE = "-march=native"
_LOADED: dict[str, ctypes.CDLL] = {}
_MODULES: dict[str, ModuleType] = {}
_LOCK = threading.Lock()


class CompilerUnavailable(Exception):
    """No usable C compiler, a failed compilation, or an unsafe cache directory. The message names the cause."""


def compiler() -> list[str]:
    """The C compiler command: ``sysconfig``'s ``CC`` if it resolves on PATH, else ``cc``."""
    configured = sysconfig.get_config_var("CC") or ""
    words = shlex.split(configured) if configured else []
    for candidate in ([words] if words else []) + [["cc"]]:
        found = shutil.which(candidate[0])
        if found:
            return [found, *candidate[1:]]
    raise CompilerUnavailable(
        f"no C compiler found: sysconfig CC is {configured or 'unset'!r} and 'cc' is not on PATH "
        "(install gcc or clang to use backend='c')"
    )


def cache_dir() -> Path:
    """The private cache directory (created if needed; refused if others can write it)."""
    explicit = os.environ.get("CUSTODES_CACHE_DIR")
    if explicit:
        path = Path(explicit)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "custodes" / "encoded"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise CompilerUnavailable(f"cache directory {path} is owned by another user")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CompilerUnavailable(f"cache directory {path} is writable by group or others")
    return path


@cache
def host_cpu() -> str:
    """The CPU's identity for the cache key of ``-march=native`` objects: machine, model name and feature flags."""
    fields: list[str] = [platform.machine()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() in ("vendor_id", "model name", "cpu family", "model", "flags", "Features"):
                    fields.append(f"{name.strip()}={value.strip()}")
                if not line.strip() and len(fields) > 1:
                    break  # the first processor's block: all cores of one host share it
    except OSError:
        fields.append(platform.processor() or "unknown")
    return "\n".join(fields)


def _key(cc: list[str], flags: tuple[str, ...], source: str, extra: tuple[str, ...] = ()) -> str:
    h = hashlib.sha256()
    host = (host_cpu(),) if NATIVE in flags else ()
    for part in (*cc, "\0", *flags, "\0", *host, "\0", *extra, "\0", source):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def build(source: str, extra_flags: tuple[str, ...] = ()) -> ctypes.CDLL:
    """Compile ``source`` (or reuse the cached object) and load it. Raises :class:`CompilerUnavailable`."""
    cc = compiler()
    flags = BASE_FLAGS + extra_flags
    key = _key(cc, flags, source)
    with _LOCK:
        lib = _LOADED.get(key)
        if lib is not None:
            return lib
        directory = cache_dir()
        target = directory / f"{key}.so"
        if not target.exists():
            _compile(cc, flags, source, directory, target)
        lib = ctypes.CDLL(str(target))
        _LOADED[key] = lib
        return lib


def python_abi() -> tuple[str, ...]:
    """What an extension module is built against: ABI tag, extension suffix and include directory."""
    include = sysconfig.get_paths()["include"]
    return (sys.implementation.cache_tag or "", str(sysconfig.get_config_var("EXT_SUFFIX")), include)


def build_extension(source: str, module: str, extra_flags: tuple[str, ...] = ()) -> tuple[ModuleType, str]:
    """Compile ``source`` as the CPython extension ``module`` (cached as :func:`build`) and import it.

    ``source`` must define ``PyInit_<module>``; the key adds the Python ABI (:func:`python_abi`). Returns the
    module and the object's path (which ``ctypes`` may load too: the same ``dlopen`` handle).
    """
    cc = compiler()
    abi = python_abi()
    flags = (*BASE_FLAGS, f"-I{abi[2]}", *extra_flags)
    key = _key(cc, flags, source, abi)
    with _LOCK:
        target = cache_dir() / f"{key}{abi[1]}"
        found = _MODULES.get(key)
        if found is not None:
            return found, str(target)
        if not target.exists():
            _compile(cc, flags, source, target.parent, target)
        try:
            loader = importlib.machinery.ExtensionFileLoader(module, str(target))
            spec = importlib.util.spec_from_file_location(module, str(target), loader=loader)
            if spec is None:
                raise CompilerUnavailable(f"cannot load the compiled extension {target.name}")
            mod = importlib.util.module_from_spec(spec)
            loader.exec_module(mod)
        except ImportError as e:
            raise CompilerUnavailable(f"cannot load the compiled extension: {e}") from e
        _MODULES[key] = mod
        return mod, str(target)


def _compile(cc: list[str], flags: tuple[str, ...], source: str, directory: Path, target: Path) -> None:
    fd, c_path = tempfile.mkstemp(suffix=".c", dir=directory)
    with os.fdopen(fd, "w") as f:
        f.write(source)
    fd, so_path = tempfile.mkstemp(suffix=".so", dir=directory)
    os.close(fd)
    try:
        proc = subprocess.run(  # noqa: S603 - the compiler found above, fixed flags, our own generated source
            [*cc, *flags, "-o", so_path, c_path], capture_output=True, text=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            raise CompilerUnavailable(f"C compilation failed ({cc[0]}): {proc.stderr.strip()[-2000:]}")
        os.replace(so_path, target)
        os.replace(c_path, directory / (target.name.split(".", 1)[0] + ".c"))  # kept beside the object, for review
    except OSError as e:
        raise CompilerUnavailable(f"C compilation failed ({cc[0]}): {e}") from e
    except subprocess.TimeoutExpired as e:
        raise CompilerUnavailable(f"C compilation timed out ({cc[0]})") from e
    finally:
        for leftover in (so_path, c_path):
            if os.path.exists(leftover):
                os.unlink(leftover)
