"""Figures from run records (matplotlib, Agg canvas; no pyplot, nothing shown).

A figure is made only when the runs hold the data it needs:

* ``curves_<profile>_<dataset>.png`` – test error vs epoch, one line per rule (mean over
  seeds, band ± sample std where at least two seeds reached that epoch); made when a run of
  that (profile, dataset) has at least two finished epochs.
* ``bars_<profile>_<dataset>.png`` – final test error by rule, error bars = sample std over
  seeds (none for a single seed); made when a run of that (profile, dataset) finished an epoch.
* ``beta_<profile>_<dataset>.png`` – final test error vs β, one line per rule that was run
  with at least two distinct finite β values.
* ``heatmap_<dataset>.png`` – rules × profiles, annotated with the mean final test error;
  made when the dataset was run under at least two profiles.
* ``memory_depth.png`` – peak memory of one training step vs the number of hidden layers,
  one line per rule; made from runs recorded with ``measure_memory`` at two or more depths.
"""

from __future__ import annotations

import io
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analogebl.recording.atomic import atomic_write_bytes
from analogebl.reporting.runs import (
    DATASET_ORDER,
    PROFILE_ORDER,
    RULE_ORDER,
    RunRecord,
    dataset_name,
    order_keys,
    rule_name,
)
from analogebl.reporting.tables import CellStats, summarize

__all__ = ["make_figures"]

_DPI = 110


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _figure(w: float, h: float) -> Figure:
    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


class _Writer:
    """Saves figures atomically under unique, filesystem-safe names."""

    def __init__(self, out_dir: Path, prefix: str = "", names: set[str] | None = None):
        self.out_dir = out_dir
        self.prefix = prefix
        self.written: list[Path] = []
        self._names: set[str] = set() if names is None else names

    def save(self, fig: Figure, *parts: str) -> None:
        stem = "_".join(_slug(p) for p in ((self.prefix,) if self.prefix else ()) + parts)
        name, i = stem, 1
        while name in self._names:
            i += 1
            name = f"{stem}-{i}"
        self._names.add(name)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", metadata={"Software": None})
        self.written.append(atomic_write_bytes(self.out_dir / f"{name}.png", buf.getvalue()))


def _curves(w: _Writer, runs: list[RunRecord], profile: str, dataset: str) -> None:
    by_rule: dict[str, list[np.ndarray]] = defaultdict(list)
    for r in runs:
        if r.epochs_done:
            by_rule[r.rule].append(100.0 * r.metrics["test_error"])
    if not any(len(c) > 1 for cs in by_rule.values() for c in cs):
        return
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    for rule in order_keys(by_rule, RULE_ORDER):
        curves = by_rule[rule]
        a = np.full((len(curves), max(len(c) for c in curves)), np.nan)
        for i, c in enumerate(curves):
            a[i, : len(c)] = c
        count = np.sum(~np.isnan(a), axis=0)
        mean = np.nanmean(a, axis=0)
        ep = np.arange(1, a.shape[1] + 1)
        (line,) = ax.plot(
            ep,
            mean,
            marker="." if len(ep) < 30 else None,
            label=f"{rule_name(rule)} (n={len(curves)})",
        )
        two = count >= 2
        if two.any():
            std = np.zeros_like(mean)
            std[two] = np.nanstd(a[:, two], axis=0, ddof=1)
            ax.fill_between(
                ep[two],
                (mean - std)[two],
                (mean + std)[two],
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(
        xlabel="epoch",
        ylabel="test error (%)",
        title=f"{dataset_name(dataset)}, profile {profile}: mean ± std over seeds",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    w.save(fig, "curves", profile, dataset)


def _bars(w: _Writer, cells: list[CellStats], profile: str, dataset: str) -> None:
    sel = [c for c in cells if c.profile == profile and c.dataset == dataset]
    if not sel:
        return
    fig = _figure(max(3.0, 0.8 * len(sel) + 1.5), 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(sel))
    err = [0.0 if c.n < 2 else c.test_std for c in sel]
    ax.bar(x, [c.test_mean for c in sel], yerr=err, capsize=4, color="tab:blue", alpha=0.8)
    labels = [f"{rule_name(c.rule)}{'†' if c.incomplete else ''}\nn={c.n}" for c in sel]
    ax.set_xticks(x, labels, fontsize=8)
    ax.set(ylabel="final test error (%), mean ± std", title=f"{dataset_name(dataset)}, {profile}")
    ax.grid(axis="y", alpha=0.3)
    w.save(fig, "bars", profile, dataset)


def _beta(w: _Writer, runs: list[RunRecord], profile: str, dataset: str) -> None:
    table: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.epochs_done and math.isfinite(r.beta):
            table[r.rule][r.beta].append(100.0 * r.final_test_error)
    rules = [k for k in order_keys(table, RULE_ORDER) if len(table[k]) > 1]
    if not rules:
        return
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    all_b = []
    for rule in rules:
        bs = sorted(table[rule])
        all_b += bs
        vals = [table[rule][b] for b in bs]
        std = [float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for v in vals]
        ax.errorbar(
            bs,
            [float(np.mean(v)) for v in vals],
            yerr=std,
            marker="o",
            capsize=3,
            label=rule_name(rule),
        )
    if min(all_b) > 0:
        ax.set_xscale("log")
    ax.set(
        xlabel="β",
        ylabel="final test error (%)",
        title=f"{dataset_name(dataset)}, profile {profile}: mean ± std over seeds",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    w.save(fig, "beta", profile, dataset)


def _heatmap(w: _Writer, cells: list[CellStats], dataset: str) -> None:
    sel = {(c.rule, c.profile): c for c in cells if c.dataset == dataset}
    profiles = order_keys({k[1] for k in sel}, PROFILE_ORDER)
    if len(profiles) < 2:
        return
    rules = order_keys({k[0] for k in sel}, RULE_ORDER)
    grid = np.full((len(rules), len(profiles)), np.nan)
    for (r, p), c in sel.items():
        grid[rules.index(r), profiles.index(p)] = c.test_mean
    fig = _figure(1.3 * len(profiles) + 2.5, 0.5 * len(rules) + 1.8)
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis_r", aspect="auto")
    lo, hi = np.nanmin(grid), np.nanmax(grid)
    ax.set_xticks(range(len(profiles)), profiles, rotation=30, ha="right")
    ax.set_yticks(range(len(rules)), [rule_name(r) for r in rules])
    for (r, p), c in sel.items():
        i, j = rules.index(r), profiles.index(p)
        dark = hi > lo and (c.test_mean - lo) / (hi - lo) > 0.5
        text = f"{c.test_mean:.1f}" + (f"\n±{c.test_std:.1f}" if c.n > 1 else "")
        ax.text(
            j,
            i,
            text + ("†" if c.incomplete else ""),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if dark else "black",
        )
    fig.colorbar(im, ax=ax, label="final test error (%)")
    ax.set_title(f"{dataset_name(dataset)}: rules × hardware profiles")
    w.save(fig, "heatmap", dataset)


def make_figures(
    runs: list[RunRecord],
    out_dir: str | Path,
    cells: list[CellStats] | None = None,
    prefix: str = "",
    names: set[str] | None = None,
) -> list[Path]:
    """Write every figure the runs allow into ``out_dir`` as PNG (each file atomically).

    Parameters
    ----------
    runs : list of RunRecord
        As returned by :func:`~analogebl.reporting.load_runs`.
    out_dir : str or Path
        Existing folder for the PNG files.
    cells : list of CellStats, optional
        ``summarize(runs)``, when the caller already has it.
    prefix : str, optional
        Prepended to every file name (one cohort's figures: ``COHORT_curves_...``).
    names : set of str, optional
        File stems already taken (updated), so that calls never overwrite each other.

    Returns
    -------
    list of Path
        The files written, in a deterministic order (curves, bars, β, heat maps); empty
        when no figure applies.
    """
    out_dir = Path(out_dir)
    cells = summarize(runs) if cells is None else cells
    w = _Writer(out_dir, prefix, names)
    groups: dict[tuple[str, str], list[RunRecord]] = defaultdict(list)
    for r in runs:
        groups[(r.profile, r.dataset)].append(r)
    profiles = order_keys({k[0] for k in groups}, PROFILE_ORDER)
    datasets = order_keys({k[1] for k in groups}, DATASET_ORDER)
    pairs = [(p, d) for p in profiles for d in datasets if (p, d) in groups]
    for p, d in pairs:
        _curves(w, groups[(p, d)], p, d)
    for p, d in pairs:
        _bars(w, cells, p, d)
    for p, d in pairs:
        _beta(w, groups[(p, d)], p, d)
    for d in datasets:
        _heatmap(w, cells, d)
    _memory_depth(w, runs)
    return w.written


def _memory_depth(w: _Writer, runs: list[RunRecord]) -> None:
    """Peak memory of one training step vs the number of hidden layers, one line per rule
    (runs recorded with ``measure_memory``)."""
    pts: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        v = r.metrics.get("peak_step_MB")
        if v is not None and len(v) and "hidden_layers" in r.meta and np.isfinite(v).any():
            pts[r.rule][int(r.meta["hidden_layers"])].append(float(np.nanmax(v)))
    if not any(len(d) > 1 for d in pts.values()):
        return
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    for rule in order_keys(pts, RULE_ORDER):
        depths = sorted(pts[rule])
        ax.plot(depths, [np.mean(pts[rule][d]) for d in depths], marker="o", label=rule_name(rule))
    ax.set(
        xscale="log",
        xlabel="hidden layers",
        ylabel="peak memory of one step (MB)",
        title="memory of a training step vs depth",
    )
    ax.set_xticks(
        sorted({d for p in pts.values() for d in p}),
        [str(d) for d in sorted({d for p in pts.values() for d in p})],
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    w.save(fig, "memory_depth")
