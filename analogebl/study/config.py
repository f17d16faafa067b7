"""⑨ Study records: what to train, on what, how long — loaded from ``studies/NAME.toml``.

A study file holds the ``full`` configuration at top level and per-tier overrides in
``[tiers.NAME]`` tables (same keys). ``--set key=value`` overrides use the same dotted keys
(``epochs=3``, ``circuit.width=0.25``, ``rule.beta=0.1``) and are validated against the
schema below: unknown keys and wrongly typed values are rejected with the file and key.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analogebl.catalog import find_entry, read_toml
from analogebl.errors import ConfigError

__all__ = ["StudyConfig", "load_study", "parse_set", "SCHEMA", "TIERS"]

TIERS = ("full", "cpu", "smoke")

# key -> allowed python types (None allowed where listed)
SCHEMA: dict[str, tuple] = {
    "description": (str,),
    "default_tier": (str,),
    "dataset": (str,),
    "epochs": (int,),
    "batch_size": (int,),
    "eval_batch_size": (int,),
    "seed": (int,),
    "train_subset": (int, type(None)),
    "test_subset": (int, type(None)),
    "augment": (bool,),
    "pad_to": (int, type(None)),
    "backend": (str,),
    "dtype": (str,),
    "device": (str, type(None)),
    "circuit.name": (str,),
    "circuit.width": (float, int),
    "circuit.gains": (list, type(None)),
    "circuit.pool": (str, type(None)),
    "rule.name": (str,),
    "rule.beta": (float, int, type(None)),
    "rule.iterations": (int,),
    "relaxation.free_iterations": (int,),
    "relaxation.schedule": (str,),
    "optimizer.name": (str,),
    "optimizer.lr": (float, int, list),
    "optimizer.momentum": (float, int),
    "optimizer.weight_decay": (float, int),
    "optimizer.schedule": (str,),
    "optimizer.eta_min": (float, int),
}

DEFAULTS: dict[str, Any] = {
    "description": "",
    "default_tier": "full",
    "epochs": 1,
    "batch_size": 128,
    "eval_batch_size": 1000,
    "seed": 0,
    "train_subset": None,
    "test_subset": None,
    "augment": True,
    "pad_to": None,
    "backend": "auto",
    "dtype": "float32",
    "device": None,
    "circuit.width": 1.0,
    "circuit.gains": None,
    "circuit.pool": None,
    "rule.beta": None,
    "rule.iterations": 15,
    "relaxation.free_iterations": 60,
    "relaxation.schedule": "async",
    "optimizer.name": "sgd",
    "optimizer.momentum": 0.9,
    "optimizer.weight_decay": 0.0,
    "optimizer.schedule": "cosine",
    "optimizer.eta_min": 2e-6,
}
REQUIRED = ("dataset", "circuit.name", "rule.name", "optimizer.lr")


def _flatten(doc: dict, path, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        key = prefix + k
        if isinstance(v, dict):
            out.update(_flatten(v, path, key + "."))
        else:
            out[key] = v
    return out


def _check(key: str, value: Any, path) -> Any:
    if key not in SCHEMA:
        raise ConfigError(f"unknown key; known keys: {', '.join(SCHEMA)}", path=path, key=key)
    types = SCHEMA[key]
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"expected {'/'.join(t.__name__ for t in types)}, got {value!r}",
                          path=path, key=key)
    if not isinstance(value, types):
        raise ConfigError(f"expected {'/'.join(t.__name__ for t in types)}, got {value!r}",
                          path=path, key=key)
    if isinstance(value, int | float) and not isinstance(value, bool) and key != "seed" \
            and value <= 0 and key not in ("optimizer.weight_decay", "optimizer.momentum"):
        raise ConfigError(f"must be > 0, got {value!r}", path=path, key=key)
    return value


def parse_set(item: str) -> tuple[str, Any]:
    """Parse one ``--set key=value`` (the value in TOML syntax; bare words are strings)."""
    if "=" not in item:
        raise ConfigError(f"--set needs key=value, got {item!r}", key="--set")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if key not in SCHEMA:
        raise ConfigError(f"unknown key; known keys: {', '.join(SCHEMA)}", path="--set", key=key)
    if value == "none" and type(None) in SCHEMA[key]:
        value = None
    return key, _check(key, value, "--set")


@dataclass(frozen=True)
class StudyConfig:
    """A resolved study (one tier, overrides applied): flat dotted keys -> values."""

    name: str
    tier: str
    values: tuple[tuple[str, Any], ...]
    path: str

    def __getitem__(self, key: str) -> Any:
        return dict(self.values)[key]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)

    def to_toml(self) -> str:
        """The resolved configuration as TOML text (recorded with results)."""
        lines = [f'# study {self.name}, tier {self.tier}']
        for k, v in self.values:
            if v is None:
                continue
            lines.append(f"{_quote_key(k)} = {_toml_value(v)}")
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return f"StudyConfig({self.name!r}, tier={self.tier!r})"


def _quote_key(k: str) -> str:
    return ".".join(k.split("."))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def load_study(name: str, tier: str | None = None,
               overrides: list[tuple[str, Any]] | None = None) -> StudyConfig:
    """Load ``studies/NAME.toml``, pick a tier (default: the file's ``default_tier``) and
    apply ``overrides`` (from :func:`parse_set`)."""
    path = Path(find_entry("studies", name))
    doc = copy.deepcopy(read_toml(path))
    tiers = doc.pop("tiers", {})
    flat = _flatten(doc, path)
    for k, v in flat.items():
        _check(k, v, path)
    for t, table in tiers.items():
        if t not in TIERS:
            raise ConfigError(f"unknown tier; tiers are {', '.join(TIERS)}", path=path,
                              key=f"tiers.{t}")
        for k, v in _flatten(table, path).items():
            # an unknown key is reported with its full dotted path inside the file
            _check(k if k in SCHEMA else f"tiers.{t}.{k}", v, path)
    tier = tier or flat.get("default_tier", "full")
    if tier not in TIERS:
        raise ConfigError(f"unknown tier {tier!r}; tiers are {', '.join(TIERS)}", key="--tier")
    if tier != "full" and tier not in tiers:
        raise ConfigError(f"study has no tier {tier!r} (has: full, {', '.join(tiers)})",
                          path=path, key="tiers")
    values = dict(DEFAULTS)
    values.update(flat)
    if tier != "full":
        values.update(_flatten(tiers[tier], path))
    for k, v in overrides or []:
        values[k] = v
    for k in REQUIRED:
        if k not in values:
            raise ConfigError("missing required key", path=path, key=k)
    if values["relaxation.schedule"] not in ("async", "sync"):
        raise ConfigError("must be 'async' or 'sync'", path=path, key="relaxation.schedule")
    if values["optimizer.name"] not in ("sgd", "adam", "adamw"):
        raise ConfigError("must be sgd, adam or adamw", path=path, key="optimizer.name")
    if values["optimizer.schedule"] not in ("cosine", "constant"):
        raise ConfigError("must be cosine or constant", path=path, key="optimizer.schedule")
    if values["dtype"] not in ("float32", "float64"):
        raise ConfigError("must be float32 or float64", path=path, key="dtype")
    return StudyConfig(path.stem, tier, tuple(sorted(values.items())), str(path))
