"""⑧ Reporting: tables and figures made from HDF5 run files only (no simulation).

``write_report(DIR)`` reads every run file under ``DIR`` (any ``*.h5`` with a ``/meta``
group, at any depth) and writes ``report.md`` (tables, incomplete runs, figure links),
``table.csv``, ``table.tex`` and PNG figures into ``DIR/report``, each file atomically.

Tables use the paper's layout: rows = rules (CL, P-EP, N-EP, C-EP, P-CpL, N-CpL, C-CpL, TBP,
RBP, then unknown rules by name), columns = datasets (MNIST, F-MNIST, SVHN, CIFAR-10,
CIFAR-100, then others), one table per hardware profile; cells = final test error in % as
mean ± sample std (ddof = 1) over seeds with the final train error in parentheses
(``± –`` for a single seed). With several profiles, rules × profiles tables follow (one per
dataset). Runs that have not finished all planned epochs are marked ``†``.

Nothing is pooled that should not be (:mod:`~analogebl.reporting.pooling`): runs of
different studies, tiers, epoch budgets or data sizes go to separate cohorts, each with a
heading stating them and the seeds (smoke: "not a result"); configurations that differ
inside a cell become separate rows; a run held by two files counts once. ``report.md``
also holds the claims of the runs' study files tested over seeds (Welch's t-test, Hedges'
g: :mod:`~analogebl.reporting.claims`) and the provenance (git sha, version, tiers, seeds,
wall time per run and in total, machine: :mod:`~analogebl.reporting.provenance`).

Public API
----------
load_runs(root) -> list[RunRecord]
summarize(runs) -> list[CellStats]
tables_markdown(cells) -> str, tables_latex(cells) -> str, table_csv(cells) -> str
rules_by_datasets(cells, profile, fmt="markdown") -> str
rules_by_profiles(cells, dataset, fmt="markdown") -> str
make_figures(runs, out_dir, cells=None) -> list[Path]
write_report(root, out_dir=None) -> list[Path]
"""

from __future__ import annotations

from analogebl.reporting.figures import make_figures
from analogebl.reporting.report import write_report
from analogebl.reporting.runs import (
    DATASET_ORDER,
    RULE_ORDER,
    RunRecord,
    dataset_name,
    load_runs,
    rule_name,
)
from analogebl.reporting.tables import (
    CSV_COLUMNS,
    CellStats,
    latex_escape,
    rules_by_datasets,
    rules_by_profiles,
    summarize,
    table_csv,
    tables_latex,
    tables_markdown,
)

__all__ = [
    "CSV_COLUMNS",
    "DATASET_ORDER",
    "RULE_ORDER",
    "CellStats",
    "RunRecord",
    "dataset_name",
    "latex_escape",
    "load_runs",
    "make_figures",
    "rule_name",
    "rules_by_datasets",
    "rules_by_profiles",
    "summarize",
    "table_csv",
    "tables_latex",
    "tables_markdown",
    "write_report",
]
