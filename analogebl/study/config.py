"""⑨ Study records: what to train, on what, how long — loaded from ``studies/NAME.toml``.

A study file holds the ``full`` configuration at top level and per-tier overrides in
``[tiers.NAME]`` tables (same keys). ``--set key=value`` overrides use the same dotted keys
(``epochs=3``, ``circuit.width=0.25``, ``rule.beta=0.1``) and are validated against the
schema below: unknown keys and wrongly typed values are rejected with the file and key.

Sweeps: a ``[sweep]`` table lists values for any schema key (``sweep.rule.name = [...]``,
``sweep.seed = [0, 1, 2]``, ``sweep.profile = [...]``); the study expands into the cartesian
product, one *run* per combination (:meth:`StudyConfig.runs`). ``[per_rule.NAME]`` tables
override keys for the runs of one rule (the paper's CL uses ``beta = 1``). Tiers may
override sweep axes too (``[tiers.smoke.sweep] seed = [0]``).

Claims: ``[claims.NAME]`` tables state comparative findings (``lhs = "n_ep"``, ``rhs =
"p_ep"``, ``metric = "test_error"``, ``direction = "less"``) that ``study report`` tests
over seeds (:class:`~analogebl.study.schema.Claim`). They are checked when the study loads
but are not run values: they change no run identifier and no recorded configuration.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analogebl.catalog import did_you_mean, find_entry, read_toml
from analogebl.errors import ConfigError
from analogebl.spec import RunSpec
from analogebl.study.claims import Claim, key_values, parse_claims, study_claims
from analogebl.study.schema import DEFAULTS, REQUIRED, SCHEMA, check_document
from analogebl.tomlio import dumps, nest

__all__ = [
    "SCHEMA",
    "TIERS",
    "Claim",
    "StudyConfig",
    "check_flag",
    "load_study",
    "parse_set",
    "run_id_slug",
    "study_claims",
]

# short names of sweep axes in run identifiers
_AXIS_LABEL = {
    "rule.name": "",
    "seed": "seed",
    "profile": "",
    "dataset": "",
    "variant": "",
    "rule.beta": "beta",
    "circuit.width": "w",
    "dtype": "",
}

TIERS = ("full", "cpu", "smoke")

# characters a run identifier keeps as they are (it names the file OUT/RUN_ID.h5): no path
# separator, no control or non-ASCII character, nothing a common file system refuses
_SAFE = re.compile(r"[A-Za-z0-9._+=,()\[\] -]+")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._+=,()\[\]-]+")  # spaces too, when cleaning
# longest run identifier in bytes: OUT/RUN_ID.h5 and its temp file .RUN_ID.h5.XXXXXXXX.tmp
# stay well below the 255 bytes file systems allow for a name
MAX_RUN_ID_BYTES = 200


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _slug_part(text: str) -> str:
    """One part of a run identifier: ``text`` itself when it is a safe file name part,
    else its safe characters followed by a short hash of ``text`` (distinct values stay
    distinct). Unsafe: empty, a path separator, a control or non-ASCII character, a leading
    ``.`` or ``-``, leading/trailing spaces."""
    if _SAFE.fullmatch(text) and text[0] not in ".- " and text[-1] != " ":
        return text
    clean = _UNSAFE_RUN.sub("-", text).strip(".-")
    return f"{clean}-{_digest(text)}" if clean else _digest(text)


def run_id_slug(parts: list[str]) -> str:
    """The run identifier (and file name stem) of a sweep combination from its parts
    (``["c_ep", "seed1"]`` -> ``c_ep_seed1``; none -> ``run``).

    Ordinary parts are kept as they are; an unsafe one (a ``/``, ``..``, an absolute path,
    control or non-ASCII characters, empty) keeps its safe characters and gains a short hash
    of its value, and an identifier longer than ``MAX_RUN_ID_BYTES`` is cut and ends with a
    hash of the whole, so every identifier is one plain file name and distinct combinations
    keep distinct identifiers.
    """
    if not parts:
        return "run"
    rid = "_".join(_slug_part(p) for p in parts)
    if len(rid) > MAX_RUN_ID_BYTES:  # ASCII only by now: characters are bytes
        whole = _digest("\x00".join(parts))
        rid = rid[: MAX_RUN_ID_BYTES - len(whole) - 1].rstrip("._-") + "-" + whole
    return rid


def _flatten(doc: dict, path, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        key = prefix + k
        if isinstance(v, dict):
            out.update(_flatten(v, path, key + "."))
        else:
            out[key] = v
    return out


# numeric keys that may be 0 or negative (every other number must be > 0)
_MAY_BE_ZERO = (
    "seed",
    "probes",
    "optimizer.weight_decay",
    "optimizer.momentum",
    "optimizer.spectral_cap",
    "optimizer.kfac_decay",
    "rule.homeostasis",
    "rule.temperature",
)


def _check_text(text: str, path, key: str, what: str = "a value") -> None:
    """``text`` can be recorded: no NUL (no file name or HDF5 text holds one) and valid
    Unicode (bytes of a command line that were not UTF-8 arrive as lone surrogates)."""
    if "\x00" in text:
        raise ConfigError(f"a NUL character is not allowed in {what}, got {text!r}",
                          path=path, key=key)  # fmt: skip
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{what} must be valid UTF-8 text, got {text!r}",
                          path=path, key=key) from None  # fmt: skip


def _check(key: str, value: Any, path, name: str | None = None) -> Any:
    """``value`` of the schema key ``key`` has an allowed type (and is > 0 where the schema
    needs it); an error names ``path`` and ``name``, the value's full dotted key in the file
    (``variants.fast.epochs``; default ``key``)."""
    name = key if name is None else name
    if key not in SCHEMA:
        raise ConfigError(f"unknown key; {did_you_mean(key, SCHEMA)}", path=path, key=name)
    types = SCHEMA[key]
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        raise ConfigError(
            f"expected {'/'.join(t.__name__ for t in types)}, got {value!r}", path=path, key=name
        )
    if isinstance(value, str):  # every value is recorded as text in the run file
        _check_text(value, path, name)
    # NaN is never a setting (and passes every comparison): refused in any tier, used or not
    if any(
        isinstance(v, float) and math.isnan(v)
        for v in (value if isinstance(value, list) else [value])
    ):
        raise ConfigError(f"must be a number, got {value!r}", path=path, key=name)
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and key not in _MAY_BE_ZERO
        and value <= 0
    ):
        raise ConfigError(f"must be > 0, got {value!r}", path=path, key=name)
    if key == "threads" and isinstance(value, str) and value != "auto":
        raise ConfigError(
            f"expected a positive integer or 'auto', got {value!r}", path=path, key=name
        )
    return value


def parse_set(item: str) -> tuple[str, Any]:
    """Parse one ``--set key=value`` (the value in TOML syntax; bare words are strings)."""
    if "=" not in item:
        raise ConfigError(f"needs key=value, got {item!r}", key="--set")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    if key not in SCHEMA:
        raise ConfigError(f"unknown key; {did_you_mean(key, SCHEMA)}", path="--set", key=key)
    if value == "none" and type(None) in SCHEMA[key]:
        value = None
    return key, _check(key, value, "--set")


def check_flag(flag: str, key: str, value: Any) -> tuple[str, Any]:
    """Check the value of the command-line flag ``flag`` that sets the study key ``key``
    (``--device cuda:0`` sets ``device``) as ``--set`` would, but taken as given (no TOML
    parsing); ``"none"`` clears a key that may be unset. An error names the flag."""
    if value == "none" and type(None) in SCHEMA[key]:
        value = None
    return key, _check(key, value, None, flag)


@dataclass(frozen=True)
class StudyConfig:
    """A resolved study (one tier, overrides applied): flat dotted keys -> values."""

    name: str
    tier: str
    values: tuple[tuple[str, Any], ...]
    path: str
    sweep: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    per_rule: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    run_id: str | None = None
    variants: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    overrides: tuple[tuple[str, Any], ...] = ()  # --set: win over variants, not per_rule
    claims: tuple[Claim, ...] = ()  # tested by `study report`; not run values (not recorded)

    def __getitem__(self, key: str) -> Any:
        return dict(self.values)[key]

    def runs(self) -> list[StudyConfig]:
        """One resolved single-run config per combination of the sweep axes, with
        ``per_rule`` overrides applied; ``run_id`` names the combination
        (``c_ep_seed1``; ``run`` when nothing is swept) and is always a plain file name
        (:func:`run_id_slug`)."""
        keys = [k for k, _ in self.sweep]
        out = []
        for combo in itertools.product(*(v for _, v in self.sweep)):
            values = dict(self.values)
            chosen = dict(zip(keys, combo, strict=True))
            values.update(chosen)
            variant = values["variant"]
            if variant is not None:
                if variant not in dict(self.variants):
                    raise ConfigError(
                        f"unknown variant {variant!r}; defined: "
                        f"{', '.join(dict(self.variants)) or '(none)'}",
                        path=self.path,
                        key="variant",
                    )
                values.update(dict(self.variants)[variant])
                values.update(dict(self.overrides))
            values.update(dict(self.per_rule).get(values["rule.name"], ()))
            parts = []
            for k, v in zip(keys, combo, strict=True):
                label = _AXIS_LABEL.get(k, k.replace(".", "-") + "-")
                parts.append(f"{label}{v:g}" if isinstance(v, float) else f"{label}{v}")
            rid = run_id_slug(parts)
            out.append(
                StudyConfig(
                    self.name, self.tier, tuple(sorted(values.items())), self.path, (), (), rid
                )
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)

    def to_toml(self) -> str:
        """The resolved configuration as TOML text (recorded with results). Keys whose value
        is ``None`` are left out (loading fills them from the defaults again)."""
        doc = nest(self.values)
        if self.sweep:
            doc["sweep"] = nest((k, list(v)) for k, v in self.sweep)
        if self.variants:
            doc["variants"] = {name: nest(table) for name, table in self.variants}
        if self.per_rule:
            doc["per_rule"] = {rule: nest(table) for rule, table in self.per_rule}
        header = f"study {self.name}, tier {self.tier}" + (
            f", run {self.run_id}" if self.run_id else ""
        )
        return dumps(doc, header=header)

    def __repr__(self) -> str:
        return f"StudyConfig({self.name!r}, tier={self.tier!r})"


def _split_sweep(doc: dict, path, where: str) -> tuple[dict, dict]:
    """Pop ``sweep``, ``variants`` and ``per_rule`` from ``doc`` (the top level, ``where``
    empty, or one tier, ``where`` = ``tiers.NAME.``; their shapes are already checked by
    :func:`~analogebl.study.schema.check_document`) and check every value against the
    schema, naming its full dotted key (``variants.fast.epochs``)."""
    sweep = {}
    for k, vals in _flatten(doc.pop("sweep", {}), path).items():
        key = f"{where}sweep.{k}"
        if k not in SCHEMA:
            raise ConfigError(f"unknown sweep axis; {did_you_mean(k, SCHEMA)}", path=path, key=key)
        sweep[k] = tuple(_check(k, v, path, key) for v in vals)
    variants = {}
    for name, table in doc.pop("variants", {}).items():
        _check_text(name, path, f"{where}variants", "a variant name")  # recorded in /meta
        flat = _flatten(table, path)
        if "variant" in flat:
            raise ConfigError("a variant cannot choose another variant", path=path,
                              key=f"variants.{name}.variant")  # fmt: skip
        variants[name] = {k: _check(k, v, path, f"variants.{name}.{k}") for k, v in flat.items()}
    if variants:
        sweep["variant"] = tuple(variants)
        sweep["variants"] = variants
    per_rule = {}
    for rule, table in doc.pop("per_rule", {}).items():
        prefix = f"{where}per_rule.{rule}."
        per_rule[rule] = {
            k: _check(k, v, path, prefix + k) for k, v in _flatten(table, path).items()
        }
    return sweep, per_rule


def load_study(
    name: str,
    tier: str | None = None,
    overrides: list[tuple[str, Any]] | None = None,
    sweep_overrides: dict[str, list[Any]] | None = None,
    flags: dict[str, str] | None = None,
) -> StudyConfig:
    """Load ``studies/NAME.toml``, pick a tier (default: the file's ``default_tier``) and
    apply ``overrides`` (from :func:`parse_set`; an override of a swept key replaces the
    axis) and ``sweep_overrides`` (key -> values, e.g. ``--seeds``).

    A refused value is named where it was set: its dotted key in the file
    (``variants.fast.optimizer.lr``), or the command-line flag that set it (``flags``: key
    -> flag, e.g. ``{"device": "--device", "seed": "--seeds"}``; other overrides ``--set``).
    """
    path = Path(find_entry("studies", name))
    doc = copy.deepcopy(read_toml(path))
    check_document(doc, path)  # tables are tables, sweep axes lists: before reading values
    claims = parse_claims(doc.pop("claims", {}), path, key_values(doc))
    tiers = doc.pop("tiers", {})
    extra = doc.pop("extra_tiers", [])
    if not (
        isinstance(extra, list)
        and all(isinstance(t, str) and t.isidentifier() and t not in TIERS for t in extra)
    ):
        raise ConfigError(
            "expected a list of tier names besides full, cpu and smoke",
            path=path,
            key="extra_tiers",
        )
    sweep, per_rule = _split_sweep(doc, path, "")
    variants = sweep.pop("variants", {})
    flat = _flatten(doc, path)
    for k, v in flat.items():
        _check(k, v, path)
    tier_docs = {}
    for t, table in tiers.items():
        if t not in TIERS and t not in extra:
            raise ConfigError(
                f"unknown tier; tiers are {', '.join(TIERS)} (declare others in extra_tiers)",
                path=path,
                key=f"tiers.{t}",
            )
        table = copy.deepcopy(table)
        t_sweep, t_rule = _split_sweep(table, path, f"tiers.{t}.")
        t_flat = _flatten(table, path)
        for k, v in t_flat.items():
            _check(k, v, path, f"tiers.{t}.{k}")
        tier_docs[t] = (t_flat, t_sweep, t_rule)
    tier_key = "--tier" if tier else "default_tier"  # where the tier's name came from
    tier = tier or flat.get("default_tier", "full")
    if tier not in TIERS and tier not in extra:
        raise ConfigError(
            f"unknown tier {tier!r}; this study's tiers are {', '.join([*TIERS, *extra])}",
            path=path,
            key=tier_key,
        )
    if tier != "full" and tier not in tier_docs:
        has = f"its tiers: full, {', '.join(tier_docs)}" if tier_docs else "its only tier is full"
        raise ConfigError(f"study has no tier {tier!r} ({has})", path=path, key="tiers")
    values = dict(DEFAULTS)
    values.update(flat)
    t_flat, t_sweep, t_rule = {}, {}, {}
    if tier != "full":
        t_flat, t_sweep, t_rule = tier_docs[tier]
        values.update(t_flat)
        sweep.update(t_sweep)
        for r, table in t_rule.items():
            per_rule.setdefault(r, {}).update(table)
    if "variant" in sweep:
        unknown = set(sweep["variant"]) - set(variants)
        if unknown:
            raise ConfigError(
                f"unknown variant(s) {sorted(unknown)}; defined: {', '.join(variants)}",
                path=path,
                key="sweep.variant",
            )
    for k, v in overrides or []:
        values[k] = v
        sweep.pop(k, None)
    for k, vals in (sweep_overrides or {}).items():
        sweep[k] = tuple(_check(k, v, None, "--seeds" if k == "seed" else k) for v in vals)
    has_model = (
        values.get("model.name") is not None
        or "model.name" in sweep
        or any("model.name" in t for t in variants.values())
    )
    for k in REQUIRED:
        if k == "circuit.name":  # a recurrent model (model.*) replaces the circuit
            if values[k] is None and k not in sweep and not has_model:
                raise ConfigError("missing required key (or set model.name)", path=path, key=k)
            continue
        if k not in values and k not in sweep:
            raise ConfigError("missing required key", path=path, key=k)
    study = StudyConfig(
        path.stem,
        tier,
        tuple(sorted(values.items())),
        str(path),
        tuple(sweep.items()),
        tuple((r, tuple(sorted(t.items()))) for r, t in per_rule.items()),
        variants=tuple((n, tuple(sorted(t.items()))) for n, t in variants.items()),
        overrides=tuple(overrides or ()),
        claims=claims,
    )
    set_here = {  # the layers of the file a run's value may come from, last applied first
        "per_rule": {r: (set(t_rule.get(r, ())), set(per_rule[r])) for r in per_rule},
        "variants": {n: set(t) for n, t in variants.items()},
        "sweep": (set(t_sweep), set(sweep) - set(sweep_overrides or {})),
        "tier": set(t_flat),
        "overrides": {k for k, _ in overrides or ()} | set(sweep_overrides or {}),
    }
    for run in study.runs():  # every value's meaning is checked in one place: the spec
        try:
            RunSpec.from_flat(run.as_dict(), path=path, study=study.name, tier=tier,
                              run_id=run.run_id)  # fmt: skip
        except ConfigError as exc:  # name where the refused value was set
            if exc.key is None or exc.path != str(path):
                raise
            where = _origin(exc.key, run, tier, set_here, flags or {})
            if where == (str(path), exc.key):
                raise
            raise ConfigError(exc.message, path=where[0], key=where[1]) from None
    return study


def _origin(
    key: str, run: StudyConfig, tier: str, set_here: dict, flags: dict[str, str]
) -> tuple[str | None, str]:
    """Where ``run``'s value of ``key`` was set, as ``(file, key)``, following the layers
    :meth:`StudyConfig.runs` applies (per_rule, then a command-line override, the variant,
    the sweep, the tier, the top level): the dotted key in the study file, ``(None, flag)``
    for a command-line flag, ``("--set", key)`` for ``--set``."""
    values = run.as_dict()
    path = run.path
    tier_rules, rules = set_here["per_rule"].get(values.get("rule.name"), (set(), set()))
    if key in rules:
        where = f"tiers.{tier}." if key in tier_rules else ""
        return path, f"{where}per_rule.{values['rule.name']}.{key}"
    if key in set_here["overrides"]:
        return (None, flags[key]) if key in flags else ("--set", key)
    variant = values.get("variant")
    if variant is not None and key in set_here["variants"].get(variant, ()):
        return path, f"variants.{variant}.{key}"
    tier_sweep, sweep = set_here["sweep"]
    if key in sweep:
        return path, f"tiers.{tier}.sweep.{key}" if key in tier_sweep else f"sweep.{key}"
    if key in set_here["tier"]:
        return path, f"tiers.{tier}.{key}"
    return path, key
