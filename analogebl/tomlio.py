"""The one TOML emitter: :func:`dumps` writes what :mod:`tomllib` reads back unchanged.

Every TOML text the package writes (resolved studies, hardware profiles, circuits, model
descriptions, all recorded in run files) comes from here, so they share one set of rules:

* ``None`` means *absent*: a key whose value is ``None`` is left out (TOML has no null).
* floats are written with :func:`repr`, the shortest text that parses back to the same
  double (``2e-06``, ``0.1``, ``inf``, ``nan``); ints, bools and strings as TOML literals;
  lists and tuples as inline arrays; NumPy scalars as the Python value they hold.
* a mapping becomes a table (``[a.b]``), a list of mappings an array of tables
  (``[[a.b]]``); plain keys come first, then the tables, each group in the given order.
* keys that are not bare (``A-Za-z0-9_-``) are quoted.

Formatting is free to change; values are not: ``tomllib.loads(dumps(d))`` equals ``d``
with the ``None`` entries removed (tuples read back as lists).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["dumps", "nest"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')


def dumps(doc: Mapping[str, Any], *, header: str | None = None) -> str:
    """``doc`` as TOML text.

    Parameters
    ----------
    doc : mapping of str to value
        Nested mappings become tables, lists of mappings arrays of tables; ``None`` values
        are left out.
    header : str, optional
        Written first as ``#`` comment lines (one per line of ``header``).

    Returns
    -------
    str
        The text, ending with a newline.

    Raises
    ------
    TypeError
        A value TOML cannot hold (``None`` inside an array, an arbitrary object).
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    _table(doc, (), lines, header=False)
    return "\n".join(lines) + "\n"


def nest(items: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Dotted keys to nested tables: ``{"rule.name": "c_ep"}`` -> ``{"rule": {"name": ...}}``.

    Raises
    ------
    ValueError
        A key is both a value and a table (``"a"`` and ``"a.b"``).
    """
    out: dict[str, Any] = {}
    pairs = items.items() if isinstance(items, Mapping) else items
    for dotted, value in pairs:
        *parents, last = dotted.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"key {dotted!r}: {p!r} is both a value and a table")
        if last in node and (isinstance(node[last], dict) or isinstance(value, dict)):
            raise ValueError(f"key {dotted!r} is both a value and a table")
        node[last] = value
    return out


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list | tuple) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _table(doc: Mapping[str, Any], path: tuple[str, ...], lines: list[str], header: bool):
    plain = [(k, v) for k, v in doc.items() if v is not None and not _is_sub(v)]
    subs = [(k, v) for k, v in doc.items() if v is not None and _is_sub(v)]
    if header and (plain or not subs):  # a table with only sub-tables needs no header
        _blank(lines)
        lines.append(f"[{_dotted(path)}]")
    lines += [f"{_key(k)} = {_value(v)}" for k, v in plain]
    for k, v in subs:
        if isinstance(v, Mapping):
            _table(v, (*path, k), lines, header=True)
        else:
            for item in v:
                _blank(lines)
                lines.append(f"[[{_dotted((*path, k))}]]")
                _table(item, (*path, k), lines, header=False)


def _is_sub(v: Any) -> bool:
    return isinstance(v, Mapping) or _is_table_array(v)


def _blank(lines: list[str]) -> None:
    if lines and lines[-1] != "":
        lines.append("")


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(_key(k) for k in path)


def _key(k: str) -> str:
    if not isinstance(k, str):
        raise TypeError(f"TOML keys are strings, got {k!r}")
    return k if _BARE_KEY.fullmatch(k) else _string(k)


def _string(s: str) -> str:
    def esc(m: re.Match) -> str:
        c = m.group()
        return _ESCAPES.get(c, f"\\u{ord(c):04x}")

    return '"' + _NEEDS_ESCAPE.sub(esc, s) + '"'


def _value(v: Any) -> str:
    if hasattr(v, "dtype") and hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        v = v.item()  # NumPy scalar
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return repr(float(v))  # shortest round-trip text; inf / -inf are TOML too
    if isinstance(v, str):
        return _string(str.__str__(v))
    if isinstance(v, list | tuple):
        if any(x is None for x in v):
            raise TypeError(f"TOML arrays cannot hold None: {v!r}")
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        if any(x is None for x in v.values()):
            v = {k: x for k, x in v.items() if x is not None}
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} {v!r} as TOML")
