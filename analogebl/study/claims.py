"""Claims: comparative findings a study file states (``[claims.NAME]`` tables), checked when
the study loads and tested over seeds by ``study report`` (:mod:`analogebl.reporting.claims`).

Claims are not run values: they are popped from the study document before its values are
read, so they change no run identifier and no recorded configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analogebl.errors import ConfigError
from analogebl.study.schema import DEFAULTS, SCHEMA, check_document

__all__ = ["CLAIM_KEYS", "Claim", "key_values", "parse_claims", "study_claims"]


def _bad(message: str, path, key: str) -> ConfigError:
    return ConfigError(message, path=path, key=key)


#: keys of a ``[claims.NAME]`` table: (allowed types, default; ``...`` = required)
CLAIM_KEYS: dict[str, tuple[tuple, Any]] = {
    "lhs": ((str, int, float), ...),
    "rhs": ((str, int, float, list), ...),
    "metric": ((str,), ...),
    "direction": ((str,), ...),
    "by": ((str,), "rule.name"),
    "alpha": ((float,), 0.05),
    "epoch": ((str,), "final"),
    "margin": ((float, int), None),
    "description": ((str,), ""),
}
DIRECTIONS = ("less", "greater", "similar")
EPOCHS = ("final", "best_val")


@dataclass(frozen=True)
class Claim:
    """A comparative finding a study states, tested over seeds by ``study report``.

    Claims are not run values: they change no run identifier and no recorded configuration.

    Parameters
    ----------
    name : str
        The table's name (``[claims.NAME]``).
    lhs : str or number
        The runs whose ``by`` value is ``lhs``...
    rhs : tuple
        ...compared with the runs of each of these ``by`` values.
    metric : str
        A ``/metrics`` entry (``test_error``, ``train_error``, ``val_error``, ...).
    direction : {"less", "greater", "similar"}
        ``lhs`` has a lower / higher mean than each ``rhs``, or ``similar``: the means differ
        by less than ``margin`` (two one-sided Welch tests, TOST).
    by : str
        The study key that tells the two sides apart (``rule.name``, ``variant``, ``profile``,
        ``optimizer.name``, any study key).
    alpha : float
        Significance level of each one-sided test (0 < alpha < 0.5).
    epoch : {"final", "best_val"}
        The value after the last epoch, or at each run's lowest ``val_error``.
    margin : float or None
        Equivalence margin in the metric's units (``similar`` only, required there).
    description : str
        The finding in words.
    """

    name: str
    lhs: Any
    rhs: tuple
    metric: str
    direction: str
    by: str = "rule.name"
    alpha: float = 0.05
    epoch: str = "final"
    margin: float | None = None
    description: str = ""

    def text(self) -> str:
        """One line: ``n_ep < p_ep in test_error (by rule.name, final epoch, alpha 0.05)``."""
        op = {"less": "<", "greater": ">", "similar": "≈"}[self.direction]
        rhs = self.rhs[0] if len(self.rhs) == 1 else "each of " + ", ".join(map(str, self.rhs))
        margin = f" within {self.margin:g}" if self.direction == "similar" else ""
        epoch = "final epoch" if self.epoch == "final" else "best-validation epoch"
        return (
            f"{self.lhs} {op} {rhs} in {self.metric}{margin} "
            f"(by {self.by}, {epoch}, alpha {self.alpha:g})"
        )


def parse_claims(tables: dict, path, values: dict[str, set] | None = None) -> tuple[Claim, ...]:
    """Check and build the ``[claims.NAME]`` tables of a study file.

    Parameters
    ----------
    tables : dict
        The parsed ``claims`` table (shape checked by :func:`check_document`).
    path : str or Path
        The study file (named in errors).
    values : dict, optional
        Study key -> the values the study gives it anywhere (top level, tiers, sweeps,
        variants); when given, ``lhs`` and ``rhs`` must be among them.

    Returns
    -------
    tuple of Claim

    Raises
    ------
    ConfigError
        Naming ``claims.NAME.key``: an unknown or missing key, a value of the wrong type,
        an unknown direction or epoch, alpha outside (0, 0.5), ``by`` not a study key,
        ``lhs`` or ``rhs`` not a value of ``by`` in this study, ``lhs`` among ``rhs``, a
        ``similar`` claim without a margin > 0.
    """
    out = []
    for name, table in tables.items():
        where = f"claims.{name}"
        if not isinstance(table, dict):
            raise _bad(f"expected a table, got {table!r}", path, where)
        for k in table:
            if k not in CLAIM_KEYS:
                raise _bad(f"unknown key; a claim has {', '.join(CLAIM_KEYS)}", path,
                           f"{where}.{k}")  # fmt: skip
        got = {}
        for k, (types, default) in CLAIM_KEYS.items():
            if k not in table:
                if default is ...:
                    raise _bad("missing required key", path, f"{where}.{k}")
                got[k] = default
                continue
            v = table[k]
            if k == "alpha" and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if isinstance(v, bool) or not isinstance(v, types):
                raise _bad(f"expected {'/'.join(t.__name__ for t in types)}, got {v!r}", path,
                           f"{where}.{k}")  # fmt: skip
            got[k] = v
        rhs = got["rhs"] if isinstance(got["rhs"], list) else [got["rhs"]]
        if not rhs or any(isinstance(x, bool | list | dict) for x in rhs):
            raise _bad(f"expected a value or a non-empty list of values, got {got['rhs']!r}",
                       path, f"{where}.rhs")  # fmt: skip
        if got["direction"] not in DIRECTIONS:
            raise _bad(f"expected one of {', '.join(DIRECTIONS)}, got {got['direction']!r}",
                       path, f"{where}.direction")  # fmt: skip
        if got["epoch"] not in EPOCHS:
            raise _bad(f"expected one of {', '.join(EPOCHS)}, got {got['epoch']!r}", path,
                       f"{where}.epoch")  # fmt: skip
        if not 0.0 < got["alpha"] < 0.5:
            raise _bad(f"must be in (0, 0.5), got {got['alpha']!r}", path, f"{where}.alpha")
        if got["by"] not in SCHEMA:
            raise _bad(f"unknown study key; known keys: {', '.join(SCHEMA)}", path,
                       f"{where}.by")  # fmt: skip
        if not got["metric"].isidentifier():
            raise _bad(f"expected a metric name (test_error, ...), got {got['metric']!r}", path,
                       f"{where}.metric")  # fmt: skip
        margin = got["margin"]
        if got["direction"] == "similar":
            if margin is None or not margin > 0:
                raise _bad(f"a 'similar' claim needs a margin > 0, got {margin!r}", path,
                           f"{where}.margin")  # fmt: skip
            margin = float(margin)
        elif margin is not None:
            raise _bad("a margin belongs to direction = 'similar' only", path,
                       f"{where}.margin")  # fmt: skip
        if got["lhs"] in rhs:
            raise _bad(f"lhs {got['lhs']!r} is also in rhs", path, f"{where}.rhs")
        known = None if values is None else values.get(got["by"])
        if known is not None:
            for side, vals in (("lhs", [got["lhs"]]), ("rhs", rhs)):
                for v in vals:
                    if v not in known:
                        raise _bad(
                            f"{v!r} is not a value of {got['by']} in this study (values: "
                            f"{', '.join(sorted(map(str, known))) or 'none'})",
                            path,
                            f"{where}.{side}",
                        )
        out.append(
            Claim(
                name,
                got["lhs"],
                tuple(rhs),
                got["metric"],
                got["direction"],
                got["by"],
                got["alpha"],
                got["epoch"],
                margin,
                got["description"],
            )  # fmt: skip
        )
    return tuple(out)


def key_values(doc: dict) -> dict[str, set]:
    """Study key -> every value the file gives it (top level, tiers, sweeps, variants,
    per_rule tables), plus the variant names under ``variant`` and the defaults."""
    out: dict[str, set] = {k: {v} for k, v in DEFAULTS.items() if not isinstance(v, list)}
    out["variant"] = set(doc.get("variants", {}) or {})

    def add(key: str, v: Any) -> None:
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, str | int | float) and not isinstance(x, bool):
                out.setdefault(key, set()).add(x)

    def walk(table: dict, prefix: str, strip: bool) -> None:
        for k, v in table.items():
            if k == "claims" and not prefix:
                continue
            if isinstance(v, dict):
                if strip and k in ("sweep",):
                    walk(v, prefix, False)
                elif strip and k in ("variants", "per_rule", "tiers"):
                    for sub in v.values():
                        if isinstance(sub, dict):
                            walk(sub, prefix, k == "tiers")
                else:
                    walk(v, f"{prefix}{k}.", False)
            else:
                add(prefix + k, v)

    walk(doc, "", True)
    return out


def study_claims(name: str) -> tuple[str, tuple[Claim, ...]] | None:
    """The claims of the catalog study ``name``, checked, with the study file's path;
    ``None`` when no study file has that name (the runs came from elsewhere).

    Raises
    ------
    ConfigError
        The file cannot be read, or a claim is malformed (naming ``claims.NAME.key``).
    """
    from analogebl.catalog import find_entry, read_toml

    try:
        path = Path(find_entry("studies", name))
    except ConfigError:
        return None
    doc = read_toml(path)
    check_document(doc, path)
    return str(path), parse_claims(doc.get("claims", {}), path, key_values(doc))
