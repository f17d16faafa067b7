"""Path search for the named catalogs (``circuits/``, ``studies/``, ``hardware_profiles/``).

A catalog entry ``NAME`` of kind ``circuits`` is the first ``circuits/NAME.toml`` found in:

1. the current working directory,
2. each directory of ``$ANALOGEBL_PATH`` (``os.pathsep``-separated),
3. the project's own catalog (the folder that holds the ``analogebl`` package).

Users add their own circuits and studies by dropping TOML files into ``./circuits`` or a
folder on ``$ANALOGEBL_PATH``; a file path (ending in ``.toml``) is accepted as well.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from analogebl.errors import ConfigError

__all__ = ["catalog_dirs", "find_entry", "list_entries", "read_toml"]

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def catalog_dirs(kind: str) -> list[Path]:
    """Directories searched for catalog ``kind``, in priority order."""
    roots = [Path.cwd()]
    roots += [Path(p) for p in os.environ.get("ANALOGEBL_PATH", "").split(os.pathsep) if p]
    roots.append(_PROJECT_ROOT)
    out: list[Path] = []
    for root in roots:
        d = (root / kind).resolve()
        if d.is_dir() and d not in out:
            out.append(d)
    return out


def list_entries(kind: str) -> dict[str, Path]:
    """All entries of a catalog, name -> file (earlier directories win)."""
    found: dict[str, Path] = {}
    for d in catalog_dirs(kind):
        for f in sorted(d.glob("*.toml")):
            found.setdefault(f.stem, f)
    return dict(sorted(found.items()))


def find_entry(kind: str, name: str) -> Path:
    """The TOML file of catalog entry ``name`` (or ``name`` itself if it is a .toml path)."""
    if name.endswith(".toml"):
        p = Path(name)
        if not p.is_file():
            raise ConfigError(f"no such {kind[:-1]} file", path=p)
        return p
    entries = list_entries(kind)
    if name not in entries:
        known = ", ".join(entries) or "(none)"
        raise ConfigError(f"unknown {kind[:-1]} '{name}'; known: {known}")
    return entries[name]


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning syntax errors into :class:`ConfigError` naming the file."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", path=path) from None
