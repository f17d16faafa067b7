"""Path search for the named catalogs (``circuits/``, ``studies/``, ``hardware_profiles/``).

A catalog entry ``NAME`` of kind ``circuits`` is the first ``circuits/NAME.toml`` found in:

1. the current working directory,
2. each directory of ``$ANALOGEBL_PATH`` (``os.pathsep``-separated), in order,
3. the source checkout's top-level folders, when ``analogebl`` runs from a checkout (plain
   or editable install: the folder that holds the ``analogebl`` package also holds
   ``pyproject.toml``),
4. the catalogs installed with the package (``analogebl/_catalogs/<kind>/``; the wheel
   carries the checkout's top-level folders there, see ``pyproject.toml``).

Users add their own circuits and studies by dropping TOML files into ``./circuits`` or a
folder on ``$ANALOGEBL_PATH``; an entry found earlier overrides one of the same name found
later, so user catalogs override the project's. A file path (ending in ``.toml``) is
accepted as well.

A broken user file never hides the rest of a catalog: :func:`load_entries` loads every
entry and keeps the error of one that cannot be loaded in its place.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from analogebl.errors import AnalogeblError, ConfigError

__all__ = ["catalog_dirs", "find_entry", "list_entries", "load_entries", "read_toml"]

T = TypeVar("T")

# what one entry of each catalog is called in messages
_ENTRY = {"circuits": "circuit", "studies": "study", "hardware_profiles": "hardware profile"}


def _entry(kind: str) -> str:
    return _ENTRY.get(kind, kind.removesuffix("s").replace("_", " "))


_PACKAGE_DIR = Path(__file__).resolve().parent
# the source checkout, if running from one (in an installed wheel this is site-packages)
_CHECKOUT = _PACKAGE_DIR.parent if (_PACKAGE_DIR.parent / "pyproject.toml").is_file() else None
# package data of an installed wheel (absent in a checkout)
_PACKAGED = _PACKAGE_DIR / "_catalogs"


def catalog_dirs(kind: str) -> list[Path]:
    """Directories searched for catalog ``kind``, in priority order (see module docstring)."""
    roots = [Path.cwd()]
    roots += [Path(p) for p in os.environ.get("ANALOGEBL_PATH", "").split(os.pathsep) if p]
    if _CHECKOUT is not None:
        roots.append(_CHECKOUT)
    roots.append(_PACKAGED)
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


def load_entries(kind: str, load: Callable[[str], T]) -> dict[str, T | AnalogeblError]:
    """Every entry of a catalog loaded by ``load(name)``, name -> result.

    An entry that cannot be loaded (``load`` raises :class:`~analogebl.errors.AnalogeblError`:
    invalid TOML, an unknown key, a bad value, an unreadable file) maps to that error, whose
    message names the file and the key, so one broken file does not hide the others.
    """
    out: dict[str, T | AnalogeblError] = {}
    for name in list_entries(kind):
        try:
            out[name] = load(name)
        except AnalogeblError as exc:
            out[name] = exc
    return out


def did_you_mean(word: str, known) -> str:
    """What to say after the unknown name ``word``: ``did you mean 'x'?`` naming the names
    of ``known`` close to it, else the known names. A dotted key also matches on its last
    part (``beta`` or ``optimizer.beta``: ``rule.beta``); without a match, dotted keys are
    listed by table: the keys of ``word``'s table when it names one, else the top-level
    keys and the tables (one line even for the 58 keys of a study)."""
    import difflib

    known = list(known)
    leaf = {k: k.rsplit(".", 1)[-1] for k in known}
    word_leaf = word.rsplit(".", 1)[-1]
    close = [k for k in known if "." in k and leaf[k] == word_leaf][:4]
    for cutoff in (0.8, 0.6):  # the near ones only, when there are near ones
        close = close or difflib.get_close_matches(word, known, n=3, cutoff=cutoff)
    if not close:  # a typo in the last part only: "lrr", "circuits.widht"
        near = difflib.get_close_matches(word_leaf, set(leaf.values()), cutoff=0.8)
        close = [k for k in known if "." in k and leaf[k] in near][:3]
    if close:
        quoted = [f"'{k}'" for k in close]
        last = quoted.pop()
        return f"did you mean {', '.join(quoted) + ' or ' if quoted else ''}{last}?"
    tables = list(dict.fromkeys(k.split(".", 1)[0] for k in known if "." in k))
    table = word.split(".", 1)[0]
    if "." in word and table in tables:
        return f"the {table} keys are " + ", ".join(k for k in known if k.startswith(table + "."))
    text = "known: " + (", ".join(k for k in known if "." not in k) or "(none)")
    if tables:
        example = next(k for k in known if "." in k)
        text += f", and the keys of the tables {', '.join(tables)} (such as {example})"
    return text


def find_entry(kind: str, name: str) -> Path:
    """The TOML file of catalog entry ``name`` (or ``name`` itself if it is a .toml path)."""
    what = _entry(kind)
    if name.endswith(".toml"):
        p = Path(name)
        if not p.exists():
            raise ConfigError(f"no such {what} file", path=p)
        if not p.is_file():
            raise ConfigError(f"not a {what} file (a folder or a special file)", path=p)
        return p
    entries = list_entries(kind)
    if name not in entries:
        raise ConfigError(f"unknown {what} '{name}'; {did_you_mean(name, entries)}")
    return entries[name]


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file, turning any reason it cannot be read (syntax, encoding, nesting,
    a folder or special file, permissions) into :class:`ConfigError` naming the file."""
    path = Path(path)
    if path.exists() and not path.is_file():
        # a folder, a FIFO or a device named *.toml: reading could block or never end
        raise ConfigError("cannot read: not a regular file", path=path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", path=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"invalid TOML: not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x})",
            path=path,
        ) from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively
        raise ConfigError("invalid TOML: arrays or tables nested too deeply", path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=path) from None
