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
from analogebl.hardware.schema import INERT, SCHEMA, check_field
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
_MAX_DEPTH = 32  # profiles in one inheritance chain
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
            out.setdefault(table, {})[key] = check_field(table, key, v, path)
    return out


def _check_values(p: dict[str, dict[str, Any]], path) -> None:
    """What no single field's range says: the relations between fields (each field's own
    type and range is :func:`analogebl.hardware.schema.check_field`, in :func:`_validate`)."""

    def bad(key, msg):
        raise ConfigError(msg, path=path, key=key)

    c = p["conductance"]
    if not c["g_min_S"] < c["g_max_S"]:
        bad("conductance.g_min_S", f"g_min_S ({c['g_min_S']}) must be < g_max_S ({c['g_max_S']})")
    if c["mapping"] == "differential" and (c["g_min_S"] < 0 or math.isinf(c["g_max_S"])):
        bad("conductance.g_max_S", "a differential pair needs 0 <= g_min_S < g_max_S < inf")
    u = p["update"]
    if u["model"] != "ideal" and c["mapping"] == "ideal_signed":
        bad("update.model", 'a device model needs conductance.mapping = "differential"')
    if u["model"] != "ideal" and u["n_states"] is None:
        bad("update.n_states", "a device model needs n_states >= 1 (its step size)")
    if u["unidirectional"] and u["model"] == "ideal":
        bad("update.unidirectional", "needs a device model")
    for t in ("dac", "adc"):
        if p[t]["bits"] and not p[t]["v_min_V"] < p[t]["v_max_V"]:
            bad(f"{t}.v_min_V", "v_min_V must be < v_max_V")
    if p["neuron"]["v_low_V"] >= p["neuron"]["v_high_V"]:
        bad("neuron.v_low_V", "v_low_V must be < v_high_V")
    nu = p["nudge"]
    if nu["bits"] and math.isinf(nu["i_max_A"]):
        bad("nudge.bits", "a quantized nudge current needs a finite nudge.i_max_A (its range)")
    if (nu["bits"] or math.isfinite(nu["i_max_A"])) and (
        c["mapping"] != "differential" or not p["energy"]["v_read_V"] > 0
    ):
        bad("nudge.i_max_A", "a nudge current in amperes needs conductance.mapping = "
            '"differential" and energy.v_read_V > 0 (they convert it to state units)')  # fmt: skip
    a, ne = p["array"], p["neuron"]
    in_ohms = [f"array.{k}" for k in ("r_wire_ohm", "r_row_terminal_ohm", "r_col_terminal_ohm",
                                      "r_access_ohm", "i_col_max_A") if a[k] > 0]  # fmt: skip
    if ne["diode_r_on_ohm"] > 0:
        in_ohms.append("neuron.diode_r_on_ohm")
    if math.isfinite(ne["diode_r_off_ohm"]):
        in_ohms.append("neuron.diode_r_off_ohm")
    if in_ohms and (c["mapping"] != "differential" or not p["energy"]["v_read_V"] > 0):
        bad(in_ohms[0], 'a resistance or current in SI units needs conductance.mapping = '
            '"differential" and energy.v_read_V > 0 (they convert it to weight units)')  # fmt: skip
    if ne["diode_r_on_ohm"] > ne["diode_r_off_ohm"]:
        bad("neuron.diode_r_on_ohm", "a conducting diode must not resist more than a blocking "
            "one (diode_r_on_ohm <= diode_r_off_ohm)")  # fmt: skip
    if ne["diode_vth_V"] * 2 <= -(ne["v_high_V"] - ne["v_low_V"]):
        bad("neuron.diode_vth_V", "the knees v_low - vth and v_high + vth must not cross")
    r = p["retention"]
    if r["decay_lifetime_sec"] > 0 and not (
        p["energy"]["t_read_sec"] > 0 or r["epoch_interval_sec"] > 0
    ):
        bad("retention.decay_lifetime_sec", "the leak needs a clock: set energy.t_read_sec "
            "(time of one relaxation iteration) or retention.epoch_interval_sec")  # fmt: skip
    if (r["decay_lifetime_sec"] > 0 or r["prog_noise_poly_S"]) and c["mapping"] != "differential":
        key = "decay_lifetime_sec" if r["decay_lifetime_sec"] > 0 else "prog_noise_poly_S"
        bad(f"retention.{key}", 'acts on devices: needs conductance.mapping = "differential"')


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


def _resolve(name_or_path: str, seen: tuple[Path, ...]) -> tuple[dict, Path]:
    """The profile's document merged over its ancestors'; ``seen``: the files of the
    profiles that extend it (a file met twice is a cycle, whatever the names inside)."""
    path = Path(find_entry("hardware_profiles", name_or_path))
    if path.resolve() in seen:
        chain = " -> ".join(p.name for p in (*seen, path.resolve()))
        raise ConfigError(f"inheritance cycle: {chain}", path=seen[-1], key="profile.extends")
    if len(seen) >= _MAX_DEPTH:
        raise ConfigError(
            f"inheritance deeper than {_MAX_DEPTH} profiles", path=seen[-1], key="profile.extends"
        )
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
        try:
            base, _ = _resolve(parent, (*seen, path.resolve()))
        except ConfigError as exc:
            if exc.message.startswith(("inheritance cycle", "inheritance deeper")):
                raise  # named once, by the file that closes the cycle
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
