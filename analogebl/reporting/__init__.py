"""⑧ Reporting: tables and figures made from HDF5 run files only (no simulation).

``write_report(DIR)`` reads every run file under ``DIR`` (:mod:`analogebl.recording`) and
writes ``report.md`` (tables + figure links), ``table.csv``, ``table.tex`` and PNG figures
into ``DIR/report``, each file atomically.

Tables use the paper's layout: rows = rules (CL, P-EP, N-EP, C-EP, P-CpL, N-CpL, C-CpL, TBP,
RBP), columns = datasets (MNIST, F-MNIST, SVHN, CIFAR-10, CIFAR-100), cells = final test error
in % as mean ± std over seeds (sample std, ddof = 1; "±" omitted for a single seed) with the
final train error in parentheses. Runs that have not finished are marked with a dagger.
"""

from __future__ import annotations

from analogebl.reporting.figures import make_figures
from analogebl.reporting.tables import (
    RunRow,
    aggregate,
    load_runs,
    table_csv,
    table_latex,
    table_markdown,
    write_report,
)

__all__ = ["RunRow", "aggregate", "load_runs", "make_figures", "table_csv", "table_latex",
           "table_markdown", "write_report"]
