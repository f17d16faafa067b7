"""Read a study's HDF5 run files into a table, with nothing but h5py and NumPy.

Every run of a study writes one HDF5 file ``OUT/RUN_ID.h5``:

* ``/meta`` — attributes naming the run (``study``, ``run_id``, ``tier``, ``dataset``,
  ``rule``, ``beta``, ``profile``, ``seed``, ``backend``, ``version``, ``status``,
  ``epochs_planned``, ...) and text datasets ``config_toml`` (the resolved run
  configuration), ``circuit_toml`` and ``profile_toml``;
* ``/metrics`` — one float array per metric, one entry per finished epoch (``epoch``,
  ``train_error``, ``test_error``, ``train_cost``, ``seconds``, ...);
* ``/checkpoint`` — what a resume needs (parameters, optimizer state, RNG states).

Given a folder, the script reads the run files in it; without one it first runs a small
study into ``--out`` (the smoke tier of ``mnist_dhn_c_ep`` swept over two rules and two
seeds: four runs), then reads them::

    ANALOGEBL_DATA=/path/to/data python read_study_results.py [--fast] [--out DIR]
    python read_study_results.py path/to/study/output      # an existing study's folder

``analogebl study report DIR`` makes the full report (Markdown, CSV, LaTeX tables, figures)
from the same files.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import h5py
import numpy as np

import analogebl as ae


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", nargs="?", type=Path, help="a study's output folder to read")
    p.add_argument(
        "--fast",
        action="store_true",
        default=os.environ.get("ANALOGEBL_EXAMPLES_FAST") == "1",
        help="tiny settings that finish in seconds (also: ANALOGEBL_EXAMPLES_FAST=1)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("analogebl_examples") / "study_results",
        help="where the study runs when no folder is given (default: %(default)s)",
    )
    p.add_argument("--study", default="mnist_dhn_c_ep", help="catalog study (default: %(default)s)")
    p.add_argument("--rules", default="c_ep,p_ep", help="rules to sweep (default: %(default)s)")
    p.add_argument("--seeds", default="0,1", help="seeds to sweep (default: %(default)s)")
    return p.parse_args(argv)


def run_small_study(args) -> Path:
    """Run (or resume) the study's smoke tier into ``args.out`` through the Python API; the
    command line equivalent is ``analogebl study run STUDY --tier smoke --seeds 0-1
    --set ... --out OUT``."""
    from analogebl.study import load_study
    from analogebl.study.runner import run_study

    overrides = [("probes", 0)]  # no per-epoch gradient-fidelity probes
    if args.fast:  # fewer images and the NumPy backend (no JIT compilation)
        overrides += [("train_subset", 300), ("test_subset", 200), ("batch_size", 32),
                      ("backend", "reference")]  # fmt: skip
    sweep = {
        "rule.name": [r.strip() for r in args.rules.split(",") if r.strip()],
        "seed": [int(s) for s in args.seeds.split(",") if s.strip()],
    }
    study = load_study(args.study, "smoke", overrides, sweep_overrides=sweep)
    print(f"running study {study.name} (tier {study.tier}) into {args.out}")
    # one run after another in this process; rerunning on the same folder resumes, and
    # complete runs are skipped
    run_study(study, args.out, log=print, progress=False, quiet=True)
    return args.out


def text(value) -> str:
    """An HDF5 string attribute as str (h5py may return bytes or numpy scalars)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def read_run(path: Path) -> dict | None:
    """One row of the table from a run file, or ``None`` for an HDF5 file without ``/meta``
    (not a run file)."""
    with h5py.File(path, "r") as f:
        if "meta" not in f:
            return None
        meta = f["meta"].attrs
        metrics = f["metrics"]
        test = metrics["test_error"][()]  # one entry per finished epoch
        train = metrics["train_error"][()]
        return {
            "run": text(meta.get("run_id", path.stem)),
            "rule": text(meta["rule"]),
            "profile": text(meta["profile"]),
            "seed": int(meta["seed"]),
            "epochs": f"{len(test)}/{int(meta.get('epochs_planned', len(test)))}",
            "test error": float(test[-1]) if len(test) else math.nan,
            "train error": float(train[-1]) if len(train) else math.nan,
            "seconds": float(np.sum(metrics["seconds"][()])) if "seconds" in metrics else math.nan,
            "status": text(meta.get("status", "")),
        }


def print_table(rows: list[dict]) -> None:
    """A plain fixed-width table; errors in %."""
    cols = list(rows[0])
    cells = [
        [f"{100 * v:.2f}%" if "error" in c else f"{v:.2f}" if c == "seconds" else str(v)
         for c, v in r.items()]
        for r in rows
    ]  # fmt: skip
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    for row in [cols, ["-" * w for w in widths], *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def main(argv=None) -> int:
    args = parse_args(argv)
    folder = args.folder if args.folder is not None else run_small_study(args)
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2
    rows = []
    for path in sorted(folder.rglob("*.h5")):
        try:
            row = read_run(path)
        except (OSError, KeyError) as exc:  # not HDF5, or a /meta without the run's fields
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        if row is not None:
            rows.append(row)
    if not rows:
        print(f"error: no run files (*.h5 with /meta) under {folder}", file=sys.stderr)
        return 2
    print(f"\n{len(rows)} run file(s) under {folder}; final epoch of each run:\n")
    print_table(rows)

    # the mean over seeds per rule and profile (what the report's cells hold)
    groups: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        groups.setdefault((r["rule"], r["profile"]), []).append(r["test error"])
    print("\nmean test error over seeds:")
    for (rule, profile), errors in sorted(groups.items()):
        spread = f" ± {100 * np.std(errors, ddof=1):.2f}" if len(errors) > 1 else ""
        print(f"  {rule:6s} {profile:12s} {100 * np.mean(errors):6.2f}%{spread}  "
              f"({len(errors)} seed{'s' if len(errors) > 1 else ''})")  # fmt: skip
    print(f"\nfull report: analogebl study report {folder}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ae.AnalogeblError as exc:  # missing data, a folder locked by another study
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
