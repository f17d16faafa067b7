"""Provenance of a report: code version, tiers, seeds, wall time per run and in total, machine.

Everything comes from the run files' ``/meta`` and ``/metrics`` (``seconds`` per epoch).
The machine is the one the run files record (``/meta`` ``cpu_model`` / ``cpu_count``,
``hostname`` when present); files that record none are described by the machine writing
the report, and the report says so.
"""

from __future__ import annotations

import os
import platform
from collections import Counter

import numpy as np

from analogebl.reporting.pooling import cohort_of
from analogebl.reporting.runs import RunRecord, dataset_name, rule_name

__all__ = ["this_machine", "provenance_markdown", "wall_seconds"]

_CPU_KEYS = ("cpu_model", "cpu", "processor")
_CORE_KEYS = ("cpu_count", "cores", "cpu_cores")


def wall_seconds(run: RunRecord) -> float:
    """The run's recorded wall time: the sum of its per-epoch ``seconds`` (0 if none)."""
    v = run.metrics.get("seconds")
    return float(np.nansum(v)) if v is not None and len(v) else 0.0


def this_machine() -> str:
    """CPU model and logical cores of the machine running this code."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    return f"{model}, {os.cpu_count() or '?'} logical cores ({platform.system()})"


def _recorded_machine(run: RunRecord) -> str | None:
    cpu = next((run.meta[k] for k in _CPU_KEYS if run.meta.get(k)), None)
    cores = next((run.meta[k] for k in _CORE_KEYS if run.meta.get(k)), None)
    if cpu is None and cores is None:
        return None
    host = run.meta.get("hostname")
    return f"{cpu or 'unknown CPU'}, {cores or '?'} cores" + (f" ({host})" if host else "")


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _counts(values) -> str:
    c = Counter(str(v) for v in values)
    return ", ".join(
        f"`{k}`" + (f" ({n} runs)" if len(c) > 1 else "") for k, n in sorted(c.items())
    )


def provenance_markdown(runs: list[RunRecord], rel) -> str:
    """The provenance section of ``report.md``.

    Parameters
    ----------
    runs : list of RunRecord
        The runs counted (duplicates already removed).
    rel : callable
        Path -> the text naming the file (relative to the report root).

    Returns
    -------
    str
        Code (git sha, analogebl version), backends, tiers and seeds per cohort, the
        machine(s), and a table of every run's wall time with the total.
    """
    out = [
        f"- git sha: {_counts(r.meta.get('git_sha', '?') for r in runs)}",
        f"- analogebl version: {_counts(r.meta.get('version', '?') for r in runs)}",
        "- backend / device / dtype: "
        + _counts(
            f"{r.meta.get('backend', '?')} / {r.meta.get('device', '?')} / "
            f"{r.meta.get('dtype', '?')}"
            for r in runs
        ),
    ]
    cohorts: dict = {}
    for r in runs:
        cohorts.setdefault(cohort_of(r), []).append(r)
    for c, rs in cohorts.items():
        seeds = ", ".join(str(s) for s in sorted({r.seed for r in rs}))
        total = sum(wall_seconds(r) for r in rs)
        out.append(
            f"- {c.describe()}: {len(rs)} run(s), seeds {seeds}, wall time {_hms(total)} "
            "(sum over runs)" + (" — **smoke: not a result**" if c.smoke else "")
        )
    recorded = [m for m in (_recorded_machine(r) for r in runs) if m]
    if recorded:
        out.append(f"- machine (recorded in the run files): {_counts(recorded)}")
        if len(recorded) < len(runs):
            out.append(
                f"- {len(runs) - len(recorded)} run file(s) record no machine; this report "
                f"was written on: {this_machine()}"
            )
    else:
        out.append(
            f"- machine: the run files record none; this report was written on "
            f"{this_machine()} (the runs were probably made there too, not certainly)"
        )
    total = sum(wall_seconds(r) for r in runs)
    out += [
        f"- total wall time of all runs: {_hms(total)} ({total:.0f} s, summed over runs; "
        "runs in parallel overlap)",
        "",
        "| file | tier | rule | dataset | profile | seed | epochs | threads | wall time |",
        "|:--|:--|:--|:--|:--|--:|--:|--:|--:|",
    ]
    for r in runs:
        out.append(
            f"| `{rel(r.path)}` | {r.meta.get('tier', '?')} | {rule_name(r.rule)} | "
            f"{dataset_name(r.dataset)} | {r.profile} | {r.seed} | "
            f"{r.epochs_done} / {r.meta.get('epochs_planned', '?')} | "
            f"{r.meta.get('threads', '?')} | {_hms(wall_seconds(r))} |"
        )
    return "\n".join(out) + "\n"
