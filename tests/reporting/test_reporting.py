"""Reports come from HDF5 run files only: numbers, layout, formats, atomicity, errors.

Run files are written here with h5py exactly as the recorder's schema says (``/meta``
attributes + ``/meta/config_toml``, ``/metrics`` 1-D float64, a ``/checkpoint`` to ignore).
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from analogebl.errors import ConfigError
from analogebl.reporting import (
    CSV_COLUMNS,
    latex_escape,
    load_runs,
    make_figures,
    rules_by_profiles,
    summarize,
    table_csv,
    tables_latex,
    tables_markdown,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_run_file(
    path: Path,
    *,
    rule="c_ep",
    dataset="mnist",
    seed=0,
    test=(0.5, 0.1),
    train=(0.4, 0.05),
    profile="none",
    beta=0.25,
    complete=True,
    study="s",
    extra_metrics=("energy",),
    planned=None,
) -> Path:
    """Write one synthetic run file following the recorder's schema exactly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(test)
    with h5py.File(path, "w") as f:
        meta = f.create_group("meta")
        attrs = {
            "study": study,
            "tier": "cpu",
            "dataset": dataset,
            "rule": rule,
            "beta": float(beta),
            "profile": profile,
            "optimizer": "sgd",
            "seed": seed,
            "backend": "reference",
            "dtype": "float64",
            "device": "cpu",
            "version": "0.1.0",
            "git_sha": "0" * 40,
            "epochs_planned": planned or (n if complete else n + 3),
            "complete": complete,
        }
        for k, v in attrs.items():
            meta.attrs[k] = v
        meta.create_dataset("config_toml", data=f'rule = "{rule}"\n')
        cols = {
            "epoch": np.arange(1, n + 1),
            "train_error": train,
            "test_error": test,
            "train_cost": np.linspace(1.0, 0.5, n),
            "seconds": np.full(n, 2.0),
        }
        cols.update({k: np.ones(n) for k in extra_metrics})
        m = f.create_group("metrics")
        for k, v in cols.items():
            m.create_dataset(k, data=np.asarray(v, dtype=np.float64))
        f.create_group("checkpoint").create_dataset("params/W1", data=np.zeros((3, 2)))
    return path


@pytest.fixture
def tree(tmp_path):
    """C-EP on MNIST with three seeds, a one-seed P-EP (incomplete), CL on CIFAR-10."""
    root = tmp_path / "runs"
    for seed, (te, tr) in enumerate([(0.10, 0.05), (0.12, 0.06), (0.17, 0.07)]):
        write_run_file(
            root / f"c_ep/s{seed}.h5", seed=seed, test=(0.5, 0.3, te), train=(0.4, 0.2, tr)
        )
    write_run_file(
        root / "p_ep/s0.h5",
        rule="p_ep",
        test=(0.6, 0.2),
        train=(0.7, 0.15),
        complete=False,
        planned=3,
    )
    write_run_file(
        root / "deep/er/cl.h5",
        rule="cl",
        dataset="cifar10",
        beta=math.nan,
        test=(0.9, 0.7, 0.5),
        train=(0.9, 0.6, 0.45),
        extra_metrics=(),
    )
    return root


def test_load_runs_reads_the_schema_and_skips_non_run_files(tree):
    with h5py.File(tree / "dataset_cache.h5", "w") as f:  # no /meta: not a run file
        f.create_dataset("x", data=np.zeros(3))
    (tree / "notes.txt").write_text("not hdf5")
    runs = load_runs(tree)
    assert [r.path.relative_to(tree).as_posix() for r in runs] == [
        "c_ep/s0.h5",
        "c_ep/s1.h5",
        "c_ep/s2.h5",
        "deep/er/cl.h5",
        "p_ep/s0.h5",
    ]
    r = runs[1]
    assert (r.rule, r.dataset, r.profile, r.seed, r.complete) == ("c_ep", "mnist", "none", 1, True)
    assert isinstance(r.meta["seed"], int) and isinstance(r.meta["complete"], bool)
    assert r.meta["git_sha"] == "0" * 40 and r.config_toml == 'rule = "c_ep"\n'
    assert r.final_test_error == 0.12 and r.final_train_error == 0.06 and r.epochs_done == 3
    assert "energy" in r.metrics and "params/W1" not in r.metrics
    assert math.isnan(runs[3].beta) and runs[3].rule == "cl"
    assert not runs[4].complete and runs[4].meta["epochs_planned"] == 3
    with pytest.raises(ValueError):
        r.metrics["test_error"][0] = 1.0  # read-only


def test_cells_are_mean_and_sample_std_over_seeds(tree):
    cells = {(c.profile, c.rule, c.dataset): c for c in summarize(load_runs(tree))}
    c = cells[("none", "c_ep", "mnist")]
    assert c.n == 3 and c.seeds == (0, 1, 2)
    assert c.test_mean == pytest.approx(13.0)  # (10 + 12 + 17) / 3
    assert c.test_std == pytest.approx(math.sqrt((9 + 1 + 16) / 2))  # ddof = 1
    assert c.train_mean == pytest.approx(6.0) and c.train_std == pytest.approx(1.0)
    one = cells[("none", "p_ep", "mnist")]
    assert one.n == 1 and math.isnan(one.test_std) and one.incomplete
    md = tables_markdown(list(cells.values()))
    assert "| C-EP | 13.00 ± 3.61 (6.00) [n=3] | – |" in md
    assert "| P-EP | 20.00 ± – (15.00)† [n=1] | – |" in md  # one seed: "± –"


def test_rules_and_datasets_in_canonical_order_unknowns_appended(tmp_path):
    rules = [
        "zz_new",
        "rbp",
        "tbp",
        "c_cpl",
        "n_cpl",
        "p_cpl",
        "c_ep",
        "n_ep",
        "p_ep",
        "cl",
        "aa_new",
    ]
    for i, rule in enumerate(rules):
        write_run_file(tmp_path / f"r{i}.h5", rule=rule, test=(0.3,), train=(0.2,))
    for i, ds in enumerate(["imagenet", "cifar100", "svhn", "cifar10", "fmnist"]):
        write_run_file(tmp_path / f"d{i}.h5", rule="c_ep", dataset=ds, test=(0.3,), train=(0.2,))
    md = tables_markdown(summarize(load_runs(tmp_path)))
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert lines[0] == "| Rule | MNIST | F-MNIST | SVHN | CIFAR-10 | CIFAR-100 | imagenet |"
    assert [ln.split(" | ")[0][2:] for ln in lines[1:]] == [
        "CL",
        "P-EP",
        "N-EP",
        "C-EP",
        "P-CpL",
        "N-CpL",
        "C-CpL",
        "TBP",
        "RBP",
        "aa_new",
        "zz_new",
    ]
    assert "n = 1 seed(s) per cell." in md
    csv_rules = [
        row["rule"]
        for row in csv.DictReader(io.StringIO(table_csv(summarize(load_runs(tmp_path)))))
    ]
    assert csv_rules[0] == "cl" and csv_rules[-1] == "zz_new"


def test_incomplete_runs_are_flagged_everywhere(tree):
    write_report(tree)
    md = (tree / "report/report.md").read_text()
    assert "20.00 ± – (15.00)†" in md
    assert "† includes runs that did not finish all planned epochs" in md
    assert "| `p_ep/s0.h5` | P-EP | MNIST | none | 0 | 2 / 3 |" in md
    rows = {r["rule"]: r for r in csv.DictReader(open(tree / "report/table.csv"))}
    assert rows["p_ep"]["n_incomplete"] == "1" and rows["c_ep"]["n_incomplete"] == "0"
    tex = (tree / "report/table.tex").read_text()
    assert r"(15.00)$^{\dagger}$" in tex and r"$^{\dagger}$ includes runs" in tex


def test_csv_parses_back_to_the_same_numbers(tree):
    cells = summarize(load_runs(tree))
    rows = list(csv.DictReader(io.StringIO(table_csv(cells))))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == len(cells) == 3
    for row, c in zip(rows, cells, strict=True):
        assert (row["profile"], row["rule"], row["dataset"]) == (c.profile, c.rule, c.dataset)
        assert int(row["n"]) == c.n and row["seeds"] == " ".join(map(str, c.seeds))
        assert float(row["test_mean_pct"]) == c.test_mean
        assert float(row["train_mean_pct"]) == c.train_mean
        for key, v in (("test_std_pct", c.test_std), ("train_std_pct", c.train_std)):
            assert row[key] == "" if math.isnan(v) else float(row[key]) == v
    c_ep = next(r for r in rows if r["rule"] == "c_ep")
    assert float(c_ep["test_std_pct"]) == pytest.approx(math.sqrt(13))
    assert c_ep["betas"] == "0.25" and next(r for r in rows if r["rule"] == "cl")["betas"] == ""


def test_several_profiles_give_one_table_each_and_a_rules_by_profiles_table(tree):
    kw = {"profile": "reram_like"}  # 3 epochs, like the tree's runs: one cohort
    write_run_file(tree / "hw/a.h5", test=(0.5, 0.4, 0.2), train=(0.4, 0.3, 0.1), **kw)
    write_run_file(tree / "hw/b.h5", seed=1, test=(0.5, 0.4, 0.3), train=(0.4, 0.3, 0.2), **kw)
    cells = summarize(load_runs(tree))
    md = tables_markdown(cells)
    assert "### Profile none:" in md and "### Profile reram_like:" in md
    table = rules_by_profiles(cells, "mnist")
    lines = [ln for ln in table.splitlines() if ln.startswith("| ")]
    assert lines[0] == "| Rule | none | reram_like |"
    assert lines[1:] == [
        "| P-EP | 20.00 ± –† [n=1] | – |",
        "| C-EP | 13.00 ± 3.61 [n=3] | 25.00 ± 7.07 [n=2] |",
    ]
    assert table in md
    assert "CIFAR-10: final test error % by hardware profile" not in md  # one profile only
    assert r"\toprule" in rules_by_profiles(cells, "mnist", fmt="latex")
    with pytest.raises(ValueError, match="fmt"):
        rules_by_profiles(cells, "mnist", fmt="html")


def test_latex_is_booktabs_and_escaped(tmp_path):
    nasty = "a_b&c%$#{}~^\\"
    write_run_file(
        tmp_path / "x.h5", rule=nasty, dataset="d&s", profile="p_1", test=(0.3,), train=(0.2,)
    )
    write_run_file(
        tmp_path / "y.h5", rule="c_ep", dataset="d&s", profile="p 2", test=(0.3,), train=(0.2,)
    )
    tex = tables_latex(summarize(load_runs(tmp_path)))
    esc = r"a\_b\&c\%\$\#\{\}\textasciitilde{}\textasciicircum{}\textbackslash{}"
    assert latex_escape(nasty) == esc
    assert esc + " & " in tex and r"d\&s" in tex and r"Profile p\_1" in tex
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 3
    assert tex.count(r"\toprule") == tex.count(r"\midrule") == tex.count(r"\bottomrule") == 3
    assert "±" not in tex and "†" not in tex and r"$\pm$ --" in tex
    body = re.sub(r"\\[a-zA-Z]+(\{\})?|\\[&%$#_{}]|\$[^$]*\$|^%.*$", "", tex, flags=re.M)
    assert not re.search(r"[%#_^~]", body)  # every special character was escaped


def _pngs(paths):
    import matplotlib.image as mpimg

    for p in paths:
        assert p.read_bytes()[:8] == PNG_SIGNATURE
        assert mpimg.imread(p).shape[0] > 50


def test_figures_only_when_the_data_allows(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    root = tmp_path / "runs"
    write_run_file(root / "a.h5", test=(0.3,), train=(0.2,))  # one epoch, one β, one profile
    write_run_file(root / "b.h5", rule="cl", beta=math.nan, test=(0.3,), train=(0.2,))
    made = make_figures(load_runs(root), out)
    assert [p.name for p in made] == ["bars_none_mnist.png"]
    write_run_file(root / "c.h5", seed=1, beta=0.5, test=(0.4, 0.2), train=(0.3, 0.1))
    write_run_file(root / "d.h5", profile="reram like", test=(0.4, 0.25), train=(0.3, 0.1))
    made = make_figures(load_runs(root), out)
    assert [p.name for p in made] == [
        "curves_none_mnist.png",
        "curves_reram-like_mnist.png",
        "bars_none_mnist.png",
        "bars_reram-like_mnist.png",
        "beta_none_mnist.png",
        "heatmap_mnist.png",
    ]
    _pngs(made)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in made)


def test_write_report_files_links_and_identical_regeneration(tree):
    files = write_report(tree)
    out = tree / "report"
    assert [f.name for f in files[:3]] == ["report.md", "table.csv", "table.tex"]
    assert all(f.parent == out for f in files) and len(files) > 3
    _pngs(files[3:])
    md = (out / "report.md").read_text()
    for f in files[3:]:
        assert f"]({f.name})" in md
    first = {n: (out / n).read_bytes() for n in ("report.md", "table.csv", "table.tex")}
    again = write_report(tree)
    assert again == files
    assert {n: (out / n).read_bytes() for n in first} == first
    custom = write_report(tree, tree.parent / "elsewhere")
    assert (custom[1].read_bytes(), custom[2].read_bytes()) == (
        first["table.csv"],
        first["table.tex"],
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in files)


def test_atomic_writes_leave_no_temp_files_even_on_failure(tree, monkeypatch):
    write_report(tree)
    out = tree / "report"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert not [n for n in before if n.startswith(".") or n.endswith(".tmp")]

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("analogebl.recording.atomic.os.replace", broken_replace)
    write_run_file(tree / "more.h5", seed=7, test=(0.9, 0.9), train=(0.9, 0.9))
    with pytest.raises(OSError, match="disk full"):
        write_report(tree)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_runs_without_a_finished_epoch_are_listed_not_tabulated(tree):
    write_run_file(tree / "fresh.h5", rule="tbp", test=(), train=(), complete=False)
    runs = load_runs(tree)
    assert math.isnan(next(r for r in runs if r.rule == "tbp").final_test_error)
    assert "tbp" not in {c.rule for c in summarize(runs)}
    write_report(tree)
    md = (tree / "report/report.md").read_text()
    assert "1 without a finished epoch" in md and "| `fresh.h5` | TBP |" in md


def test_corrupted_or_malformed_file_raises_config_error_naming_it(tree):
    bad = tree / "sub" / "bad.h5"
    bad.parent.mkdir()
    bad.write_bytes(b"definitely not hdf5")
    with pytest.raises(ConfigError, match="bad.h5") as exc:
        write_report(tree)
    assert exc.value.path == str(bad)
    bad.write_bytes(write_run_file(tree / "x.h5").read_bytes()[:600])  # truncated
    (tree / "x.h5").unlink()
    with pytest.raises(ConfigError, match="bad.h5"):
        load_runs(tree)
    bad.unlink()
    with h5py.File(tree / "broken.h5", "w") as f:  # /meta present, test_error missing
        f.create_group("meta").attrs.update(
            {
                "rule": "cl",
                "dataset": "mnist",
                "profile": "none",
                "seed": 0,
                "beta": 0.1,
                "complete": True,
            }
        )
        f.create_group("metrics").create_dataset("epoch", data=np.ones(1))
        f["metrics"].create_dataset("train_error", data=np.ones(1))
    with pytest.raises(ConfigError, match="metrics/test_error") as exc:
        load_runs(tree)
    assert exc.value.path == str(tree / "broken.h5")


def test_empty_tree_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no run files") as exc:
        write_report(tmp_path)
    assert exc.value.path == str(tmp_path)
    with h5py.File(tmp_path / "cache.h5", "w") as f:
        f.create_dataset("x", data=np.zeros(2))
    with pytest.raises(ConfigError, match="no run files"):
        write_report(tmp_path)
    assert not (tmp_path / "report").exists()
    with pytest.raises(ConfigError, match="not an existing folder"):
        load_runs(tmp_path / "missing")


def test_reporting_imports_no_simulation_code():
    src = Path(__file__).resolve().parents[2] / "analogebl" / "reporting"
    imported = set()
    for f in src.glob("*.py"):
        imported |= set(
            re.findall(r"^\s*(?:from|import) (analogebl[\w.]*)", f.read_text(), flags=re.M)
        )
    # besides itself: errors, the run-file format (recording), the rule names and labels,
    # and the study-file schema (claims are declared in study files)
    allowed = (
        "analogebl.errors",
        "analogebl.learning.rules",
        "analogebl.study.schema",
        "analogebl.study.claims",
    )
    assert imported and all(
        m in allowed or m.startswith(("analogebl.reporting", "analogebl.recording"))
        for m in imported
    )
