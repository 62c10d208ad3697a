"""What a jailed Python program must see, resolved from the running interpreter.

Only this is bound into a jail, read-only: the folder holding the C library (the system's
shared libraries), the dynamic loader at the path the interpreter names, the interpreter
binary, its standard library and ``libpython``, the virtual environment's ``pyvenv.cfg``, and
the top-level entries of the distributions the program imports (with their declared
dependencies), each at its own path. Nothing else of the checkout, the virtual environment or
the machine is there.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import struct
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Bind:
    """``source`` on the host appears read-only at ``dest`` in the jail."""

    source: Path
    dest: str


@dataclass(frozen=True)
class Interpreter:
    binds: tuple[Bind, ...]
    symlinks: tuple[tuple[str, str], ...]  # (target, link) created in the jail
    python: str  # what to execute inside the jail


def _loader(executable: str) -> str | None:
    """The ELF interpreter (PT_INTERP) of ``executable``: the dynamic loader's path."""
    with open(executable, "rb") as fh:
        head = fh.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
            return None
        endian = "<" if head[5] == 1 else ">"
        phoff, = struct.unpack_from(endian + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
        for index in range(phnum):
            fh.seek(phoff + index * phentsize)
            kind, _flags, offset, _vaddr, _paddr, size = struct.unpack(
                endian + "IIQQQQ", fh.read(40))
            if kind == 3:  # PT_INTERP
                fh.seek(offset)
                return fh.read(size).rstrip(b"\0").decode()
    return None


def _system_library_folder() -> Path:
    """The folder the C library mapped into this process was loaded from."""
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            path = line.rstrip("\n").split(maxsplit=5)[-1]
            if path.startswith("/") and os.path.basename(path).startswith("libc.so"):
                return Path(os.path.realpath(path)).parent
    raise OSError("the C library of this process was not found")


@functools.lru_cache(maxsize=1)
def interpreter() -> Interpreter:
    """Binds and symlinks that let the running interpreter start inside a jail."""
    real = os.path.realpath(sys.executable)
    binds = [Bind(_system_library_folder(), str(_system_library_folder())),
             Bind(Path(real), real)]
    loader = _loader(real)
    if loader:
        binds.append(Bind(Path(os.path.realpath(loader)), loader))
    binds.append(Bind(Path(sysconfig.get_path("stdlib")).resolve(),
                      str(Path(sysconfig.get_path("stdlib")).resolve())))
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if libdir and soname and os.path.isfile(os.path.join(libdir, soname)):
        shared = os.path.join(libdir, soname)
        binds.append(Bind(Path(os.path.realpath(shared)), shared))
    symlinks: list[tuple[str, str]] = []
    python = real
    if sys.prefix != sys.base_prefix:  # a virtual environment: keep its layout
        config = Path(sys.prefix) / "pyvenv.cfg"
        binds.append(Bind(config.resolve(), str(config)))
        python = os.path.abspath(sys.executable)
        if python != real:
            symlinks.append((real, python))
    return Interpreter(tuple(binds), tuple(symlinks), python)


def _requirements(dist: importlib.metadata.Distribution) -> list[str]:
    """Names of the distributions ``dist`` always needs (requirements behind an extra are
    optional and left out)."""
    names = []
    for requirement in dist.requires or ():
        if "extra ==" in requirement:
            continue
        match = _NAME.match(requirement.strip())
        if match:
            names.append(match.group(0))
    return names


def _entry(root: Path, parts: tuple[str, ...]) -> Path:
    """The folder or file to bind for one installed file: its top-level entry, or one level
    deeper inside a namespace folder that several distributions share (``google/``)."""
    top = root / parts[0]
    if len(parts) >= 3 and not parts[0].endswith((".dist-info", ".data")) and top.is_dir() \
            and not (top / "__init__.py").exists():
        return top / parts[1]
    return top


@functools.lru_cache(maxsize=16)
def distributions(names: tuple[str, ...]) -> tuple[Bind, ...]:
    """Top-level files and folders of the named distributions and of everything they require,
    each bound at its own path. Raises importlib.metadata.PackageNotFoundError for a named
    distribution that is not installed (a required one that is missing is skipped: pip would
    have refused to install without it unless the requirement does not apply here)."""
    seen: set[str] = set()
    entries: set[Path] = set()
    pending = [(name, True) for name in names]
    while pending:
        name, required = pending.pop()
        key = name.lower().replace("_", "-").replace(".", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            if required:
                raise
            continue
        root = Path(str(dist.locate_file(""))).resolve()
        for file in dist.files or ():
            if file.parts and file.parts[0] not in ("..", "__pycache__"):
                entries.add(_entry(root, file.parts))
        pending.extend((dep, False) for dep in _requirements(dist))
    kept = [p for p in sorted(entries)
            if p.exists() and not any(o != p and p.is_relative_to(o) for o in entries)]
    return tuple(Bind(path, str(path)) for path in kept)
