"""What may be pooled: cohorts of comparable runs, duplicated seeds, configuration labels.

A report never averages runs that are not repeats of one experiment:

* runs of different *cohorts* never meet in a table, a figure or a claim. A cohort is one
  (study, tier, planned epochs, training-set size, test-set size, validation-set size), from
  ``/meta`` (``"?"`` where a file does not record a value);
* inside a cohort, the runs of one table cell (profile, rule, dataset) that differ in any
  other configuration value (``/meta/config_toml``, apart from the seed and the keys that do
  not change results, :data:`IGNORED_KEYS`) become separate cells, labelled with the
  values that differ (``variant looped_sn``, ``rule.beta=0.1``);
* two files of the same configuration and the same seed (a run copied twice into the
  folder) are one run: :func:`dedupe` keeps one of them (the complete one with most epochs,
  then the first by path) and reports the others.
"""

from __future__ import annotations

import math
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from analogebl.reporting.runs import RunRecord

__all__ = ["IGNORED_KEYS", "Cohort", "cohort_of", "config_of", "config_labels", "dedupe"]

#: configuration keys that do not change a run's results (or are the seed itself)
IGNORED_KEYS = frozenset(
    {"seed", "threads", "checkpoint_minutes", "description", "default_tier", "eval_batch_size"}
)


def _meta_value(run: RunRecord, key: str) -> Any:
    v = run.meta.get(key)
    if v is None or v == "":
        return "?"
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


@dataclass(frozen=True)
class Cohort:
    """Runs that may be compared and pooled: one study, tier, epoch budget and data size.

    Parameters
    ----------
    study, tier : str
        ``/meta`` study and tier.
    epochs : int or str
        Planned epochs (``/meta/epochs_planned``).
    train_size, test_size, validation_size : int or str
        Images used (``/meta``); ``"?"`` when the file does not record them.
    """

    study: str
    tier: str
    epochs: Any
    train_size: Any
    test_size: Any
    validation_size: Any

    @property
    def smoke(self) -> bool:
        """Whether this is the ``smoke`` tier (seconds-long runs for tests: not a result)."""
        return self.tier == "smoke"

    @property
    def epochs_text(self) -> str:
        """``"1 epoch"`` / ``"5 epochs"``."""
        return f"{self.epochs} epoch" + ("" if str(self.epochs) == "1" else "s")

    def describe(self) -> str:
        """One line naming what the cohort's runs share."""
        val = f", {self.validation_size} validation" if self.validation_size not in ("?", 0) else ""
        return (
            f"study `{self.study}`, tier `{self.tier}`, {self.epochs_text}, "
            f"{self.train_size} training / {self.test_size} test images{val}"
        )

    def slug(self) -> str:
        """A short name for file names (``seven_rules_mnist-cpu-e5-n3000``)."""
        return f"{self.study}-{self.tier}-e{self.epochs}-n{self.train_size}"


def cohort_of(run: RunRecord) -> Cohort:
    """The :class:`Cohort` of a run, from its ``/meta`` attributes."""
    return Cohort(
        str(run.meta.get("study", "") or "?"),
        str(run.meta.get("tier", "") or "?"),
        *(
            _meta_value(run, k)
            for k in ("epochs_planned", "train_size", "test_size", "validation_size")
        ),
    )


def _flat(doc: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = tuple(v) if isinstance(v, list) else v
    return out


def config_of(run: RunRecord, *, with_seed: bool = False) -> dict[str, Any]:
    """The run's recorded configuration as flat dotted keys, without :data:`IGNORED_KEYS`
    (the seed kept when ``with_seed``); empty when the file records none or it does not
    parse (then only ``/meta`` tells runs apart)."""
    try:
        flat = _flat(tomllib.loads(run.config_toml or ""))
    except tomllib.TOMLDecodeError:
        return {}
    drop = IGNORED_KEYS - ({"seed"} if with_seed else set())
    return {k: v for k, v in flat.items() if k not in drop}


def _identity(run: RunRecord) -> tuple:
    """What makes two files the same run: cohort, seed, cell keys and configuration."""
    beta = run.beta
    return (
        cohort_of(run),
        run.seed,
        run.rule,
        run.dataset,
        run.profile,
        str(run.meta.get("variant", "")),
        "nan" if math.isnan(beta) else beta,
        tuple(sorted(config_of(run, with_seed=True).items(), key=lambda kv: kv[0])),
    )


def dedupe(runs: list[RunRecord]) -> tuple[list[RunRecord], list[tuple[RunRecord, RunRecord]]]:
    """Count every (configuration, seed) once.

    Parameters
    ----------
    runs : list of RunRecord

    Returns
    -------
    kept : list of RunRecord
        One run per identity, in the input order.
    dropped : list of (RunRecord, RunRecord)
        Each left-out file with the file kept in its place. The kept one is the complete
        run with most finished epochs, then the first by path.
    """
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for r in runs:
        groups[_identity(r)].append(r)
    best = {
        k: min(rs, key=lambda r: (not r.complete, -r.epochs_done, str(r.path)))
        for k, rs in groups.items()
    }
    keep_ids = {id(r) for r in best.values()}
    kept = [r for r in runs if id(r) in keep_ids]
    dropped = [(r, best[_identity(r)]) for r in runs if id(r) not in keep_ids]
    return kept, dropped


def _text(v: Any) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(_text(x) for x in v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


def config_labels(runs: list[RunRecord], exclude: frozenset = frozenset()) -> dict[int, str]:
    """Labels telling apart the configurations among ``runs`` (one cell's runs).

    Parameters
    ----------
    runs : list of RunRecord
        Runs of one cohort and one (profile, rule, dataset).
    exclude : frozenset of str
        Keys not to tell apart (beyond :data:`IGNORED_KEYS`).

    Returns
    -------
    dict
        ``id(run)`` -> label: ``""`` for every run when they share one configuration, else
        ``variant NAME`` when variants differ, followed by the other keys whose values
        differ (``rule.beta=0.1``).
    """
    configs = {id(r): config_of(r) for r in runs}
    variants = {id(r): str(r.meta.get("variant", "") or "") for r in runs}
    keys = sorted({k for c in configs.values() for k in c} - set(exclude) - {"variant"})
    differing = [k for k in keys if len({configs[i].get(k, "–") for i in configs}) > 1]
    split_variant = len(set(variants.values())) > 1
    labels = {}
    for r in runs:
        i = id(r)
        parts = [f"variant {variants[i]}"] if split_variant else []
        if split_variant:  # keys the variant itself sets are named by the variant
            same_variant = [configs[id(o)] for o in runs if variants[id(o)] == variants[i]]
            ks = [k for k in differing if len({c.get(k, "–") for c in same_variant}) > 1]
        else:
            ks = differing
        parts += [f"{k}={_text(configs[i].get(k, '–'))}" for k in ks]
        labels[i] = ", ".join(parts)
    return labels
