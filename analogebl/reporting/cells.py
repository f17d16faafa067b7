"""Cells of the paper's tables: the runs of one (profile, rule, dataset), summarized, and
their CSV form (the rendering into Markdown/LaTeX is :mod:`analogebl.reporting.tables`)."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from analogebl.reporting.runs import (
    DATASET_ORDER,
    PROFILE_ORDER,
    RULE_ORDER,
    RunRecord,
    dataset_name,
    order_keys,
    rule_name,
)

__all__ = ["CSV_COLUMNS", "CellStats", "summarize", "table_csv"]


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
    """

    profile: str
    rule: str
    dataset: str
    test: tuple[float, ...]
    train: tuple[float, ...]
    seeds: tuple[int, ...]
    n_incomplete: int
    betas: tuple[float, ...]

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
    def incomplete(self) -> bool:
        """Whether any run of the cell is incomplete."""
        return self.n_incomplete > 0

    @property
    def mixed_beta(self) -> bool:
        """Whether the cell pools runs with different β."""
        return len(self.betas) > 1


def summarize(runs: list[RunRecord]) -> list[CellStats]:
    """Group runs by (profile, rule, dataset) and reduce each group to a :class:`CellStats`.

    Parameters
    ----------
    runs : list of RunRecord
        As returned by :func:`~analogebl.reporting.load_runs`.

    Returns
    -------
    list of CellStats
        In canonical order: profiles (``none`` first, then by name), rules, datasets.
        Runs with no finished epoch are left out.
    """
    groups: dict[tuple[str, str, str], list[RunRecord]] = defaultdict(list)
    for r in runs:
        if r.epochs_done:
            groups[(r.profile, r.rule, r.dataset)].append(r)
    rank_p = {k: i for i, k in enumerate(order_keys({k[0] for k in groups}, PROFILE_ORDER))}
    rank_r = {k: i for i, k in enumerate(order_keys({k[1] for k in groups}, RULE_ORDER))}
    rank_d = {k: i for i, k in enumerate(order_keys({k[2] for k in groups}, DATASET_ORDER))}
    out = []
    for key in sorted(groups, key=lambda k: (rank_p[k[0]], rank_r[k[1]], rank_d[k[2]])):
        rs = sorted(groups[key], key=lambda r: (r.seed, str(r.path)))
        betas = sorted({r.beta for r in rs if math.isfinite(r.beta)})
        out.append(
            CellStats(
                *key,
                test=tuple(100.0 * r.final_test_error for r in rs),
                train=tuple(100.0 * r.final_train_error for r in rs),
                seeds=tuple(r.seed for r in rs),
                n_incomplete=sum(not r.complete for r in rs),
                betas=tuple(betas),
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
            ]
        )
    return buf.getvalue()
