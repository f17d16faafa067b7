"""The paper's seven-algorithm tables from run records: Markdown, CSV and LaTeX.

A *cell* gathers the runs of one (profile, rule, dataset). Its numbers are the final test
and train errors in percent: the mean over runs and the sample standard deviation
(``ddof=1``). A cell with a single run has no standard deviation: NaN in
:class:`CellStats`, an empty field in the CSV, and ``± –`` in Markdown/LaTeX. Runs with no
finished epoch have no final error and are left out of every cell.

Cell text is ``mean ± std (train mean)``, e.g. ``1.23 ± 0.05 (0.41)``, followed by

* ``†`` when a run of the cell has not finished all its planned epochs (its error is the
  one after its last finished epoch);
* ``‡`` when the cell pools runs with different β (e.g. a β sweep in the same tree);
* ``[n=k]`` when the cells of one table differ in their number of runs; when they agree,
  a single note under the table says ``n = k`` instead.

Tables never pool across cohorts (study, tier, epochs, data sizes): each cohort gets its own
heading that states them and the seeds, and a smoke-tier cohort carries the note
"smoke: not a result". A rule whose runs differ in another configuration value gets one row
per configuration, labelled with the values that differ. When the runs record a
``val_error``, a second table gives the test error at each run's best-validation epoch.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from analogebl.reporting.cells import CSV_COLUMNS, CellStats, summarize, table_csv
from analogebl.reporting.pooling import Cohort
from analogebl.reporting.runs import (
    DATASET_ORDER,
    PROFILE_ORDER,
    RULE_ORDER,
    dataset_name,
    order_keys,
    rule_name,
)

__all__ = [
    "CSV_COLUMNS",
    "SMOKE_NOTE",
    "CellStats",
    "by_cohort",
    "cohort_heading",
    "latex_escape",
    "rules_by_datasets",
    "rules_by_profiles",
    "summarize",
    "table_csv",
    "tables_latex",
    "tables_markdown",
]

_MD = {"pm": " ± ", "nostd": " ± –", "dagger": "†", "ddagger": "‡", "empty": "–", "beta": "β"}
_LATEX = {
    "pm": r" $\pm$ ",
    "nostd": r" $\pm$ --",
    "dagger": r"$^{\dagger}$",
    "ddagger": r"$^{\ddagger}$",
    "empty": "--",
    "beta": r"$\beta$",
}

_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\n": " ",
    "\r": " ",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (and flatten newlines) in plain text."""
    return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))


def _md_escape(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _cell_text(c: CellStats, sym: dict, train: bool, show_n: bool, best: bool = False) -> str:
    mean, std = (c.best_mean, c.best_std) if best else (c.test_mean, c.test_std)
    if best and not c.best_val:
        return sym["empty"]
    s = f"{mean:.2f}" + (sym["nostd"] if c.n < 2 else f"{sym['pm']}{std:.2f}")
    if train:
        s += f" ({c.train_mean:.2f})"
    s += (sym["dagger"] if c.incomplete else "") + (sym["ddagger"] if c.mixed_beta else "")
    return s + (f" [n={c.n}]" if show_n else "")


@dataclass(frozen=True)
class _Grid:
    title: str
    corner: str
    rows: list[str]
    cols: list[str]
    col_names: list[str]
    cells: dict[tuple[tuple[str, str], str], CellStats]
    train: bool
    best: bool = False

    def notes(self, sym: dict) -> tuple[bool, list[str]]:
        ns = {c.n for c in self.cells.values()}
        show_n = len(ns) > 1
        notes = [] if show_n else [f"n = {ns.pop()} seed(s) per cell."]
        if any(c.incomplete for c in self.cells.values()):
            notes.append(
                f"{sym['dagger']} includes runs that did not finish all planned "
                "epochs (error after their last finished epoch)."
            )
        if any(c.mixed_beta for c in self.cells.values()):
            notes.append(f"{sym['ddagger']} pools runs with different {sym['beta']} values.")
        return show_n, notes


def _rows(sel: dict) -> list[tuple[str, str]]:
    """Row keys (rule, label): rules in the paper's order, then labels by name."""
    rules = order_keys({k[0][0] for k in sel}, RULE_ORDER)
    return [(r, lab) for r in rules for lab in sorted({k[0][1] for k in sel if k[0][0] == r})]


def _by_datasets(cells: list[CellStats], profile: str, best: bool = False) -> _Grid:
    sel = {((c.rule, c.label), c.dataset): c for c in cells if c.profile == profile}
    cols = order_keys({k[1] for k in sel}, DATASET_ORDER)
    what = (
        "test error % at the best-validation epoch"
        if best
        else "final test error % (train error %)"
    )
    return _Grid(
        f"Profile {profile}: {what}",
        "Rule",
        _rows(sel),
        cols,
        [dataset_name(d) for d in cols],
        sel,
        train=not best,
        best=best,
    )


def _by_profiles(cells: list[CellStats], dataset: str) -> _Grid:
    sel = {((c.rule, c.label), c.profile): c for c in cells if c.dataset == dataset}
    cols = order_keys({k[1] for k in sel}, PROFILE_ORDER)
    return _Grid(
        f"{dataset_name(dataset)}: final test error % by hardware profile",
        "Rule",
        _rows(sel),
        cols,
        cols,
        sel,
        train=False,
    )


def _grids(cells: list[CellStats]) -> list[_Grid]:
    profiles = order_keys({c.profile for c in cells}, PROFILE_ORDER)
    grids = [_by_datasets(cells, p) for p in profiles]
    if any(c.best_val for c in cells):
        grids += [_by_datasets(cells, p, best=True) for p in profiles]
    if len(profiles) > 1:
        for d in order_keys({c.dataset for c in cells}, DATASET_ORDER):
            g = _by_profiles(cells, d)
            if len(g.cols) > 1:
                grids.append(g)
    return grids


def by_cohort(cells: list[CellStats]) -> list[tuple[Cohort | None, list[CellStats]]]:
    """The cells split by cohort, in the cells' order."""
    groups: dict = defaultdict(list)
    for c in cells:
        groups[c.cohort].append(c)
    return list(groups.items())


def _seeds(cells: list[CellStats]) -> str:
    seeds = sorted({s for c in cells for s in c.seeds})
    return ", ".join(str(s) for s in seeds)


def _row_name(key: tuple[str, str]) -> str:
    rule, label = key
    return rule_name(rule) + (f" ({label})" if label else "")


# ---------------------------------------------------------------- renderers


def _markdown(g: _Grid) -> str:
    show_n, notes = g.notes(_MD)
    out = [
        f"### {_md_escape(g.title)}",
        "",
        "| " + " | ".join([g.corner] + [_md_escape(c) for c in g.col_names]) + " |",
        "|:--" + "|--:" * len(g.cols) + "|",
    ]
    for r in g.rows:
        row = [
            _cell_text(g.cells[(r, c)], _MD, g.train, show_n, g.best)
            if (r, c) in g.cells
            else _MD["empty"]
            for c in g.cols
        ]
        out.append("| " + " | ".join([_md_escape(_row_name(r))] + row) + " |")
    out.append("")
    out += [n + "  " for n in notes]
    return "\n".join(out).rstrip() + "\n"


def _latex(g: _Grid) -> str:
    show_n, notes = g.notes(_LATEX)
    k = len(g.cols) + 1
    out = [
        f"% {latex_escape(g.title)}",
        r"\begin{tabular}{l" + "c" * len(g.cols) + "}",
        r"\toprule",
        " & ".join([g.corner] + [latex_escape(c) for c in g.col_names]) + r" \\",
        r"\midrule",
    ]
    for r in g.rows:
        row = [
            _cell_text(g.cells[(r, c)], _LATEX, g.train, show_n, g.best)
            if (r, c) in g.cells
            else _LATEX["empty"]
            for c in g.cols
        ]
        out.append(" & ".join([latex_escape(_row_name(r))] + row) + r" \\")
    out.append(r"\bottomrule")
    for n in notes:
        out.append(rf"\multicolumn{{{k}}}{{l}}{{\footnotesize {n}}} \\")
    out.append(r"\end{tabular}")
    return "\n".join(out) + "\n"


_RENDER = {"markdown": _markdown, "latex": _latex}


def _render(grid: _Grid, fmt: str) -> str:
    if fmt not in _RENDER:
        raise ValueError(f"fmt must be 'markdown' or 'latex', not {fmt!r}")
    return _RENDER[fmt](grid)


def rules_by_datasets(cells: list[CellStats], profile: str, fmt: str = "markdown") -> str:
    """The paper's layout for one profile: rows rules, columns datasets (those present).

    Parameters
    ----------
    cells : list of CellStats
        As returned by :func:`summarize`.
    profile : str
        The hardware profile (``"none"`` for ideal devices).
    fmt : {"markdown", "latex"}
        Output format.

    Returns
    -------
    str
        The table with its notes; cells show ``test ± std (train)``.
    """
    return _render(_by_datasets(cells, profile), fmt)


def rules_by_profiles(cells: list[CellStats], dataset: str, fmt: str = "markdown") -> str:
    """Rows rules, columns hardware profiles, for one dataset.

    Parameters
    ----------
    cells : list of CellStats
        As returned by :func:`summarize`.
    dataset : str
        Dataset key (``"mnist"``, ...).
    fmt : {"markdown", "latex"}
        Output format.

    Returns
    -------
    str
        The table with its notes; cells show the final test error ``mean ± std`` in %.
    """
    return _render(_by_profiles(cells, dataset), fmt)


_LEGEND = (
    "Cells: final test error in % as mean ± sample standard deviation (ddof = 1) over "
    "seeds, final train error in % in parentheses; `± –` marks a single seed."
)


def tables_markdown(cells: list[CellStats], legend: bool = True) -> str:
    """All tables as Markdown.

    One rules × datasets table per profile; when several profiles are present, also one
    rules × profiles table per dataset measured under at least two profiles.

    Parameters
    ----------
    cells : list of CellStats
        As returned by :func:`summarize`.
    legend : bool
        Begin with the legend and give each cohort its heading (else: one cohort's tables
        only, the caller writes its heading).

    Returns
    -------
    str
    """
    if not cells:
        return "_No run has finished an epoch yet._\n"
    if not legend:
        return "\n".join(_markdown(g) for g in _grids(cells))
    out = [_LEGEND, ""]
    for cohort, cs in by_cohort(cells):
        out.append(cohort_heading(cohort, cs))
        out.append("\n".join(_markdown(g) for g in _grids(cs)))
    return "\n".join(out)


SMOKE_NOTE = "**smoke: not a result** (seconds-long runs for tests; the numbers mean nothing)"


def cohort_heading(cohort: Cohort | None, cells: list[CellStats]) -> str:
    """The Markdown heading of one cohort's tables: study, tier, epochs, training-set size,
    seeds, and the smoke note for the smoke tier."""
    if cohort is None:
        return "### Runs\n"
    lines = [f"### {_md_escape(cohort.describe())}", "", f"Seeds: {_seeds(cells)}.  "]
    if cohort.smoke:
        lines.append(f"> {SMOKE_NOTE}")
    return "\n".join(lines) + "\n"


def tables_latex(cells: list[CellStats]) -> str:
    """The same tables as :func:`tables_markdown`, as booktabs ``tabular`` environments.

    Needs ``\\usepackage{booktabs}``. All names are escaped for LaTeX.
    """
    head = (
        "% Generated by analogebl.reporting; needs \\usepackage{booktabs}.\n"
        "% Cells: final test error % as mean $\\pm$ sample std (ddof=1) over seeds,\n"
        "% final train error % in parentheses; $\\pm$ -- marks a single seed.\n"
    )
    out = [head]
    for cohort, cs in by_cohort(cells):
        if cohort is not None:
            out.append(f"% {latex_escape(cohort.describe())}; seeds {_seeds(cs)}")
            if cohort.smoke:
                out.append("% smoke: not a result")
        out.append("\n".join(_latex(g) for g in _grids(cs)))
    return "\n".join(out)
