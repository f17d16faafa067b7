"""The optimizer comparison (``mep_optimizers_*`` studies): table and figures from run files.

A *row* gathers the runs of one optimizer setting: the run's ``variant`` when the study
defines variants, else ``optimizer`` + ``rule``. When a row holds runs at several learning
rates (a tuning grid), the rate with the lowest mean final *validation* error is selected
(never the test error) and the row reports that rate's runs; without a validation metric
every rate is listed as its own row.

Columns: test accuracy mean ± sample std over seeds (%), train accuracy, validation accuracy
(when recorded), seconds per epoch (training + evaluation), milliseconds per training step,
and the relative change ``||W_final - W_init|| / ||W_init||`` of every coupling (does every
layer learn?). Rows whose key is one of the MEP benchmark's names also show the accuracy
the MEP README published (``seed_systems.md`` §1a), for comparison.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from analogebl.reporting.runs import RunRecord, rule_name

__all__ = [
    "MEP_PUBLISHED",
    "OptimizerRow",
    "is_comparison",
    "optimizer_figures",
    "optimizer_rows",
    "optimizers_csv",
    "optimizers_markdown",
]

#: Test accuracy (%) published by the MEP benchmark for its rows (seed 000).
MEP_PUBLISHED = {
    "sgd": 90.64,
    "adam": 93.56,
    "muon": 90.61,
    "smep": 80.75,
    "local_ep": 81.80,
    "natural_ep": 83.90,
    "eqprop": 67.45,
    "sdmep": 73.06,
}
ORDER = ("sgd", "adam", "adamw", "muon", "smep", "local_ep", "natural_ep", "eqprop", "sdmep")


def is_comparison(rows: list[OptimizerRow]) -> bool:
    """Whether the rows compare optimizers or study variants (the table applies)."""
    return len({row.key for row in rows}) > 1 and (
        len({row.optimizer for row in rows}) > 1
        or any(r.meta.get("variant") for row in rows for r in row.runs)
    )


def _key(r: RunRecord) -> str:
    v = str(r.meta.get("variant", "") or "")
    return v or f"{r.meta.get('optimizer', '?')}+{r.rule}"


def _mean_std(v: list[float]) -> tuple[float, float]:
    a = np.asarray(v, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else math.nan


@dataclass(frozen=True)
class OptimizerRow:
    """One optimizer setting's runs (one learning rate) and their summary numbers."""

    key: str
    optimizer: str
    rule: str
    lr: float
    runs: tuple[RunRecord, ...]
    selected_from: tuple[float, ...]  # the grid of rates it was selected from (or ())

    def _final(self, metric: str) -> list[float]:
        return [
            float(r.metrics[metric][-1])
            for r in self.runs
            if metric in r.metrics and len(r.metrics[metric])
        ]

    def accuracy(self, metric: str) -> tuple[float, float]:
        """Mean and std (%) of ``100 (1 - final error)`` over the runs."""
        v = self._final(metric)
        return _mean_std([100.0 * (1.0 - e) for e in v]) if v else (math.nan, math.nan)

    def best_by_validation(self) -> tuple[float, float]:
        """Test accuracy (%) at each run's epoch of lowest validation error: mean, std."""
        v = []
        for r in self.runs:
            if "val_error" in r.metrics and len(r.metrics["val_error"]):
                i = int(np.argmin(r.metrics["val_error"]))
                v.append(100.0 * (1.0 - float(r.metrics["test_error"][i])))
        return _mean_std(v) if v else (math.nan, math.nan)

    def seconds_per_epoch(self) -> float:
        v = [float(np.mean(r.metrics["seconds"])) for r in self.runs if "seconds" in r.metrics]
        return float(np.mean(v)) if v else math.nan

    def ms_per_step(self) -> float:
        v = [
            1e3 * float(np.mean(r.metrics["seconds_per_step"]))
            for r in self.runs
            if "seconds_per_step" in r.metrics
        ]
        return float(np.mean(v)) if v else math.nan

    def rel_change(self) -> dict[str, float]:
        """Mean final relative weight change per coupling."""
        out: dict[str, list[float]] = defaultdict(list)
        for r in self.runs:
            for k, v in r.metrics.items():
                if k.startswith("rel_change_") and len(v):
                    out[k[len("rel_change_") :]].append(float(v[-1]))
        return {k: float(np.mean(v)) for k, v in sorted(out.items())}


def optimizer_rows(runs: list[RunRecord]) -> list[OptimizerRow]:
    """Group runs into rows (see the module docstring); runs without a finished epoch are
    left out."""
    groups: dict[str, dict[float, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.epochs_done:
            groups[_key(r)][float(r.meta.get("lr", math.nan))].append(r)
    rows = []
    for key in sorted(groups, key=lambda k: (ORDER.index(k) if k in ORDER else len(ORDER), k)):
        by_lr = groups[key]
        chosen = list(by_lr)
        grid: tuple[float, ...] = ()
        if len(by_lr) > 1 and all("val_error" in r.metrics for rs in by_lr.values() for r in rs):
            val = {
                lr: np.mean([r.metrics["val_error"][-1] for r in rs]) for lr, rs in by_lr.items()
            }
            chosen, grid = [min(val, key=val.get)], tuple(sorted(by_lr))
        for lr in sorted(chosen):
            rs = sorted(by_lr[lr], key=lambda r: (r.seed, str(r.path)))
            rows.append(
                OptimizerRow(
                    key, str(rs[0].meta.get("optimizer", "?")), rs[0].rule, lr, tuple(rs), grid
                )
            )
    return rows


def _fmt(m: float, s: float) -> str:
    if math.isnan(m):
        return "–"
    return f"{m:.2f} ± {s:.2f}" if not math.isnan(s) else f"{m:.2f} ± –"


def optimizers_markdown(rows: list[OptimizerRow]) -> str:
    """The comparison table as Markdown (empty string without rows)."""
    if not rows:
        return ""
    layers = sorted({k for row in rows for k in row.rel_change()})
    has_val = any(row._final("val_error") for row in rows)
    head = ["row", "rule", "optimizer", "lr", "n", "test acc. %", "train acc. %"]
    head += ["val. acc. %", "test acc. % at best val. epoch"] if has_val else []
    head += ["s / epoch", "ms / step"] + [f"Δ{k} rel." for k in layers]
    published = any(row.key in MEP_PUBLISHED for row in rows)
    head += ["published %"] if published else []
    out = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join([":--"] * 3 + ["--:"] * (len(head) - 3)) + "|",
    ]
    for row in rows:
        lr = f"{row.lr:g}" + (
            " (sel. on val. from " + ", ".join(f"{v:g}" for v in row.selected_from) + ")"
            if row.selected_from
            else ""
        )
        cells = [
            row.key,
            rule_name(row.rule),
            row.optimizer,
            lr,
            str(len(row.runs)),
            _fmt(*row.accuracy("test_error")),
            _fmt(*row.accuracy("train_error")),
        ]
        cells += (
            [_fmt(*row.accuracy("val_error")), _fmt(*row.best_by_validation())] if has_val else []
        )
        rc = row.rel_change()
        cells += [f"{row.seconds_per_epoch():.1f}", f"{row.ms_per_step():.1f}"]
        cells += [f"{rc[k]:.3f}" if k in rc else "–" for k in layers]
        cells += (
            [f"{MEP_PUBLISHED[row.key]:.2f}" if row.key in MEP_PUBLISHED else "–"]
            if published
            else []
        )
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def optimizers_csv(rows: list[OptimizerRow]) -> str:
    """One CSV line per row (accuracies in %, NaN fields empty)."""
    layers = sorted({k for row in rows for k in row.rel_change()})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "row",
            "rule",
            "optimizer",
            "lr",
            "n",
            "test_mean",
            "test_std",
            "train_mean",
            "train_std",
            "val_mean",
            "val_std",
            "best_val_test_mean",
            "best_val_test_std",
            "seconds_per_epoch",
            "ms_per_step",
            *[f"rel_change_{k}" for k in layers],
            "published",
        ]
    )

    def f(x: float) -> str:
        return "" if math.isnan(x) else f"{x:.6g}"

    for row in rows:
        rc = row.rel_change()
        w.writerow(
            [
                row.key,
                row.rule,
                row.optimizer,
                f"{row.lr:g}",
                len(row.runs),
                *map(f, row.accuracy("test_error")),
                *map(f, row.accuracy("train_error")),
                *map(f, row.accuracy("val_error")),
                *map(f, row.best_by_validation()),
                f(row.seconds_per_epoch()),
                f(row.ms_per_step()),
                *[f(rc.get(k, math.nan)) for k in layers],
                f(MEP_PUBLISHED.get(row.key, math.nan)),
            ]
        )
    return buf.getvalue()


def optimizer_figures(rows: list[OptimizerRow], save) -> None:
    """Training curves (test accuracy per epoch, mean over seeds) and time per step.

    ``save(fig, *name_parts)`` writes a figure (the report's atomic writer).
    """
    from analogebl.reporting.figures import _figure

    if not rows:
        return
    fig = _figure(6.5, 4.2)
    ax = fig.add_subplot()
    for row in rows:
        curves = [100.0 * (1.0 - r.metrics["test_error"]) for r in row.runs]
        n = min(len(c) for c in curves)
        mean = np.mean([c[:n] for c in curves], axis=0)
        ax.plot(np.arange(1, n + 1), mean, marker=".", label=f"{row.key} (n={len(curves)})")
    ax.set(
        xlabel="epoch",
        ylabel="test accuracy (%)",
        title="optimizers: test accuracy, mean over seeds",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save(fig, "optimizers", "curves")
    fig = _figure(6.5, 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    ax.bar(x, [row.ms_per_step() for row in rows])
    ax.set_xticks(x, [row.key for row in rows], rotation=30, ha="right")
    ax.set(ylabel="ms per training step", title="time per training step (mean over runs)")
    ax.grid(alpha=0.3, axis="y")
    save(fig, "optimizers", "time")
    lip = [row for row in rows if all("lipschitz_mean" in r.metrics for r in row.runs)]
    if lip:
        fig = _figure(6.5, 4.2)
        ax = fig.add_subplot()
        for row in lip:
            curves = [r.metrics["lipschitz_mean"] for r in row.runs]
            n = min(len(c) for c in curves)
            ax.plot(
                np.arange(1, n + 1),
                np.mean([c[:n] for c in curves], axis=0),
                marker=".",
                label=row.key,
            )
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set(
            xlabel="epoch",
            ylabel="||dPhi/dh||_2 at the free equilibrium (mean)",
            title="Lipschitz constant of the fixed-point map",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, "lipschitz")
