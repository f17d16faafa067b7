"""Claims tested over seeds: Welch's t-test, Hedges' g and a verdict, from run files only.

A claim (:class:`~analogebl.study.schema.Claim`, declared in a study file as
``[claims.NAME]``) compares the runs whose ``by`` value is ``lhs`` with those of each
``rhs`` value. It is evaluated separately in every cohort of the study's runs (tier,
epochs, data sizes: :mod:`~analogebl.reporting.pooling`) and every (dataset, profile)
inside it, never across them; a side whose runs differ in another configuration value is
refused, naming the keys. Only complete runs count, each (configuration, seed) once.

Per comparison: the metric at the final epoch (or at each run's lowest ``val_error``),
Welch's t-test (``scipy.stats.ttest_ind(..., equal_var=False)``) one-sided in the claimed
direction and in the opposite one, and Hedges' g (Cohen's d with the pooled sample
standard deviation, times the small-sample correction 1 - 3 / (4 (n1 + n2) - 9); sign:
lhs - rhs). Verdicts: ``confirmed`` (p < alpha in the claimed direction), ``contradicted``
(p < alpha in the opposite one), ``not significant``, ``insufficient data`` (fewer than
two runs on a side). ``similar`` claims use two one-sided tests against ``±margin``
(TOST): confirmed when both reject, contradicted when the difference exceeds the margin
significantly (two-sided, p doubled). A claim with several ``rhs`` values is confirmed
only when every comparison is (an intersection-union test: each at alpha, no correction
needed) and contradicted when any comparison is.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy import stats

from analogebl.reporting.cells import best_val_test_error
from analogebl.reporting.pooling import Cohort, cohort_of, config_labels, config_of, dedupe
from analogebl.reporting.runs import RunRecord, dataset_name
from analogebl.study.claims import Claim
from analogebl.study.schema import DEFAULTS

__all__ = [
    "CONFIRMED",
    "CONTRADICTED",
    "INSUFFICIENT",
    "NOT_SIGNIFICANT",
    "REFUSED",
    "ClaimResult",
    "Comparison",
    "claims_markdown",
    "evaluate_claim",
    "metric_value",
    "welch",
]

CONFIRMED = "confirmed"
NOT_SIGNIFICANT = "not significant"
CONTRADICTED = "contradicted"
INSUFFICIENT = "insufficient data"
REFUSED = "refused: mixed configurations"

# study keys recorded as /meta attributes
_META_KEYS = {
    "rule.name": "rule",
    "variant": "variant",
    "profile": "profile",
    "dataset": "dataset",
    "optimizer.name": "optimizer",
    "seed": "seed",
}


def by_value(run: RunRecord, key: str):
    """The run's value of the study key ``key`` (``/meta`` where recorded there, else its
    recorded configuration, else the default)."""
    if key in _META_KEYS and _META_KEYS[key] in run.meta:
        return run.meta[_META_KEYS[key]]
    return config_of(run, with_seed=True).get(key, DEFAULTS.get(key))


def metric_value(run: RunRecord, metric: str, epoch: str = "final") -> float:
    """``metric`` after the last epoch (``final``) or at the lowest ``val_error``
    (``best_val``); NaN when the run does not record it."""
    v = run.metrics.get(metric)
    if v is None or not len(v):
        return math.nan
    if epoch == "final":
        return float(v[-1])
    if metric == "test_error":
        return best_val_test_error(run)
    val = run.metrics.get("val_error")
    if val is None or not np.isfinite(val).any():
        return math.nan
    return float(v[int(np.nanargmin(val))])


@dataclass(frozen=True)
class Comparison:
    """One lhs-vs-rhs test: the values per side, the Welch statistics and the verdict."""

    rhs: object
    lhs_values: tuple[float, ...]
    rhs_values: tuple[float, ...]
    lhs_seeds: tuple[int, ...]
    rhs_seeds: tuple[int, ...]
    t: float
    p: float  # claimed direction
    p_opposite: float
    hedges_g: float
    verdict: str
    note: str = ""


@dataclass(frozen=True)
class ClaimResult:
    """A claim evaluated in one cohort and (dataset, profile) context."""

    claim: Claim
    study: str
    cohort: Cohort
    context: str
    comparisons: tuple[Comparison, ...]
    verdict: str
    note: str = ""


def _hedges_g(x: np.ndarray, y: np.ndarray) -> float:
    nx, ny = len(x), len(y)
    sp2 = ((nx - 1) * np.var(x, ddof=1) + (ny - 1) * np.var(y, ddof=1)) / (nx + ny - 2)
    if not sp2 > 0:
        return math.nan
    return float((x.mean() - y.mean()) / math.sqrt(sp2) * (1 - 3 / (4 * (nx + ny) - 9)))


def _p(x, y, alternative: str) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r = stats.ttest_ind(x, y, equal_var=False, alternative=alternative)
    return float(r.statistic), float(r.pvalue)


def welch(x, y, direction: str, alpha: float, margin: float | None = None):
    """Test ``mean(x) <direction> mean(y)`` over seeds.

    Parameters
    ----------
    x, y : array_like
        The metric per run (seed) of each side.
    direction : {"less", "greater", "similar"}
    alpha : float
    margin : float, optional
        The equivalence margin (``similar``).

    Returns
    -------
    t, p, p_opposite, g, verdict : float, float, float, float, str
        ``t`` of Welch's test of x - y; ``p`` for the claimed direction, ``p_opposite`` for
        the opposite finding; Hedges' g (lhs - rhs); the verdict. NaN statistics and
        ``insufficient data`` when a side has fewer than two values.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or len(y) < 2:
        return math.nan, math.nan, math.nan, math.nan, INSUFFICIENT
    t, _ = _p(x, y, "two-sided")
    if direction == "similar":
        p = max(_p(x + margin, y, "greater")[1], _p(x - margin, y, "less")[1])
        p_opp = min(1.0, 2 * min(_p(x - margin, y, "greater")[1], _p(x + margin, y, "less")[1]))
    else:
        opposite = "greater" if direction == "less" else "less"
        p, p_opp = _p(x, y, direction)[1], _p(x, y, opposite)[1]
    if p < alpha:
        verdict = CONFIRMED
    elif p_opp < alpha:
        verdict = CONTRADICTED
    else:
        verdict = NOT_SIGNIFICANT  # also when both sides have zero variance (p is NaN)
    return t, p, p_opp, _hedges_g(x, y), verdict


def _side(runs: list[RunRecord], claim: Claim) -> tuple[list[float], list[int], str]:
    vals, seeds, skipped = [], [], 0
    for r in sorted(runs, key=lambda r: (r.seed, str(r.path))):
        v = metric_value(r, claim.metric, claim.epoch) if r.complete else math.nan
        if math.isfinite(v):
            vals.append(v)
            seeds.append(r.seed)
        else:
            skipped += 1
    note = f"{skipped} run(s) left out (incomplete or no {claim.metric})" if skipped else ""
    return vals, seeds, note


def _mixed(runs: list[RunRecord], claim: Claim) -> str:
    """The configuration keys that differ among one side's runs ('' when none)."""
    labels = set(config_labels(runs, exclude=frozenset({claim.by})).values())
    return "; ".join(sorted(labels)) if len(labels) > 1 else ""


def _combine(verdicts: list[str]) -> str:
    for v in (REFUSED, CONTRADICTED, INSUFFICIENT):
        if v in verdicts:
            return v
    return CONFIRMED if all(v == CONFIRMED for v in verdicts) else NOT_SIGNIFICANT


def evaluate_claim(claim: Claim, runs: list[RunRecord], study: str) -> list[ClaimResult]:
    """Evaluate ``claim`` of ``study`` on the runs (any set; other studies' runs ignored).

    Returns
    -------
    list of ClaimResult
        One per cohort and (dataset, profile) holding a run of either side; empty when no
        run of the study has an ``lhs`` or ``rhs`` value.
    """
    runs, _ = dedupe([r for r in runs if str(r.meta.get("study", "")) == study])
    groups: dict[tuple, list[RunRecord]] = defaultdict(list)
    for r in runs:
        ctx = tuple(
            f"{dataset_name(r.dataset)}" if k == "dataset" else f"profile {r.profile}"
            for k in ("dataset", "profile")
            if k != claim.by
        )
        groups[(cohort_of(r), ctx)].append(r)
    out = []
    sides = (claim.lhs, *claim.rhs)
    for (cohort, ctx), rs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        by = defaultdict(list)
        for r in rs:
            by[by_value(r, claim.by)].append(r)
        if not any(by.get(v) for v in sides):
            continue
        mixed = {v: _mixed(by[v], claim) for v in sides if by.get(v)}
        comps = []
        lv, ls, lnote = _side(by.get(claim.lhs, []), claim)
        for rhs in claim.rhs:
            rv, rs_, rnote = _side(by.get(rhs, []), claim)
            bad = "; ".join(f"{v}: {mixed[v]}" for v in (claim.lhs, rhs) if mixed.get(v))
            if bad:
                nan = math.nan
                comps.append(Comparison(rhs, tuple(lv), tuple(rv), tuple(ls), tuple(rs_), nan,
                                        nan, nan, nan, REFUSED, bad))  # fmt: skip
                continue
            t, p, p_opp, g, verdict = welch(lv, rv, claim.direction, claim.alpha, claim.margin)
            note = "; ".join(n for n in (lnote and f"lhs: {lnote}", rnote and f"rhs: {rnote}") if n)
            comps.append(Comparison(rhs, tuple(lv), tuple(rv), tuple(ls), tuple(rs_), t, p,
                                    p_opp, g, verdict, note))  # fmt: skip
        verdict = _combine([c.verdict for c in comps])
        note = "smoke: not a result" if cohort.smoke else ""
        out.append(ClaimResult(claim, study, cohort, ", ".join(ctx), tuple(comps), verdict, note))
    return out


# ---------------------------------------------------------------- Markdown


def _scale(metric: str) -> tuple[float, str]:
    return (100.0, " %") if metric.endswith(("error", "accuracy", "_acc")) else (1.0, "")


def _stat(vals, scale: float) -> str:
    if not vals:
        return "– [n=0]"
    v = np.asarray(vals) * scale
    std = f"{np.std(v, ddof=1):.2f}" if len(v) > 1 else "–"
    return f"{v.mean():.2f} ± {std} [n={len(v)}]"


def _pfmt(p: float) -> str:
    if math.isnan(p):
        return "–"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _num(x: float, fmt: str = ".2f") -> str:
    return "–" if math.isnan(x) else format(x, fmt)


CLAIMS_LEGEND = (
    "Each claim is tested over seeds, separately in every cohort (study, tier, epochs, data "
    "sizes) and (dataset, profile): Welch's t-test (unequal variances; `scipy.stats."
    "ttest_ind(equal_var=False)`), one-sided in the claimed direction (*p*) and in the "
    "opposite one (*p opp.*); `≈` claims use two one-sided tests against the margin (TOST). "
    "Effect size: Hedges' *g* (Cohen's d with the pooled sample std, small-sample "
    "corrected; sign lhs − rhs). Only complete runs count, each (configuration, seed) once. "
    "A claim against several rhs values is confirmed only when every comparison is. "
    "Values are mean ± sample std [n runs]. Note: the paper's code kept the best *test* "
    "epoch; here `final` is the last epoch and `best_val` the epoch with the lowest "
    "validation error, so the two are not the same selection."
)


def claims_markdown(results: list[ClaimResult], unchecked: list[str] | None = None) -> str:
    """The claims section of ``report.md``: a summary table, then one table per result.

    Parameters
    ----------
    results : list of ClaimResult
    unchecked : list of str, optional
        Lines about claims that could not be evaluated (no runs, no study file).
    """
    out = [CLAIMS_LEGEND, ""]
    if results:
        out += ["| claim | study | cohort | context | verdict | p (max over comparisons) |",
                "|:--|:--|:--|:--|:--|--:|"]  # fmt: skip
        for r in results:
            ps = [c.p for c in r.comparisons if not math.isnan(c.p)]
            verdict = f"**{r.verdict}**" + (" (smoke: not a result)" if r.cohort.smoke else "")
            out.append(
                f"| {r.claim.name} | {r.study} | {r.cohort.tier}, {r.cohort.epochs_text}, "
                f"{r.cohort.train_size} images | {r.context or '–'} | {verdict} | "
                f"{_pfmt(max(ps)) if ps else '–'} |"
            )
        out.append("")
    for r in results:
        c = r.claim
        scale, unit = _scale(c.metric)
        out += [f"#### {c.name}: {r.verdict}", ""]
        if c.description:
            out += [f"_{' '.join(c.description.split())}_", ""]
        out += [f"Claim: `{c.text()}`. {r.cohort.describe()}; {r.context or 'all runs'}.", ""]
        if r.cohort.smoke:
            out += ["> **smoke: not a result**", ""]
        out += [f"| lhs | rhs | lhs{unit} | rhs{unit} | t | p | p opp. | Hedges' g | verdict |",
                "|:--|:--|--:|--:|--:|--:|--:|--:|:--|"]  # fmt: skip
        for k in r.comparisons:
            verdict = k.verdict + (f" ({k.note})" if k.note else "")
            out.append(
                f"| {c.lhs} | {k.rhs} | {_stat(k.lhs_values, scale)} | "
                f"{_stat(k.rhs_values, scale)} | {_num(k.t)} | {_pfmt(k.p)} | "
                f"{_pfmt(k.p_opposite)} | {_num(k.hedges_g)} | {verdict} |"
            )
        out.append("")
    for line in unchecked or []:
        out.append(f"- {line}")
    return "\n".join(out).rstrip() + "\n"
