"""``write_report``: the report document (``report.md``) with every table, claim verdict,
figure and the provenance of a tree of run files, each file written atomically."""

from __future__ import annotations

from pathlib import Path

from analogebl.errors import ConfigError
from analogebl.recording.atomic import atomic_write_text
from analogebl.reporting.claims import ClaimResult, claims_markdown, evaluate_claim
from analogebl.reporting.figures import _Writer, make_figures
from analogebl.reporting.hardware import hardware_markdown, probe_figure
from analogebl.reporting.optimizers import (
    is_comparison,
    optimizer_figures,
    optimizer_rows,
    optimizers_csv,
    optimizers_markdown,
)
from analogebl.reporting.pooling import cohort_of, dedupe
from analogebl.reporting.provenance import provenance_markdown
from analogebl.reporting.runs import RunRecord, dataset_name, load_runs, rule_name
from analogebl.reporting.tables import (
    _LEGEND,
    by_cohort,
    cohort_heading,
    summarize,
    table_csv,
    tables_latex,
    tables_markdown,
)
from analogebl.study.claims import study_claims

__all__ = ["write_report"]


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _cell(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _claims(runs: list[RunRecord], claims: dict | None) -> tuple[list[ClaimResult], list[str]]:
    """Evaluate the claims of every study among the runs (from the catalog study file
    unless ``claims`` gives them), before anything is written (a bad claim raises)."""
    results: list[ClaimResult] = []
    notes: list[str] = []
    studies = sorted({str(r.meta.get("study", "")) for r in runs} - {""})
    for study in studies:
        if claims is not None and study in claims:
            found = ("(given)", tuple(claims[study]))
        else:
            found = study_claims(study) if claims is None else None
        if found is None:
            if claims is None:
                notes.append(f"study `{study}`: no study file of that name, claims not tested")
            continue
        for claim in found[1]:
            res = evaluate_claim(claim, runs, study)
            results += res
            if not res:
                notes.append(
                    f"`{study}` claim `{claim.name}` ({claim.text()}): no run of either side"
                )
    return results, notes


def _markdown(
    root: Path,
    all_runs: list[RunRecord],
    runs: list[RunRecord],
    dropped: list[tuple[RunRecord, RunRecord]],
    sections: list[str],
    claims: tuple[list[ClaimResult], list[str]],
) -> str:
    rel = lambda p: _cell(_rel(p, root))  # noqa: E731
    done = sum(r.complete for r in runs)
    empty = [r for r in runs if not r.epochs_done]
    studies = sorted({str(r.meta.get("study", "")) for r in runs} - {""})
    out = [
        f"# Report: {_cell(root.name or str(root))}",
        "",
        f"{len(all_runs)} run file(s) under `{root}`"
        + (f", {len(runs)} distinct run(s)" if dropped else "")
        + f": {done} complete, {len(runs) - done} incomplete"
        + (f" ({len(empty)} without a finished epoch, left out of the tables)" if empty else "")
        + ".",
        "Made from the HDF5 run files only"
        + (" (claims from the study files)" if claims[0] else "")
        + ". Runs of different studies, tiers, epoch budgets, data sizes or "
        "configurations are never pooled.",
    ]
    if studies:
        out.append("Studies: " + ", ".join(f"`{_cell(s)}`" for s in studies) + ".")
    if any(cohort_of(r).smoke for r in runs):
        out += ["", "> **smoke: not a result** — some runs below are of the smoke tier."]
    if claims[0] or claims[1]:
        out += ["", "## Claims", "", claims_markdown(*claims).rstrip()]
    out += ["", "## Results", "", _LEGEND, "", *sections]
    if dropped:
        out += [
            "## Duplicated runs",
            "",
            "These files hold a run already counted (same configuration and seed); each "
            "counts once.",
            "",
            "| file left out | counted as | same results |",
            "|:--|:--|:--|",
        ]
        for d, k in dropped:
            same = all(
                len(d.metrics.get(m, ())) == len(k.metrics.get(m, ()))
                and list(d.metrics.get(m, ())) == list(k.metrics.get(m, ()))
                for m in ("test_error", "train_error")
            )
            out.append(f"| `{rel(d.path)}` | `{rel(k.path)}` | {'yes' if same else 'no'} |")
        out.append("")
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
                f"| `{rel(r.path)}` | {_cell(rule_name(r.rule))} | "
                f"{_cell(dataset_name(r.dataset))} | {_cell(r.profile)} | {r.seed} | "
                f"{r.epochs_done} / {planned} |"
            )
        out.append("")
    out += ["## Provenance", "", provenance_markdown(runs, rel)]
    return "\n".join(out).rstrip() + "\n"


def write_report(
    root: str | Path, out_dir: str | Path | None = None, claims: dict | None = None
) -> list[Path]:
    """Write the report document, tables and figures for every run file under ``root``.

    Nothing is simulated: only the ``*.h5`` run files are read (see
    :func:`~analogebl.reporting.load_runs`), plus the claims of their studies' files.
    Runs are split into cohorts (study, tier, epochs, data sizes) and configurations that
    are never pooled, and a run held by two files counts once
    (:mod:`~analogebl.reporting.pooling`).

    Parameters
    ----------
    root : str or Path
        Folder searched recursively for run files.
    out_dir : str or Path, optional
        Output folder (created if needed); default ``root / "report"``.
    claims : dict, optional
        Study name -> its :class:`~analogebl.study.schema.Claim` objects, instead of reading
        them from the catalog study files (``{}``: test no claim).

    Returns
    -------
    list of Path
        ``report.md`` (claims with verdicts and p-values, every cohort's tables and
        figures, duplicated and incomplete runs, provenance: git sha, version, tiers,
        seeds, wall time per run and in total, machine), ``table.csv`` (one row per cell),
        ``table.tex`` (booktabs tabulars), then the PNG figures, then ``optimizers.csv``
        when the runs compare optimizers or variants. Each file is written atomically,
        figures first and ``report.md`` last, so its links never point at missing files.

    Raises
    ------
    ConfigError
        No run file under ``root``, ``root`` is not a folder, a run file is corrupted or
        malformed (the error names that file), or a study file's claim is malformed (naming
        ``claims.NAME.key``); nothing is written then.
    """
    root = Path(root)
    all_runs = load_runs(root)
    if not all_runs:
        raise ConfigError(
            "no run files (*.h5 with a /meta group) were found under this folder", path=root
        )
    runs, dropped = dedupe(all_runs)
    claim_results = _claims(runs, claims)  # may refuse: before anything is written
    out = Path(out_dir) if out_dir is not None else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    cells = summarize(runs)
    groups = by_cohort(cells)
    names: set[str] = set()
    figures: list[Path] = []
    extra: list[Path] = []
    sections: list[str] = []
    csv_rows: list[str] = []
    for cohort, cs in groups:
        rs = [r for r in runs if cohort_of(r) == cohort]
        prefix = cohort.slug() if len(groups) > 1 else ""
        figs = make_figures(rs, out, cells=cs, prefix=prefix, names=names)
        text = cohort_heading(cohort, cs) + "\n" + tables_markdown(cs, legend=False)
        rows = optimizer_rows(rs)
        if is_comparison(rows):  # optimizers or study variants side by side
            w = _Writer(out, prefix, names)
            optimizer_figures(rows, w.save)
            figs = figs + w.written
            csv_rows.append(optimizers_csv(rows))
            text += (
                "\n#### By variant\n\nFinal accuracies (mean ± std over seeds), time, and "
                "the relative change of each coupling's weights.\n\n" + optimizers_markdown(rows)
            )
        hw = hardware_markdown(rs)
        if hw:
            text += "\n" + hw
        w = _Writer(out, prefix, names)
        probe_figure(rs, w.save)
        figs = figs + w.written
        figures += figs
        text += "\n" + "".join(f"![{f.stem}]({f.name})\n\n" for f in figs)
        sections.append(text.rstrip() + "\n")
    if not groups:
        sections.append("_No run has finished an epoch yet._\n")
    if csv_rows:
        body = csv_rows[0] + "".join(c.split("\n", 1)[1] for c in csv_rows[1:])
        extra.append(atomic_write_text(out / "optimizers.csv", body))
    csv_path = atomic_write_text(out / "table.csv", table_csv(cells))
    tex_path = atomic_write_text(out / "table.tex", tables_latex(cells))
    md = _markdown(root, all_runs, runs, dropped, sections, claim_results)
    md_path = atomic_write_text(out / "report.md", md)
    return [md_path, csv_path, tex_path, *figures, *extra]
