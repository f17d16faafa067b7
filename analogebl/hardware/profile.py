"""③ Hardware profiles: TOML records of device physics, SI units in the key names.

A profile (``hardware_profiles/NAME.toml``) has tables ``profile``, ``conductance``,
``update``, ``variability``, ``faults``, ``read``, ``retention``, ``array``, ``dac``, ``adc``,
``nudge``, ``neuron``, ``energy``, ``rng`` (schema of ``analog_devices.md`` section 2.2). Every
effect is off by default; ``extends = "parent"`` inherits a profile and overrides fields
(deep merge). Unknown tables/keys, wrong types, a unit-less or wrongly-suffixed key where a
unit is expected, and impossible values are rejected with one error naming file and key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analogebl.catalog import find_entry, list_entries, read_toml
from analogebl.errors import ConfigError
from analogebl.hardware.schema import FLOAT, INERT, SCHEMA
from analogebl.tomlio import dumps

__all__ = ["SCHEMA", "HardwareProfile", "list_profiles", "load_profile"]

_I, _S, _L = (int,), (str,), (list,)
_PROFILE_KEYS = {
    "name": _S,
    "extends": _S,
    "description": _S,
    "references": _L,
    "schema_version": _I,
}
_UNITS = ("_S", "_V", "_A", "_ohm", "_sec", "_J")


def _unit_hint(table: str, key: str) -> str:
    stem = key
    for u in _UNITS + ("_uS", "_mS", "_nS", "_s", "_ns", "_us", "_ms", "_mV", "_kohm", "_pJ"):
        if key.endswith(u):
            stem = key[: -len(u)]
            break
    for k in SCHEMA.get(table, {}):
        if k != key and (k == stem or k.startswith(stem + "_")) and k.endswith(_UNITS):
            return f"; did you mean '{k}' (unit {SCHEMA[table][k][2]})?"
    return ""


def _validate(doc: dict, path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for table, body in doc.items():
        if table == "profile":
            continue
        if table not in SCHEMA:
            raise ConfigError(
                f"unknown table; tables are profile, {', '.join(SCHEMA)}", path=path, key=table
            )
        if not isinstance(body, dict):
            raise ConfigError("expected a table", path=path, key=table)
        for key, v in body.items():
            dotted = f"{table}.{key}"
            if key not in SCHEMA[table]:
                raise ConfigError(
                    "unknown key"
                    + (_unit_hint(table, key) or f"; known: {', '.join(SCHEMA[table])}"),
                    path=path,
                    key=dotted,
                )
            types = SCHEMA[table][key][0]
            if isinstance(types[0], str):
                if v not in types:
                    raise ConfigError(
                        f"must be one of {', '.join(types)}, got {v!r}", path=path, key=dotted
                    )
            elif isinstance(v, bool) and bool not in types or not isinstance(v, types):
                raise ConfigError(
                    f"expected {'/'.join(t.__name__ for t in types)}, got {v!r}",
                    path=path,
                    key=dotted,
                )
            out.setdefault(table, {})[key] = float(v) if types is FLOAT else v
    return out


def _check_values(p: dict[str, dict[str, Any]], path) -> None:
    def bad(key, msg):
        raise ConfigError(msg, path=path, key=key)

    c = p["conductance"]
    if not c["g_min_S"] < c["g_max_S"]:
        bad("conductance.g_min_S", f"g_min_S ({c['g_min_S']}) must be < g_max_S ({c['g_max_S']})")
    if c["mapping"] == "differential" and (c["g_min_S"] < 0 or math.isinf(c["g_max_S"])):
        bad("conductance.g_max_S", "a differential pair needs 0 <= g_min_S < g_max_S < inf")
    for table, keys in SCHEMA.items():
        for key in keys:
            v = p[table][key]
            dotted = f"{table}.{key}"
            if (
                key.endswith(("_std", "_prob", "_rel", "_lsb", "_fraction"))
                or key
                in (
                    "c2c_std",
                    "noise_abs_S",
                    "t_read_sec",
                    "drift_nu_std",
                    "epoch_interval_sec",
                )
                or key.startswith("t_write")
            ):
                if isinstance(v, int | float) and v < 0:
                    bad(dotted, f"must be >= 0, got {v}")
            if key == "bits" and not 0 <= v <= 32:
                bad(dotted, f"bits must be 0 (exact) or 1..32, got {v}")
    for key in ("stuck_prob", "stuck_on_fraction"):
        if p["faults"][key] > 1:
            bad(f"faults.{key}", "must be a fraction in [0, 1]")
    u = p["update"]
    for k in ("n_states", "max_pulses"):  # absent (None) means continuous / no cap
        if u[k] is not None and u[k] < 1:
            bad(
                f"update.{k}",
                f"must be >= 1, got {u[k]} (leave the key out for "
                + ("continuous steps)" if k == "n_states" else "no cap)"),
            )
    if p["rng"]["device_seed"] is not None and p["rng"]["device_seed"] < 0:
        bad("rng.device_seed", f"must be >= 0, got {p['rng']['device_seed']}")
    if not 0 < u["refresh_at"] <= 1:
        bad("update.refresh_at", "must be in (0, 1]")
    if u["model"] != "ideal" and c["mapping"] == "ideal_signed":
        bad("update.model", 'a device model needs conductance.mapping = "differential"')
    if u["model"] != "ideal" and u["n_states"] is None:
        bad("update.n_states", "a device model needs n_states >= 1 (its step size)")
    if u["unidirectional"] and u["model"] == "ideal":
        bad("update.unidirectional", "needs a device model")
    for k in ("a_norm_up", "a_norm_down"):
        if u[k] <= 0:
            bad(f"update.{k}", "must be > 0")
    for t in ("dac", "adc"):
        if p[t]["bits"] and not p[t]["v_min_V"] < p[t]["v_max_V"]:
            bad(f"{t}.v_min_V", "v_min_V must be < v_max_V")
    if p["energy"]["v_read_V"] <= 0:
        bad("energy.v_read_V", "must be > 0")
    if p["neuron"]["v_low_V"] >= p["neuron"]["v_high_V"]:
        bad("neuron.v_low_V", "v_low_V must be < v_high_V")


@dataclass(frozen=True)
class HardwareProfile:
    """A resolved hardware profile (inheritance applied, defaults filled in).

    ``values`` holds every field as ``((table, key), value)``; read with :meth:`get`.
    """

    name: str
    description: str
    references: tuple[str, ...]
    values: tuple[tuple[tuple[str, str], Any], ...]
    path: str
    extends: str | None = None

    def get(self, table: str, key: str) -> Any:
        return dict(self.values)[(table, key)]

    def __getitem__(self, dotted: str) -> Any:
        t, k = dotted.split(".", 1)
        return self.get(t, k)

    @property
    def is_ideal(self) -> bool:
        """True when nothing differs from the software simulator."""
        return all(v == SCHEMA[t][k][1] or (t, k) in INERT for (t, k), v in self.values)

    def state_quantizers(self, num_layers: int, mean, std):
        """The DAC/ADC as per-layer state quantizers (:mod:`analogebl.hardware.quantize`)."""
        from analogebl.hardware.quantize import state_quantizers

        return state_quantizers(self, num_layers, mean, std)

    def describe(self) -> list[tuple[str, str, str, str]]:
        """Rows (dotted key, value, unit, meaning) of every field."""
        return [
            (f"{t}.{k}", repr(v) if not isinstance(v, str) else v, SCHEMA[t][k][2], SCHEMA[t][k][3])
            for (t, k), v in self.values
        ]

    def to_toml(self) -> str:
        """The resolved profile as TOML (recorded with results)."""
        doc: dict[str, Any] = {
            "profile": {
                "name": self.name,
                "description": self.description,
                "references": list(self.references),
            }
        }
        for table in SCHEMA:
            doc[table] = {k: self.get(table, k) for k in SCHEMA[table]}
        return dumps(doc)

    def __repr__(self) -> str:
        return f"HardwareProfile({self.name!r}, ideal={self.is_ideal})"


def _merge(base: dict, over: dict) -> dict:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for k, v in over.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def _resolve(name_or_path: str, seen: tuple[str, ...]) -> tuple[dict, Path]:
    path = Path(find_entry("hardware_profiles", name_or_path))
    doc = read_toml(path)
    head = doc.get("profile", {})
    if not isinstance(head, dict):
        raise ConfigError("expected a [profile] table", path=path, key="profile")
    for k, v in head.items():
        if k not in _PROFILE_KEYS:
            raise ConfigError(
                f"unknown key; known: {', '.join(_PROFILE_KEYS)}", path=path, key=f"profile.{k}"
            )
        if not isinstance(v, _PROFILE_KEYS[k]) or isinstance(v, bool):
            raise ConfigError(
                f"expected {_PROFILE_KEYS[k][0].__name__}, got {v!r}", path=path, key=f"profile.{k}"
            )
    if "name" not in head:
        raise ConfigError("missing required key", path=path, key="profile.name")
    if head.get("schema_version", 1) != 1:
        raise ConfigError(
            "unsupported schema_version (this analogebl reads 1)",
            path=path,
            key="profile.schema_version",
        )
    _validate(doc, path)
    parent = head.get("extends")
    if parent:
        if parent in seen or parent == head["name"]:
            raise ConfigError(
                f"inheritance cycle: {' -> '.join(seen + (parent,))}",
                path=path,
                key="profile.extends",
            )
        try:
            base, _ = _resolve(parent, seen + (head["name"],))
        except ConfigError as exc:
            raise ConfigError(
                f"cannot load parent profile: {exc}", path=path, key="profile.extends"
            ) from None
        base.pop("profile", None)
        doc = _merge(base, doc)
    return doc, path


def load_profile(name_or_path: str) -> HardwareProfile:
    """Load a catalog profile (``hardware_profiles/NAME.toml``) or a ``.toml`` path."""
    doc, path = _resolve(name_or_path, ())
    head = doc["profile"]
    given = _validate(doc, path)
    full = {
        t: {k: given.get(t, {}).get(k, spec[1]) for k, spec in keys.items()}
        for t, keys in SCHEMA.items()
    }
    _check_values(full, path)
    values = tuple(((t, k), full[t][k]) for t in SCHEMA for k in SCHEMA[t])
    return HardwareProfile(
        head["name"],
        head.get("description", ""),
        tuple(head.get("references", ())),
        values,
        str(path),
        head.get("extends"),
    )


def list_profiles() -> dict[str, str]:
    """Catalog profile name -> one-line description."""
    out = {}
    for name in list_entries("hardware_profiles"):
        p = load_profile(name)
        out[name] = p.description.strip().splitlines()[0] if p.description else ""
    return out
