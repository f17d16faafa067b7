"""Seven-algorithm tables from run files: Markdown, CSV and LaTeX."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analogebl.errors import ConfigError
from analogebl.recording import atomic_write_text, read_run

__all__ = ["Cell", "RunRow", "aggregate", "load_runs", "table_csv", "table_latex",
           "table_markdown", "write_report"]

RULE_ORDER = ("cl", "p_ep", "n_ep", "c_ep", "p_cpl", "n_cpl", "c_cpl", "tbp", "rbp")
RULE_NAMES = {"cl": "CL", "p_ep": "P-EP", "n_ep": "N-EP", "c_ep": "C-EP", "p_cpl": "P-CpL",
              "n_cpl": "N-CpL", "c_cpl": "C-CpL", "tbp": "TBP", "rbp": "RBP"}
DATASET_ORDER = ("mnist", "fmnist", "svhn", "cifar10", "cifar100")
DATASET_NAMES = {"mnist": "MNIST", "fmnist": "F-MNIST", "svhn": "SVHN", "cifar10": "CIFAR-10",
                 "cifar100": "CIFAR-100"}


@dataclass(frozen=True)
class RunRow:
    """One run file, reduced to what the tables and figures need."""

    path: str
    study: str
    rule: str
    dataset: str
    profile: str
    seed: int
    beta: float
    complete: bool
    status: str
    epochs: np.ndarray
    train_error: np.ndarray
    test_error: np.ndarray
    seconds: np.ndarray

    @property
    def final_test(self) -> float:
        return float(self.test_error[-1]) if len(self.test_error) else math.nan

    @property
    def final_train(self) -> float:
        return float(self.train_error[-1]) if len(self.train_error) else math.nan


def load_runs(root: str | Path) -> list[RunRow]:
    """Every run file (``*.h5`` with ``/meta``) under ``root``, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError("no such folder", path=root)
    rows = []
    for f in sorted(root.rglob("*.h5")):
        rec = read_run(f)
        m, meta = rec.metrics, rec.meta
        empty = np.zeros(0)
        rows.append(RunRow(str(f), str(meta.get("study", "")), str(meta.get("rule", "?")),
                           str(meta.get("dataset", "?")), str(meta.get("profile", "none")),
                           int(meta.get("seed", 0)), float(meta.get("beta", math.nan)),
                           bool(meta.get("complete", False)), str(meta.get("status", "")),
                           m.get("epoch", empty), m.get("train_error", empty),
                           m.get("test_error", empty), m.get("seconds", empty)))
    if not rows:
        raise ConfigError("no run files (*.h5) found under this folder", path=root)
    return rows


@dataclass(frozen=True)
class Cell:
    """Final errors of the seeds of one (profile, rule, dataset)."""

    test: tuple[float, ...]
    train: tuple[float, ...]
    incomplete: bool

    @staticmethod
    def _ms(v):
        a = np.asarray(v, dtype=float) * 100
        return float(a.mean()), (float(a.std(ddof=1)) if len(a) > 1 else math.nan)

    @property
    def test_mean_std(self):
        return self._ms(self.test)

    @property
    def train_mean_std(self):
        return self._ms(self.train)

    def text(self) -> str:
        m, s = self.test_mean_std
        tm, _ = self.train_mean_std
        pm = f" ± {s:.2f}" if not math.isnan(s) else ""
        return f"{m:.2f}{pm} ({tm:.2f}){'†' if self.incomplete else ''}"


def _order(keys, order):
    known = [k for k in order if k in keys]
    return known + sorted(k for k in keys if k not in order)


def aggregate(rows: list[RunRow]) -> dict[tuple[str, str, str], Cell]:
    """(profile, rule, dataset) -> :class:`Cell` over seeds (runs with no epoch skipped)."""
    groups = defaultdict(list)
    for r in rows:
        if len(r.test_error):
            groups[(r.profile, r.rule, r.dataset)].append(r)
    return {k: Cell(tuple(r.final_test for r in v), tuple(r.final_train for r in v),
                    any(not r.complete for r in v)) for k, v in sorted(groups.items())}


def _axes(cells):
    profiles = _order({k[0] for k in cells}, ("none",))
    rules = _order({k[1] for k in cells}, RULE_ORDER)
    datasets = _order({k[2] for k in cells}, DATASET_ORDER)
    return profiles, rules, datasets


def table_markdown(cells: dict) -> str:
    """One rules x datasets table per profile, then (for several profiles) one rules x
    profiles table per dataset."""
    profiles, rules, datasets = _axes(cells)
    out = []
    for p in profiles:
        out.append(f"### Test error % (train error), profile `{p}`\n")
        out.append("| rule | " + " | ".join(DATASET_NAMES.get(d, d) for d in datasets) + " |")
        out.append("|---|" + "---|" * len(datasets))
        for r in rules:
            if not any((p, r, d) in cells for d in datasets):
                continue
            row = [cells[(p, r, d)].text() if (p, r, d) in cells else "–" for d in datasets]
            n = {len(cells[(p, r, d)].test) for d in datasets if (p, r, d) in cells}
            out.append(f"| {RULE_NAMES.get(r, r)} | " + " | ".join(row) + " |")
        out.append(f"\nSeeds per cell: {', '.join(str(v) for v in sorted(n))}." if n else "")
        out.append("")
    if len(profiles) > 1:
        for d in datasets:
            out.append(f"### Rules x hardware profiles, {DATASET_NAMES.get(d, d)} "
                       "(test error %)\n")
            out.append("| rule | " + " | ".join(f"`{p}`" for p in profiles) + " |")
            out.append("|---|" + "---|" * len(profiles))
            for r in rules:
                row = [cells[(p, r, d)].text() if (p, r, d) in cells else "–" for p in profiles]
                out.append(f"| {RULE_NAMES.get(r, r)} | " + " | ".join(row) + " |")
            out.append("")
    if any(c.incomplete for c in cells.values()):
        out.append("† at least one run of this cell has not finished all its epochs.\n")
    return "\n".join(out)


def table_csv(cells: dict) -> str:
    """One row per (profile, rule, dataset): mean/std/n of final test and train error (%)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["profile", "rule", "dataset", "n", "test_mean", "test_std", "train_mean",
                "train_std", "incomplete"])
    profiles, rules, datasets = _axes(cells)
    for p in profiles:
        for r in rules:
            for d in datasets:
                c = cells.get((p, r, d))
                if c is None:
                    continue
                tm, ts = c.test_mean_std
                rm, rs = c.train_mean_std
                w.writerow([p, r, d, len(c.test), repr(tm), "" if math.isnan(ts) else repr(ts),
                            repr(rm), "" if math.isnan(rs) else repr(rs), int(c.incomplete)])
    return buf.getvalue()


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
        "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}"}


def _tex(s: str) -> str:
    """Escape LaTeX's special characters."""
    return "".join(_TEX.get(ch, ch) for ch in s)


def table_latex(cells: dict) -> str:
    """booktabs tabular per profile (rules x datasets)."""
    profiles, rules, datasets = _axes(cells)
    out = []
    for p in profiles:
        out.append(f"% test error % (train error), profile {_tex(p)}")
        out.append(r"\begin{tabular}{l" + "c" * len(datasets) + "}")
        out.append(r"\toprule")
        out.append("Rule & " + " & ".join(_tex(DATASET_NAMES.get(d, d)) for d in datasets)
                   + r" \\")
        out.append(r"\midrule")
        for r in rules:
            if not any((p, r, d) in cells for d in datasets):
                continue
            row = []
            for d in datasets:
                c = cells.get((p, r, d))
                row.append("--" if c is None else
                           _tex(c.text()).replace("±", r"$\pm$").replace("†", r"$^\dagger$"))
            out.append(_tex(RULE_NAMES.get(r, r)) + " & " + " & ".join(row) + r" \\")
        out.append(r"\bottomrule")
        out.append(r"\end{tabular}")
        out.append("")
    return "\n".join(out)


def write_report(root: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Tables and figures for the runs under ``root`` into ``out_dir`` (default
    ``root/report``); returns the files written (``report.md`` first)."""
    from analogebl.reporting.figures import make_figures

    root = Path(root)
    rows = load_runs(root)
    out = Path(out_dir) if out_dir is not None else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    cells = aggregate(rows)
    figures = make_figures(rows, cells, out)
    md = [f"# Report: {root}\n", f"{len(rows)} run file(s); final-epoch errors.\n",
          table_markdown(cells)]
    slow = [r for r in rows if r.status == "diverged"]
    if slow:
        md.append("Diverged runs: " + ", ".join(Path(r.path).name for r in slow) + "\n")
    if figures:
        md.append("## Figures\n")
        md += [f"![{f.stem}]({f.name})\n" for f in figures]
    files = [out / "report.md", out / "table.csv", out / "table.tex"]
    atomic_write_text(files[0], "\n".join(md))
    atomic_write_text(files[1], table_csv(cells))
    atomic_write_text(files[2], table_latex(cells))
    return files + figures
