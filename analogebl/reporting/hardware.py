"""What the hardware cost: pulses and energy of the runs made under a device profile.

One row per (profile, rule, dataset) of a cohort, the mean over its runs of the final epoch's
numbers (each run's last finished epoch): test error, pulses per update, the energy of an
update's pulses, of a whole training step (pulses + relaxation reads + converters), of one
inference (the free phase of one example), and the run's total. Runs without a device
profile (no ``pulses`` metric) have no row.

:func:`probe_figure` draws the gradient-fidelity probes
(:mod:`analogebl.diagnostics.probes`) of a cohort's runs, one row of panels per rule: the
cosine of the rule's estimate and of the realised update with the implicit gradient per
coupling and profile, and per layer the contrast ``s2 - s1`` next to the noise floor and the
converter step.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from analogebl.reporting.runs import RULE_ORDER, dataset_name, order_keys, rule_name

__all__ = ["hardware_markdown", "probe_figure"]

#: column title -> (metric, scale, format)
_COLUMNS = {
    "test error %": ("test_error", 100.0, "{:.2f}"),
    "pulses / update": ("pulses_per_update", 1.0, "{:.3g}"),
    "pulse J / update": ("update_J_per_update", 1.0, "{:.3g}"),
    "step J / update": ("train_J_per_update", 1.0, "{:.3g}"),
    "J / inference": ("inference_energy_J", 1.0, "{:.3g}"),
    "total J": ("energy_J", 1.0, "{:.3g}"),
}


def _nanmean(values) -> float:
    """Mean over the finite values; NaN (without NumPy's warning) when there are none: a
    probe that was off, or undefined at every run (e.g. a cosine with a zero gradient)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def _last(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v[-1]) if v.size else float("nan")


def hardware_markdown(runs) -> str:
    """The Markdown table of the hardware cost of ``runs`` (``""`` when none ran on a
    device profile). A figure a run file lacks (an older run) shows as ``–``."""
    groups: dict[tuple[str, str, str], list] = defaultdict(list)
    for r in runs:
        if "pulses" in r.metrics and r.epochs_done:
            groups[(r.profile, r.rule, r.dataset)].append(r)
    if not groups:
        return ""
    rules = order_keys({k[1] for k in groups}, RULE_ORDER)
    keys = sorted(groups, key=lambda k: (k[0], rules.index(k[1]), k[2]))
    out = [
        "#### Hardware cost",
        "",
        "Final epoch, mean over runs. Per update: the pulses, their write energy, and the "
        "whole training step's energy (pulses + relaxation reads + converters); per "
        "inference: one example's free phase; total: the run's training energy.",
        "",
        "| profile | rule | dataset | runs | " + " | ".join(_COLUMNS) + " |",
        "|:--|:--|:--|--:|" + "--:|" * len(_COLUMNS),
    ]
    for k in keys:
        rs = groups[k]
        cells = []
        for metric, scale, fmt in _COLUMNS.values():
            vals = [_last(r.metrics[metric]) for r in rs if metric in r.metrics]
            vals = [v for v in vals if np.isfinite(v)]
            cells.append(fmt.format(scale * float(np.mean(vals))) if vals else "–")
        out.append(
            f"| {k[0]} | {rule_name(k[1])} | {dataset_name(k[2])} | {len(rs)} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(out) + "\n"


def _final(r, key: str) -> float:
    return _last(r.metrics[key]) if key in r.metrics else float("nan")


def probe_figure(runs, save) -> None:
    """Draw the probes of ``runs`` (those recording ``probe_*`` metrics; mean over seeds of
    the final epoch) and hand the figure to ``save(fig, "probes", rule)``, one per rule.
    Nothing is drawn when no run recorded probes."""
    from analogebl.reporting.figures import _figure

    by_rule: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.epochs_done and any(k.startswith("probe_cos_estimate_") for k in r.metrics):
            by_rule[r.rule][r.profile].append(r)
    for rule in order_keys(set(by_rule), RULE_ORDER):
        profiles = sorted(by_rule[rule])
        rs0 = [r for p in profiles for r in by_rule[rule][p]]
        couplings = sorted(
            {
                k[len("probe_cos_estimate_") :]
                for r in rs0
                for k in r.metrics
                if k.startswith("probe_cos_estimate_W")
            }  # fmt: skip
        )
        layers = sorted(
            {
                k[len("probe_noise_rms_") :]
                for r in rs0
                for k in r.metrics
                if k.startswith("probe_noise_rms_")
            },  # fmt: skip
            key=lambda n: (n == "out", n),
        )
        fig = _figure(11.0, 4.0)
        ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        x = np.arange(len(profiles))
        width = 0.8 / max(2 * len(couplings), 1)
        for i, c in enumerate(couplings):
            for j, (what, hatch) in enumerate((("estimate", None), ("realised", "//"))):
                vals = [
                    _nanmean([_final(r, f"probe_cos_{what}_{c}") for r in by_rule[rule][p]])
                    for p in profiles
                ]
                ax1.bar(x + (2 * i + j - len(couplings) + 0.5) * width, vals, width,
                        color=f"C{i}", hatch=hatch, label=f"{c} {what}")  # fmt: skip
        ax1.set_xticks(x, profiles, rotation=30, ha="right")
        ax1.set_ylim(-0.2, 1.0)
        ax1.axhline(0, color="k", lw=0.5)
        ax1.set_ylabel("cosine with the implicit gradient")
        ax1.set_title(f"{rule_name(rule)}: estimate (plain) and realised update (hatched)")
        ax1.legend(fontsize=7, ncol=2)
        width = 0.8 / max(len(layers), 1)
        for i, layer in enumerate(layers):
            snr, lsb = [], []
            for p in profiles:
                rs = by_rule[rule][p]
                c = _nanmean([_final(r, f"probe_contrast_rms_{layer}") for r in rs])
                n = _nanmean([_final(r, f"probe_noise_rms_{layer}") for r in rs])
                q = _nanmean([_final(r, f"probe_lsb_{layer}") for r in rs])
                snr.append(c / n if n > 0 else np.nan)
                lsb.append(c / q if q > 0 else np.nan)
            pos = x + (i - (len(layers) - 1) / 2) * width
            ax2.bar(pos, snr, width, color=f"C{i}", label=f"{layer}: contrast / noise floor")
            ax2.plot(pos, lsb, "v", color=f"C{i}", ms=6, label=f"{layer}: contrast / LSB")
        ax2.axhline(1.0, color="k", lw=0.8, ls="--")
        ax2.set_yscale("log")
        ax2.set_xticks(x, profiles, rotation=30, ha="right")
        ax2.set_ylabel("RMS of s2 - s1 over the floor (< 1: noise)")
        ax2.set_title("the contrast per layer (no bar: no noise floor)")
        ax2.legend(fontsize=7)
        save(fig, "probes", rule)
