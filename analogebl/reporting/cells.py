"""Cells of the paper's tables: the runs of one cohort and (profile, rule, dataset, configuration),
summarized, and their CSV form (the rendering into Markdown/LaTeX is
:mod:`analogebl.reporting.tables`; what may be pooled is :mod:`analogebl.reporting.pooling`)."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from analogebl.reporting.pooling import Cohort, cohort_of, config_labels, dedupe
from analogebl.reporting.runs import (
    DATASET_ORDER,
    PROFILE_ORDER,
    RULE_ORDER,
    RunRecord,
    dataset_name,
    order_keys,
    rule_name,
)

__all__ = ["CSV_COLUMNS", "CellStats", "best_val_test_error", "summarize", "table_csv"]


CSV_COLUMNS = (
    "profile",
    "rule",
    "dataset",
    "rule_name",
    "dataset_name",
    "n",
    "seeds",
    "test_mean_pct",
    "test_std_pct",
    "train_mean_pct",
    "train_std_pct",
    "n_incomplete",
    "betas",
    "study",
    "tier",
    "epochs",
    "train_size",
    "test_size",
    "config",
    "best_val_test_mean_pct",
    "best_val_test_std_pct",
)


@dataclass(frozen=True)
class CellStats:
    """Final errors of the runs of one (profile, rule, dataset).

    Parameters
    ----------
    profile, rule, dataset : str
        The cell's keys (raw ``/meta`` values).
    test, train : tuple of float
        Final test / train error in percent, one per run (runs sorted by seed, then path).
    seeds : tuple of int
        The runs' seeds, in the same order.
    n_incomplete : int
        How many of the runs have not finished all planned epochs.
    betas : tuple of float
        The distinct finite β values of the runs, sorted (empty when no run has one).
    cohort : Cohort, optional
        Study, tier, epochs and data sizes the runs share (:mod:`~analogebl.reporting.pooling`).
    label : str
        What sets this cell's configuration apart from other cells of the same (profile,
        rule, dataset) in its cohort (``""`` when nothing does).
    best_val : tuple of float
        Test error (%) at each run's best-validation epoch (lowest ``val_error``; the first
        such epoch); empty when the runs record no ``val_error``.
    """

    profile: str
    rule: str
    dataset: str
    test: tuple[float, ...]
    train: tuple[float, ...]
    seeds: tuple[int, ...]
    n_incomplete: int
    betas: tuple[float, ...]
    cohort: Cohort | None = None
    label: str = ""
    best_val: tuple[float, ...] = ()

    @property
    def n(self) -> int:
        """Number of runs (seeds) in the cell."""
        return len(self.test)

    @staticmethod
    def _std(v) -> float:
        return float(np.std(v, ddof=1)) if len(v) > 1 else math.nan

    @property
    def test_mean(self) -> float:
        """Mean final test error (%)."""
        return float(np.mean(self.test))

    @property
    def test_std(self) -> float:
        """Sample std (ddof=1) of the final test error (%); NaN for one run."""
        return self._std(self.test)

    @property
    def train_mean(self) -> float:
        """Mean final train error (%)."""
        return float(np.mean(self.train))

    @property
    def train_std(self) -> float:
        """Sample std (ddof=1) of the final train error (%); NaN for one run."""
        return self._std(self.train)

    @property
    def best_mean(self) -> float:
        """Mean test error (%) at the best-validation epoch; NaN without ``val_error``."""
        return float(np.mean(self.best_val)) if self.best_val else math.nan

    @property
    def best_std(self) -> float:
        """Sample std of the test error (%) at the best-validation epoch."""
        return self._std(self.best_val)

    @property
    def incomplete(self) -> bool:
        """Whether any run of the cell is incomplete."""
        return self.n_incomplete > 0

    @property
    def mixed_beta(self) -> bool:
        """Whether the cell pools runs with different β."""
        return len(self.betas) > 1


def best_val_test_error(run: RunRecord) -> float:
    """Test error (fraction) at the run's best-validation epoch (lowest ``val_error``, the
    first on ties); NaN when the run records no finite ``val_error``."""
    val = run.metrics.get("val_error")
    if val is None or not len(val) or not np.isfinite(val).any():
        return math.nan
    return float(run.metrics["test_error"][int(np.nanargmin(val))])


def _cohort_key(c: Cohort) -> tuple:
    return tuple(str(x) for x in (c.study, c.tier, c.epochs, c.train_size, c.test_size))


def summarize(runs: list[RunRecord]) -> list[CellStats]:
    """Group runs into cells and reduce each to a :class:`CellStats`.

    A cell is one cohort (study, tier, epochs, data sizes), profile, rule, dataset and
    configuration (:mod:`~analogebl.reporting.pooling`): nothing else is pooled. Files that
    hold the same run twice (same configuration and seed) count once.

    Parameters
    ----------
    runs : list of RunRecord
        As returned by :func:`~analogebl.reporting.load_runs`.

    Returns
    -------
    list of CellStats
        In canonical order: cohorts, profiles (``none`` first, then by name), rules,
        datasets, labels. Runs with no finished epoch are left out.
    """
    runs, _ = dedupe(runs)
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for r in runs:
        if r.epochs_done:
            groups[(cohort_of(r), r.profile, r.rule, r.dataset)].append(r)
    rank_p = {k: i for i, k in enumerate(order_keys({k[1] for k in groups}, PROFILE_ORDER))}
    rank_r = {k: i for i, k in enumerate(order_keys({k[2] for k in groups}, RULE_ORDER))}
    rank_d = {k: i for i, k in enumerate(order_keys({k[3] for k in groups}, DATASET_ORDER))}
    out = []
    order = sorted(
        groups, key=lambda k: (_cohort_key(k[0]), rank_p[k[1]], rank_r[k[2]], rank_d[k[3]])
    )
    for key in order:
        labels = config_labels(groups[key])
        by_label: dict[str, list[RunRecord]] = defaultdict(list)
        for r in groups[key]:
            by_label[labels[id(r)]].append(r)
        for label in sorted(by_label):
            rs = sorted(by_label[label], key=lambda r: (r.seed, str(r.path)))
            betas = sorted({r.beta for r in rs if math.isfinite(r.beta)})
            best = [100.0 * best_val_test_error(r) for r in rs]
            out.append(
                CellStats(
                    *key[1:],
                    test=tuple(100.0 * r.final_test_error for r in rs),
                    train=tuple(100.0 * r.final_train_error for r in rs),
                    seeds=tuple(r.seed for r in rs),
                    n_incomplete=sum(not r.complete for r in rs),
                    betas=tuple(betas),
                    cohort=key[0],
                    label=label,
                    best_val=tuple(best) if all(math.isfinite(b) for b in best) else (),
                )
            )
    return out


# ---------------------------------------------------------------- grids and cell text


def _num(x: float) -> str:
    return "" if math.isnan(x) else repr(float(x))


def table_csv(cells: list[CellStats]) -> str:
    """One CSV row per (profile, rule, dataset), columns :data:`CSV_COLUMNS`.

    Errors are in percent and written with ``repr`` so that they parse back exactly; a std
    of a single-seed cell is an empty field. ``seeds`` and ``betas`` are space-separated.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for c in cells:
        w.writerow(
            [
                c.profile,
                c.rule,
                c.dataset,
                rule_name(c.rule),
                dataset_name(c.dataset),
                c.n,
                " ".join(str(s) for s in c.seeds),
                _num(c.test_mean),
                _num(c.test_std),
                _num(c.train_mean),
                _num(c.train_std),
                c.n_incomplete,
                " ".join(repr(b) for b in c.betas),
                *(
                    ("", "", "", "", "")
                    if c.cohort is None
                    else (
                        c.cohort.study,
                        c.cohort.tier,
                        c.cohort.epochs,
                        c.cohort.train_size,
                        c.cohort.test_size,
                    )
                ),
                c.label,
                _num(c.best_mean),
                _num(c.best_std),
            ]
        )
    return buf.getvalue()
