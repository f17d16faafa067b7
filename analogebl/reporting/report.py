"""``write_report``: every table and figure for a tree of run files, written atomically."""

from __future__ import annotations

from pathlib import Path

from analogebl.errors import ConfigError
from analogebl.recording.atomic import atomic_write_text
from analogebl.reporting.figures import _Writer, make_figures
from analogebl.reporting.optimizers import (
    is_comparison,
    optimizer_figures,
    optimizer_rows,
    optimizers_csv,
    optimizers_markdown,
)
from analogebl.reporting.runs import RunRecord, dataset_name, load_runs, rule_name
from analogebl.reporting.tables import summarize, table_csv, tables_latex, tables_markdown

__all__ = ["write_report"]


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _markdown(root: Path, runs: list[RunRecord], tables: str, figures: list[Path]) -> str:
    done = sum(r.complete for r in runs)
    empty = [r for r in runs if not r.epochs_done]
    studies = sorted({str(r.meta.get("study", "")) for r in runs} - {""})
    out = [
        f"# Report: {_cell(root.name or str(root))}",
        "",
        f"{len(runs)} run file(s) under `{root}`: {done} complete, "
        f"{len(runs) - done} incomplete"
        + (f" ({len(empty)} without a finished epoch, left out of the tables)" if empty else "")
        + ".",
        "Made from the HDF5 run files only.",
    ]
    if studies:
        out.append("Studies: " + ", ".join(f"`{_cell(s)}`" for s in studies) + ".")
    out += ["", "## Tables", "", tables.rstrip(), ""]
    unfinished = [r for r in runs if not r.complete]
    if unfinished:
        out += [
            "## Incomplete runs",
            "",
            "| file | rule | dataset | profile | seed | epochs done / planned |",
            "|:--|:--|:--|:--|--:|--:|",
        ]
        for r in unfinished:
            planned = r.meta.get("epochs_planned", "?")
            out.append(
                f"| `{_cell(_rel(r.path, root))}` | {_cell(rule_name(r.rule))} | "
                f"{_cell(dataset_name(r.dataset))} | {_cell(r.profile)} | {r.seed} | "
                f"{r.epochs_done} / {planned} |"
            )
        out.append("")
    out += ["## Figures", ""]
    if figures:
        out += [f"![{f.stem}]({f.name})\n" for f in figures]
    else:
        out += ["_No figure: the runs hold no data for one yet._", ""]
    return "\n".join(out).rstrip() + "\n"


def write_report(root: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write tables and figures for every run file under ``root``.

    Nothing is simulated: only the ``*.h5`` run files are read (see
    :func:`~analogebl.reporting.load_runs`).

    Parameters
    ----------
    root : str or Path
        Folder searched recursively for run files.
    out_dir : str or Path, optional
        Output folder (created if needed); default ``root / "report"``.

    Returns
    -------
    list of Path
        ``report.md`` (all tables, the list of incomplete runs and links to the figures),
        ``table.csv`` (one row per profile, rule and dataset), ``table.tex`` (booktabs
        tabulars), then the PNG figures, then ``optimizers.csv`` when the runs compare
        optimizers (more than one ``optimizer``; the table is also in ``report.md``). Each
        file is written atomically (temp file in the same folder, flush + fsync,
        ``os.replace``); figures first and ``report.md`` last, so its links never point at
        missing files.

    Raises
    ------
    ConfigError
        No run file under ``root``, ``root`` is not a folder, or a run file is corrupted
        or malformed (the error names that file).
    """
    root = Path(root)
    runs = load_runs(root)
    if not runs:
        raise ConfigError(
            "no run files (*.h5 with a /meta group) were found under this folder", path=root
        )
    out = Path(out_dir) if out_dir is not None else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    cells = summarize(runs)
    figures = make_figures(runs, out, cells=cells)
    tables = tables_markdown(cells)
    extra: list[Path] = []
    rows = optimizer_rows(runs)
    if is_comparison(rows):  # optimizers or study variants side by side
        w = _Writer(out)
        w._names.update(f.stem for f in figures)
        optimizer_figures(rows, w.save)
        figures = figures + w.written
        extra.append(atomic_write_text(out / "optimizers.csv", optimizers_csv(rows)))
        tables += (
            "\n### By variant\n\nFinal accuracies (mean ± std over seeds), time, and "
            "the relative change of each coupling's weights.\n\n" + optimizers_markdown(rows)
        )
    csv_path = atomic_write_text(out / "table.csv", table_csv(cells))
    tex_path = atomic_write_text(out / "table.tex", tables_latex(cells))
    md_path = atomic_write_text(out / "report.md", _markdown(root, runs, tables, figures))
    return [md_path, csv_path, tex_path, *figures, *extra]
