"""Bad input: one clear line naming the file/key, exit status 2, nothing half-written."""

from __future__ import annotations

import shutil

import pytest

from analogebl.cli import main

GOOD_STUDY = (
    'dataset = "mnist"\nepochs = 1\ntrain_subset = 64\ntest_subset = 64\n'
    'batch_size = 32\n[circuit]\nname = "tiny_dense"\n[rule]\nname = "c_ep"\n'
    "beta = 0.25\n[optimizer]\nlr = 0.1\n"
)

# (extra argv after "study run STUDY", study file text or None for mnist_dhn_c_ep, words the
# message must contain)
CASES = {
    "unknown study": (["study", "run", "no_such_study"], None, ["no_such_study", "known"]),
    "unknown --set key": (["--set", "optimiser.lr=0.1"], None, ["optimiser.lr"]),
    "--set wrong type": (["--set", "epochs=three"], None, ["epochs", "int"]),
    "--set negative": (["--set", "epochs=-2"], None, ["epochs", "> 0"]),
    "--set without =": (["--set", "epochs"], None, ["key=value"]),
    "--set bad enum": (["--set", "relaxation.schedule=sideways"], None, ["relaxation.schedule"]),
    "--set unknown rule": (["--set", "rule.name=hebb"], None, ["hebb"]),
    "--set unknown circuit": (["--set", "circuit.name=nope"], None, ["nope"]),
    "--set unknown dataset": (["--set", "dataset=imagenet"], None, ["imagenet"]),
    "--set lr list length": (["--set", "optimizer.lr=[0.1, 0.2, 0.3]"], None, ["optimizer.lr"]),
    "bad executor": (["--executor", "slurm"], None, ["--executor", "slurm"]),
    "executor local:0": (["--executor", "local:0"], None, ["--executor"]),
    "dask without port": (["--executor", "dask://localhost"], None, ["dask://HOST:PORT"]),
    "bad seeds": (["--seeds", "a,b"], None, ["--seeds"]),
    "seed and seeds": (["--seed", "1", "--seeds", "0,1"], None, ["--seeds"]),
    "unknown tier in file": ([], GOOD_STUDY + "[tiers.huge]\nepochs = 2\n", ["tiers.huge"]),
    "unknown key in file": ([], GOOD_STUDY.replace("epochs", "epochz"), ["epochz"]),
    "malformed TOML": ([], GOOD_STUDY + "[rule\n", ["invalid TOML"]),
    "unknown sweep axis": ([], GOOD_STUDY + "[sweep]\nrule.nam = ['c_ep']\n", ["sweep.rule.nam"]),
    "sweep not a list": ([], GOOD_STUDY + "[sweep]\nseed = 3\n", ["sweep.seed", "list"]),
    "bad sweep value": ([], GOOD_STUDY + "[sweep]\nseed = ['x']\n", ["seed"]),
    "missing required key": ([], GOOD_STUDY.replace('dataset = "mnist"\n', ""), ["dataset"]),
    "tier the study lacks": (["--tier", "cpu"], GOOD_STUDY, ["tier 'cpu'"]),
    "unknown profile": (["--profile", "unobtainium"], None, ["unobtainium"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(case, data_dir, tmp_path, capsys):
    extra, text, words = CASES[case]
    out = tmp_path / "out"
    if extra[:2] == ["study", "run"]:
        argv = extra + ["--out", str(out)]
    else:
        name = "mnist_dhn_c_ep"
        if text is not None:
            f = tmp_path / "study.toml"
            f.write_text(text)
            name = str(f)
        argv = ["study", "run", name, "--tier", "smoke", "--out", str(out)] + extra
        if text is not None and "--tier" in extra:
            argv = ["study", "run", name, "--out", str(out)] + extra
        elif text is not None:
            argv = ["study", "run", name, "--out", str(out)] + extra
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, (case, err)
    assert len(err) == 1, err
    assert err[0].startswith("analogebl: error: ")
    for w in words:
        assert w in err[0], (case, w, err[0])
    if text is not None:
        assert "study.toml" in err[0] or "--" in err[0]
    assert not out.exists()


def test_missing_dataset_stops_before_writing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ANALOGEBL_DATA", str(tmp_path))
    out = tmp_path / "out"
    rc = main(["study", "run", "c_ep_cifar100", "--tier", "smoke", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    # which files are missing, where the official archive is and its MD5
    assert "cifar100" in err[0] and "http" in err[0] and "MD5" in err[0].upper()
    assert not out.exists()


def test_corrupted_dataset_names_the_file(data_dir, tmp_path, capsys, monkeypatch):
    root = tmp_path / "data"
    shutil.copytree(f"{data_dir}/mnist", root / "mnist")
    victim = sorted((root / "mnist").glob("t10k-images*"))[0]
    victim.write_bytes(victim.read_bytes()[:1000])
    monkeypatch.setenv("ANALOGEBL_DATA", str(root))
    out = tmp_path / "out"
    rc = main(["study", "run", "mnist_dhn_c_ep", "--tier", "smoke", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and victim.name in err[0]
    assert not out.exists()


def test_unwritable_output_folder(data_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    rc = main(["study", "run", "mnist_dhn_c_ep", "--tier", "smoke", "--out", str(blocker / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "output folder" in err[0]


def test_report_of_an_empty_folder(tmp_path, capsys):
    rc = main(["study", "report", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(tmp_path) in err[0]


def test_a_tier_the_study_lacks(capsys):
    """Tiers are full/cpu/smoke plus the study's extra_tiers: a tier it lacks exits 2."""
    rc = main(["study", "run", "mnist_dhn_c_ep", "--tier", "huge"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "mnist_dhn_c_ep.toml" in err[0] and "'huge'" in err[0] and "full, cpu, smoke" in err[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["study", "run", "mnist_dhn_c_ep", "--backend", "fpga"],
        ["study", "run", "mnist_dhn_c_ep", "--dtype", "float8"],
        ["study", "run", "mnist_dhn_c_ep", "--epochs", "many"],
    ],
)
def test_bad_flags_are_usage_errors(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
