"""Sphinx extension of the analogebl docs: tables generated from the code, and a check that
the API reference covers the public API.

Directives (each reads the installed package at build time, so the pages cannot drift from
the code):

``.. profile-schema::``
    One table per hardware-profile TOML table: key, accepted values, default, unit, meaning
    (:data:`analogebl.hardware.schema.SCHEMA` and its ``RANGES``).
``.. study-keys::``
    Every study key with its types and default (:data:`analogebl.study.SCHEMA`,
    :data:`analogebl.study.schema.DEFAULTS`).
``.. catalog:: circuits | hardware_profiles | studies``
    The catalog's entries with their descriptions.

API coverage: every name in the ``__all__`` of the modules listed in the ``apicheck_modules``
config value must be documented by an autodoc directive (under that module's name, or the
same object under another documented name); a missing one is a warning, hence an error
under ``-W``.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> list[nodes.Node]:
    """Plain text with Markdown-style ``code`` spans as literals."""
    out: list[nodes.Node] = []
    for i, part in enumerate(_CODE.split(text)):
        if part:
            out.append(nodes.literal(part, part) if i % 2 else nodes.Text(part))
    return out


def _table(header: list[str], rows: list[list[str]], widths: list[int]) -> nodes.table:
    table = nodes.table(classes=["longtable"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for w in widths:
        group += nodes.colspec(colwidth=w)

    def row(cells: list[str], literal_first: bool) -> nodes.row:
        r = nodes.row()
        for j, c in enumerate(cells):
            entry = nodes.entry()
            para = nodes.paragraph()
            if literal_first and j == 0:
                para += nodes.literal(c, c)
            else:
                para.extend(_inline(c))
            entry += para
            r += entry
        return r

    thead = nodes.thead()
    thead += row(header, False)
    group += thead
    body = nodes.tbody()
    for cells in rows:
        body += row(cells, True)
    group += body
    return table


def _value(v) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v)


class ProfileSchema(SphinxDirective):
    """Every field of a hardware profile, one table per TOML table."""

    def run(self) -> list[nodes.Node]:
        from analogebl.hardware.schema import RANGES, SCHEMA

        out: list[nodes.Node] = []
        for table, fields in SCHEMA.items():
            rows = []
            for key, (types, default, unit, meaning) in fields.items():
                if isinstance(types[0], str):
                    accepted = " | ".join(f'"{t}"' for t in types)
                elif (table, key) in RANGES:
                    accepted = RANGES[(table, key)].describe()
                    if types == (list,):
                        accepted = f"list, each {accepted}"
                else:
                    accepted = "/".join(t.__name__ for t in types)
                shown = "absent (off)" if default is None else _value(default)
                rows.append([key, accepted, shown, unit, meaning])
            section = nodes.section(ids=[f"profile-table-{table}"])
            title = f"[{table}]"
            section += nodes.title(title, title)
            section += _table(
                ["key", "accepted", "default", "unit", "meaning"], rows, [18, 22, 12, 6, 42]
            )
            out.append(section)
        return out


class StudyKeys(SphinxDirective):
    """Every study key with its types and default."""

    def run(self) -> list[nodes.Node]:
        from analogebl.study import SCHEMA
        from analogebl.study.schema import DEFAULTS, REQUIRED

        rows = []
        for key, types in SCHEMA.items():
            names = ["none" if t is type(None) else t.__name__ for t in types]
            if key in REQUIRED:
                default = "required"
            elif key in DEFAULTS:
                v = DEFAULTS[key]
                default = "none (not set)" if v is None else _value(v)
            else:
                default = "–"
            rows.append([key, " / ".join(names), default])
        return [_table(["key", "types", "default"], rows, [30, 25, 45])]


class Catalog(SphinxDirective):
    """The entries of one catalog and their descriptions (a definition list)."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        from analogebl.catalog import list_entries

        kind = self.arguments[0]
        if kind not in ("circuits", "hardware_profiles", "studies"):
            raise self.error(f"unknown catalog {kind!r}")
        dl = nodes.definition_list()
        for name, path in list_entries(kind).items():
            self.env.note_dependency(str(path))
            text = _description(kind, name)
            item = nodes.definition_list_item()
            term = nodes.term()
            term += nodes.literal(name, name)
            item += term
            definition = nodes.definition()
            for para_text in re.split(r"\n\s*\n", text.strip()):
                para = nodes.paragraph()
                para.extend(_inline(" ".join(para_text.split())))
                definition += para
            item += definition
            dl += item
        return [dl]


def _description(kind: str, name: str) -> str:
    if kind == "circuits":
        from analogebl.catalog import find_entry, read_toml

        return str(read_toml(find_entry("circuits", name)).get("description", ""))
    if kind == "hardware_profiles":
        from analogebl.hardware import load_profile

        return load_profile(name).description
    from analogebl.study import load_study

    return str(load_study(name)["description"] or "")


def _documented_objects(env) -> dict[str, object]:
    """Full name -> Python object of everything the Python domain holds."""
    domain = env.get_domain("py")
    found: dict[str, object] = {}
    for fullname, *_ in domain.get_objects():
        mod_name, _, attr = fullname.rpartition(".")
        try:
            found[fullname] = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError, ValueError):
            continue
    return found


def check_api_coverage(app: Sphinx, env) -> None:
    """Warn for every public name (``__all__``) of ``apicheck_modules`` the docs lack."""
    documented = _documented_objects(env)
    by_id = {id(obj) for obj in documented.values()}
    for mod_name in app.config.apicheck_modules:
        module = importlib.import_module(mod_name)
        for name in getattr(module, "__all__", ()):
            full = f"{mod_name}.{name}"
            obj = getattr(module, name)
            # the same object documented under another name (a re-export) counts; numbers
            # and strings may be shared by chance, so they must be documented by name
            scalar = isinstance(obj, str | int | float) or obj is None
            if full in documented or (not scalar and id(obj) in by_id):
                continue
            logger.warning(
                "public name %s (in %s.__all__) is not in the API reference",
                full,
                mod_name,
                type="analogebl",
                subtype="apicheck",
            )


def drop_type_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    """A module constant (a tuple, a dict, a union type) has no docstring of its own: autodoc
    would show its type's (``tuple``: "Built-in immutable sequence."). Drop that; the page
    says what the constant is."""
    text = [line.strip() for line in lines if line.strip()]
    type_doc = type(obj).__doc__
    if what not in ("data", "attribute") or not text or not type_doc:
        return
    if text[0] == inspect.cleandoc(type_doc).splitlines()[0].strip():
        lines.clear()


def setup(app: Sphinx) -> dict:
    app.add_config_value("apicheck_modules", [], "env")
    app.add_directive("profile-schema", ProfileSchema)
    app.add_directive("study-keys", StudyKeys)
    app.add_directive("catalog", Catalog)
    app.connect("env-check-consistency", check_api_coverage)
    # before numpydoc (priority 500) rewrites the docstring
    app.connect("autodoc-process-docstring", drop_type_docstring, priority=400)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
