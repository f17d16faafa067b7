"""Figures from run files (matplotlib, Agg): training curves, error bars by rule, error vs
beta, rules x profiles heat map. A figure is made only when the runs hold data for it."""

from __future__ import annotations

import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

__all__ = ["make_figures"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def make_figures(rows, cells, out: Path) -> list[Path]:
    """Write the figures the data allows into ``out``; returns their paths."""
    from analogebl.reporting.tables import (
        DATASET_NAMES,
        RULE_NAMES,
        _axes,
    )

    plt = _plt()
    made = []
    profiles, rules, datasets = _axes(cells)
    for d in datasets:
        for p in profiles:
            curves = defaultdict(list)
            for r in rows:
                if r.dataset == d and r.profile == p and len(r.test_error) > 1:
                    curves[r.rule].append(r.test_error * 100)
            if not curves:
                continue
            fig, ax = plt.subplots(figsize=(6, 4))
            for rule in [x for x in rules if x in curves]:
                n = min(len(c) for c in curves[rule])
                a = np.stack([c[:n] for c in curves[rule]])
                ep = np.arange(1, n + 1)
                ax.plot(ep, a.mean(0), label=RULE_NAMES.get(rule, rule))
                if len(a) > 1:
                    ax.fill_between(ep, a.min(0), a.max(0), alpha=0.2)
            ax.set(xlabel="epoch", ylabel="test error (%)",
                   title=f"{DATASET_NAMES.get(d, d)}, profile {p}")
            ax.legend(fontsize=8)
            made.append(_save(fig, out / f"curves_{d}_{p}.png"))
            plt.close(fig)
    for p in profiles:
        for d in datasets:
            present = [r for r in rules if (p, r, d) in cells]
            if len(present) < 2:
                continue
            fig, ax = plt.subplots(figsize=(6, 3.5))
            ms = [cells[(p, r, d)].test_mean_std for r in present]
            err = [0 if math.isnan(s) else s for _, s in ms]
            ax.bar([RULE_NAMES.get(r, r) for r in present], [m for m, _ in ms], yerr=err,
                   capsize=3)
            ax.set(ylabel="final test error (%)", title=f"{DATASET_NAMES.get(d, d)}, {p}")
            made.append(_save(fig, out / f"bars_{d}_{p}.png"))
            plt.close(fig)
    by_beta = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if len(r.test_error) and not math.isnan(r.beta):
            by_beta[(r.dataset, r.profile, r.rule)][r.beta].append(r.final_test * 100)
    beta_series = {k: v for k, v in by_beta.items() if len(v) > 1}
    if beta_series:
        fig, ax = plt.subplots(figsize=(6, 4))
        for (d, p, rule), v in sorted(beta_series.items()):
            bs = sorted(v)
            ax.plot(bs, [np.mean(v[b]) for b in bs], "o-",
                    label=f"{RULE_NAMES.get(rule, rule)} {DATASET_NAMES.get(d, d)} {p}")
        ax.set(xscale="log", xlabel="beta", ylabel="final test error (%)")
        ax.legend(fontsize=7)
        made.append(_save(fig, out / "error_vs_beta.png"))
        plt.close(fig)
    if len(profiles) > 1:
        for d in datasets:
            grid = np.full((len(rules), len(profiles)), np.nan)
            for i, r in enumerate(rules):
                for j, p in enumerate(profiles):
                    if (p, r, d) in cells:
                        grid[i, j] = cells[(p, r, d)].test_mean_std[0]
            if np.isnan(grid).all():
                continue
            fig, ax = plt.subplots(figsize=(1.2 * len(profiles) + 2, 0.45 * len(rules) + 1.5))
            im = ax.imshow(grid, cmap="viridis_r", aspect="auto")
            ax.set_xticks(range(len(profiles)), profiles, rotation=30, ha="right")
            ax.set_yticks(range(len(rules)), [RULE_NAMES.get(r, r) for r in rules])
            for i in range(len(rules)):
                for j in range(len(profiles)):
                    if not np.isnan(grid[i, j]):
                        ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center",
                                color="w", fontsize=8)
            fig.colorbar(im, label="test error (%)")
            ax.set_title(f"rules x profiles, {DATASET_NAMES.get(d, d)}")
            made.append(_save(fig, out / f"heatmap_{d}.png"))
            plt.close(fig)
    return made
