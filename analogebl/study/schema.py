"""The study-file schema: every key a study may set, its Python types and its default.

Parsed study files hold flat dotted keys (``rule.beta``); :mod:`analogebl.study.config` checks
types against :data:`SCHEMA` and fills :data:`DEFAULTS`; the meaning of each value is checked
by :class:`analogebl.spec.RunSpec`. :func:`check_document` checks the structure of a parsed
file (what is a table, a list, a table of tables) before any of it is read.
"""

from __future__ import annotations

from typing import Any

from analogebl.errors import ConfigError
from analogebl.spec import section_defaults

__all__ = ["DEFAULTS", "REQUIRED", "SCHEMA", "check_document"]

# key -> allowed python types (None allowed where listed)
SCHEMA: dict[str, tuple] = {
    "description": (str,),
    "default_tier": (str,),
    "dataset": (str,),
    "profile": (str,),
    "variant": (str, type(None)),
    "checkpoint_minutes": (float, int),
    "epochs": (int,),
    "batch_size": (int,),
    "eval_batch_size": (int,),
    "seed": (int,),
    "train_subset": (int, type(None)),
    "test_subset": (int, type(None)),
    "augment": (bool,),
    "pad_to": (int, type(None)),
    "backend": (str,),
    "threads": (int, str),
    "dtype": (str,),
    "device": (str, type(None)),
    "circuit.name": (str, type(None)),
    "circuit.width": (float, int),
    "circuit.gains": (list, type(None)),
    "circuit.pool": (str, type(None)),
    "circuit.depth": (int, type(None)),
    "measure_memory": (bool,),
    "probes": (int,),
    "rule.name": (str,),
    "rule.beta": (float, int, type(None)),
    "rule.iterations": (int,),
    "rule.schedule": (str, type(None)),
    "rule.nudge": (str,),
    "relaxation.free_iterations": (int,),
    "relaxation.schedule": (str,),
    "optimizer.name": (str,),
    "optimizer.lr": (float, int, list),
    "optimizer.momentum": (float, int),
    "optimizer.weight_decay": (float, int),
    "optimizer.schedule": (str,),
    "optimizer.eta_min": (float, int),
    "optimizer.adam_lr": (float, int, list),
    "optimizer.nesterov": (bool,),
    "optimizer.ns_steps": (int,),
    "optimizer.spectral_cap": (float, int, type(None)),
    "optimizer.rank_frac": (float, int),
    "optimizer.dion_threshold": (int,),
    "optimizer.damping": (float, int),
    "optimizer.kfac_decay": (float, int),
    "optimizer.lr_scale": (float, int),
    "validation_subset": (int, type(None)),
    "model.name": (str, type(None)),
    "model.hidden": (int,),
    "model.alpha": (float, int),
    "model.symmetric": (bool,),
    "model.spectral_cap": (float, int, type(None)),
    "model.cost": (str,),
    "model.tol": (float, int),
    "rule.points": (int,),
    "rule.homeostasis": (float, int),
    "rule.temperature": (float, int),
}

#: Defaults of the study-level keys; those of the rule, relaxation, optimizer, circuit,
#: model and data sections come from their typed specs (one source: analogebl.spec).
DEFAULTS: dict[str, Any] = {
    "description": "",
    "default_tier": "full",
    "profile": "none",
    "variant": None,
    "checkpoint_minutes": 10.0,
    "epochs": 1,
    "seed": 0,
    "backend": "auto",
    "threads": "auto",
    "dtype": "float32",
    "device": None,
    "circuit.name": None,
    "measure_memory": False,
    "probes": 64,
    "optimizer.name": "sgd",
    "model.name": None,
    **section_defaults(),
}
REQUIRED = ("dataset", "circuit.name", "rule.name", "optimizer.lr")


def _bad(message: str, path, key: str) -> ConfigError:
    return ConfigError(message, path=path, key=key)


def _leaves(table: dict, prefix: str):
    """(dotted key, value) of every non-table value of ``table`` (nested tables flattened)."""
    for k, v in table.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield prefix + k, v


def _rule_names(doc: dict) -> set[str]:
    """Every rule a study file names: ``rule.name`` at top level, in tiers, sweeps, variants."""
    names: set[str] = set()

    def scan(table: dict, prefix: str = "") -> None:
        for key, v in _leaves(table, prefix):
            if key.endswith("rule.name"):
                names.update(x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str))

    scan(doc)
    return names


def _check_level(doc: dict, path, where: str, rules: set[str]) -> None:
    """``sweep``, ``variants`` and ``per_rule`` of the top level or of one tier."""
    sweep = doc.get("sweep", {})
    if not isinstance(sweep, dict):
        raise _bad(
            f"expected a table of axes ([{where}sweep] key = [values]), got {sweep!r}",
            path,
            f"{where}sweep",
        )
    for key, vals in _leaves(sweep, f"{where}sweep."):
        if not isinstance(vals, list) or not vals:
            raise _bad(f"a sweep axis needs a non-empty list of values, got {vals!r}", path, key)
    for section in ("variants", "per_rule"):
        tables = doc.get(section, {})
        if not isinstance(tables, dict):
            raise _bad(
                f"expected tables [{where}{section}.NAME], got {tables!r}", path, where + section
            )
        for name, table in tables.items():
            if not isinstance(table, dict):
                raise _bad(
                    f"expected a table of overrides, got {table!r}",
                    path,
                    f"{where}{section}.{name}",
                )
    if where and "variants" in doc:
        raise _bad("variants are defined once, at top level", path, f"{where}variants")
    for rule in doc.get("per_rule", {}):
        if rule not in rules:
            raise _bad(
                f"unknown rule {rule!r}; per_rule tables name a rule of the study or a "
                f"circuit rule: {', '.join(sorted(rules))}",
                path,
                f"{where}per_rule.{rule}",
            )


def _circuit_rules() -> tuple[str, ...]:
    from analogebl.learning.rules import RULES

    return RULES


def check_document(doc: dict, path) -> None:
    """Check the structure of a parsed study file before any value is read.

    ``tiers`` is a table of tables (``[tiers.NAME]``), ``sweep`` a table whose values are
    non-empty lists (``[sweep] seed = [0, 1]``), ``variants`` and ``per_rule`` tables of
    tables, ``extra_tiers`` a list of names, at top level and inside each tier; a
    ``per_rule`` table names a rule the study runs or a circuit rule. A wrong shape raises
    :class:`ConfigError` naming ``path`` and the dotted key (values are checked later,
    against :data:`SCHEMA` and by :class:`analogebl.spec.RunSpec`).
    """
    if not isinstance(doc, dict):
        raise ConfigError("expected a TOML table", path=path)
    tiers = doc.get("tiers", {})
    per_rule = "per_rule" in doc or (
        isinstance(tiers, dict)
        and any(isinstance(t, dict) and "per_rule" in t for t in tiers.values())
    )
    rules = _rule_names(doc) | set(_circuit_rules()) if per_rule else set()
    _check_level(doc, path, "", rules)
    extra = doc.get("extra_tiers", [])
    if not (isinstance(extra, list) and all(isinstance(t, str) for t in extra)):
        raise _bad(f"expected a list of tier names, got {extra!r}", path, "extra_tiers")
    if not isinstance(tiers, dict):
        raise _bad(f"expected tables [tiers.NAME], got {tiers!r}", path, "tiers")
    claims = doc.get("claims", {})
    if not isinstance(claims, dict):
        raise _bad(f"expected tables [claims.NAME], got {claims!r}", path, "claims")
    for name, table in claims.items():
        if not isinstance(table, dict):
            raise _bad(f"expected a table (lhs, rhs, metric, ...), got {table!r}", path,
                       f"claims.{name}")  # fmt: skip
    for name, table in tiers.items():
        if not isinstance(table, dict):
            raise _bad(f"expected a table of overrides, got {table!r}", path, f"tiers.{name}")
        for nested in ("tiers", "extra_tiers", "claims"):
            if nested in table:
                raise _bad("not allowed inside a tier", path, f"tiers.{name}.{nested}")
        _check_level(table, path, f"tiers.{name}.", rules)
