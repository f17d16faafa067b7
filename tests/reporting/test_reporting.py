"""Reports come from HDF5 run files only: numbers, layout, formats, atomicity, errors."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from analogebl.errors import ConfigError
from analogebl.recording import Checkpoint, RunRecord, write_run
from analogebl.reporting import aggregate, load_runs, table_latex, write_report


def _run(path, rule, dataset, seed, test, train, profile="none", beta=0.25, complete=True):
    n = len(test)
    meta = {"study": "s", "rule": rule, "dataset": dataset, "seed": seed, "profile": profile,
            "beta": beta, "complete": complete, "status": "complete" if complete else "running",
            "epochs_planned": n if complete else n + 1}
    metrics = {"epoch": np.arange(1, n + 1), "test_error": np.asarray(test),
               "train_error": np.asarray(train), "seconds": np.ones(n),
               "train_cost": np.ones(n)}
    write_run(path, RunRecord(meta, "x = 1\n", "", metrics, Checkpoint(n, 0)))


@pytest.fixture
def tree(tmp_path):
    _run(tmp_path / "a.h5", "c_ep", "mnist", 0, [0.5, 0.10], [0.6, 0.05])
    _run(tmp_path / "b.h5", "c_ep", "mnist", 1, [0.4, 0.12], [0.5, 0.07])
    _run(tmp_path / "c.h5", "p_ep", "mnist", 0, [0.6, 0.20], [0.7, 0.15], complete=False)
    (tmp_path / "sub").mkdir()
    _run(tmp_path / "sub" / "d.h5", "cl", "cifar10", 0, [0.9, 0.50], [0.9, 0.45], beta=1.0)
    return tmp_path


def test_cells_are_mean_and_sample_std_over_seeds(tree):
    cells = aggregate(load_runs(tree))
    c = cells[("none", "c_ep", "mnist")]
    m, s = c.test_mean_std
    assert m == pytest.approx(11.0) and s == pytest.approx(np.std([10.0, 12.0], ddof=1))
    assert c.train_mean_std[0] == pytest.approx(6.0)
    assert c.text() == "11.00 ± 1.41 (6.00)"
    assert cells[("none", "p_ep", "mnist")].text() == "20.00 (15.00)†"


def test_report_files_layout_and_csv_round_trip(tree):
    files = write_report(tree)
    names = [f.name for f in files]
    assert names[:3] == ["report.md", "table.csv", "table.tex"]
    md = (tree / "report" / "report.md").read_text()
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert lines[0] == "| rule | MNIST | CIFAR-10 |"  # datasets in the paper's order
    assert [ln.split(" | ")[0] for ln in lines[1:]] == ["| CL", "| P-EP", "| C-EP"]
    assert "†" in md
    rows = list(csv.DictReader(io.StringIO((tree / "report" / "table.csv").read_text())))
    got = {(r["rule"], r["dataset"]): r for r in rows}
    assert float(got[("c_ep", "mnist")]["test_mean"]) == pytest.approx(11.0)
    assert int(got[("c_ep", "mnist")]["n"]) == 2 and got[("cl", "cifar10")]["test_std"] == ""
    for f in files[3:]:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tree / "report").glob("*.tmp*"))
    again = write_report(tree)
    assert [f.name for f in again] == names
    assert (tree / "report" / "report.md").read_text() == md


def test_figures_only_when_data_allows(tmp_path):
    _run(tmp_path / "a.h5", "c_ep", "mnist", 0, [0.3], [0.4])  # one epoch, one rule
    names = [f.name for f in write_report(tmp_path)]
    assert not any(n.startswith(("curves", "bars", "error_vs_beta", "heatmap")) for n in names)
    _run(tmp_path / "b.h5", "c_ep", "mnist", 0, [0.3, 0.2], [0.4, 0.3], beta=0.5)
    _run(tmp_path / "c.h5", "c_ep", "mnist", 0, [0.3, 0.25], [0.4, 0.3], profile="reram_like")
    names = [f.name for f in write_report(tmp_path)]
    assert "error_vs_beta.png" in names and "heatmap_mnist.png" in names


def test_latex_is_escaped():
    from analogebl.reporting.tables import Cell

    tex = table_latex({("a_b", "my_rule", "data&set"): Cell((0.1,), (0.2,), False)})
    assert r"my\_rule" in tex and r"data\&set" in tex and r"a\_b" in tex
    assert r"\toprule" in tex and r"\bottomrule" in tex


def test_corrupted_and_empty_inputs(tmp_path):
    with pytest.raises(ConfigError, match="no run files"):
        write_report(tmp_path)
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(ConfigError, match="bad.h5"):
        write_report(tmp_path)
    assert not (tmp_path / "report").exists() or not list((tmp_path / "report").iterdir())


def test_nan_std_for_one_seed():
    from analogebl.reporting.tables import Cell

    assert math.isnan(Cell((0.1,), (0.1,), False).test_mean_std[1])
