"""Bad input at the command line, in the catalogs and in dataset files: one clean refusal.

Tables: every ``argv`` with a bad flag value or a bad argument exits 2 with one line naming
the flag (or file) and what is wrong, and writes nothing; a broken user file in a catalog is
listed with its error while the rest of the catalog is still listed; a damaged dataset file
is refused with its name before anything is written.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.io import savemat

from analogebl.data.formats import (
    read_cifar_binary,
    read_idx_images,
    read_idx_labels,
    read_svhn_mat,
)
from analogebl.errors import DataError
from tests.robustness.harness import assert_clean_refusal, run_cli, snapshot

STUDY = (
    'dataset = "mnist"\nepochs = 1\ntrain_subset = 64\ntest_subset = 64\nbatch_size = 32\n'
    '[circuit]\nname = "tiny_dense"\n[rule]\nname = "c_ep"\nbeta = 0.25\n[optimizer]\nlr = 0.1\n'
)

# ---------------------------------------------------------------------------------------
# flag values: (argv after the command, words of the one error line). "STUDY" is replaced
# by a tiny study file, "OUT" by the --out folder, "FILE" by a plain file in the sandbox.
G = ["check", "gradients", "--iterations", "20"]
R = ["study", "run", "STUDY", "--out", "OUT"]
FLAGS = {
    "betas not a number": (G + ["--betas", "0.1,abc"], ["--betas", "'abc'"]),
    "betas nan": (G + ["--betas", "nan"], ["--betas", "finite"]),
    "betas inf": (G + ["--betas", "0.01,inf"], ["--betas", "finite"]),
    "betas negative": (G + ["--betas=-0.1"], ["--betas", "> 0"]),
    "betas zero": (G + ["--betas", "0"], ["--betas", "> 0"]),
    "betas empty": (G + ["--betas", ""], ["--betas"]),
    "betas empty item": (G + ["--betas", "0.1,,0.2"], ["--betas"]),
    "betas repeated": (G + ["--betas", "0.1,0.1"], ["--betas", "twice"]),
    "batch zero": (G + ["--batch", "0"], ["--batch", ">= 1"]),
    "batch negative": (G + ["--batch=-3"], ["--batch", ">= 1"]),
    "batch not an integer": (G + ["--batch", "2.5"], ["--batch", "integer"]),
    "batch beyond memory": (G + ["--batch", str(10**13)], ["batch_size", "GiB"]),
    "iterations zero": (G + ["--iterations", "0"], ["--iterations", ">= 1"]),
    "gradcheck seed negative": (G + ["--seed=-1"], ["--seed", "0.."]),
    "gradcheck seed 10^30": (G + ["--seed", str(10**30)], ["--seed", "0.."]),
    "width nan": (G + ["--width", "nan"], ["--width", "finite"]),
    "width inf": (G + ["--width", "inf"], ["--width", "finite"]),
    "width zero": (G + ["--width", "0"], ["--width", "> 0"]),
    "rules empty": (G + ["--rules", ""], ["--rules"]),
    "rules only commas": (G + ["--rules", ",,"], ["--rules"]),
    "rules repeated": (G + ["--rules", "c_ep,c_ep"], ["--rules", "twice"]),
    "rules unknown": (G + ["--rules", "c_ep,hebb"], ["--rules", "hebb"]),
    "model unknown": (G + ["--model", "transformer"], ["--model", "transformer"]),
    "model rules unknown": (G + ["--model", "looped_mlp", "--rules", "tbp"], ["--rules", "tbp"]),
    "circuit unknown": (G + ["--circuit", "nope"], ["unknown circuit 'nope'"]),
    "circuit file missing": (G + ["--circuit", "FILE.toml"], ["no such circuit file"]),
    "checkpoint seconds nan": (R + ["--checkpoint-seconds", "nan"], ["--checkpoint-seconds"]),
    "checkpoint seconds inf": (R + ["--checkpoint-seconds", "inf"], ["--checkpoint-seconds"]),
    "checkpoint seconds negative": (R + ["--checkpoint-seconds=-1"], ["--checkpoint-seconds"]),
    "checkpoint minutes nan": (R + ["--set", "checkpoint_minutes=nan"], ["checkpoint_minutes"]),
    "threads zero": (R + ["--threads", "0"], ["--threads", "'0'"]),
    "threads negative": (R + ["--threads=-1"], ["--threads", "'-1'"]),
    "threads word": (R + ["--threads", "abc"], ["--threads", "'abc'"]),
    "threads fraction": (R + ["--threads", "1.5"], ["--threads", "'1.5'"]),
    "seed negative": (R + ["--seed=-1"], ["--seed", "0.."]),
    "seed 10^30": (R + ["--seed", str(10**30)], ["--seed", "0.."]),
    "seeds repeated": (R + ["--seeds", "0,1,0"], ["--seeds", "seed 0", "twice"]),
    "seeds negative": (R + ["--seeds=-1,2"], ["--seeds", "-1"]),
    "seeds reversed range": (R + ["--seeds", "4-1"], ["--seeds", "'4-1'"]),
    "seeds huge range": (R + ["--seeds", "0-100000000"], ["--seeds", "10000"]),
    "seeds beyond int64": (R + ["--seeds", f"1,{2**64}"], ["--seeds", str(2**64)]),
    "seeds empty item": (R + ["--seeds", "1,,2"], ["--seeds"]),
    "seed and seeds": (R + ["--seed", "1", "--seeds", "0,1"], ["--seed", "--seeds"]),
    "epochs zero": (R + ["--epochs", "0"], ["--epochs", ">= 1"]),
    "epochs negative": (R + ["--epochs=-2"], ["--epochs", ">= 1"]),
    "epochs word": (R + ["--epochs", "many"], ["--epochs", "'many'"]),
    "empty tier": (R + ["--tier", ""], ["--tier", "empty"]),
    "empty out": (["study", "run", "STUDY", "--out", ""], ["--out", "empty"]),
    "empty profile": (R + ["--profile", " "], ["--profile", "empty"]),
    "empty device": (R + ["--device", ""], ["--device", "empty"]),
    "profile path escape": (R + ["--profile", "../../etc/passwd"], ["hardware profile"]),
    "bad backend": (R + ["--backend", "fpga"], ["--backend", "fpga"]),
    "bad dtype": (R + ["--dtype", "float16"], ["--dtype", "float16"]),
    "no subcommand": (["study"], ["study", "required"]),
    "unknown subcommand": (["study", "delete"], ["study", "delete"]),
    "unknown flag": (R + ["--epochz", "1"], ["--epochz"]),
}


def _argv(argv: list[str], tmp: Path) -> list[str]:
    study = tmp / "study.toml"
    study.write_text(STUDY)
    (tmp / "FILE").write_text("a plain file\n")
    sub = {"STUDY": str(study), "OUT": str(tmp / "out"), "FILE": str(tmp / "FILE")}
    out = []
    for a in argv:
        for k, v in sub.items():
            if a == k or a.startswith(k + "."):
                a = v + a[len(k) :]
        out.append(a)
    return out


@pytest.mark.parametrize("case", list(FLAGS))
def test_bad_flag_values_are_refused_in_one_line(case, tmp_path, capsys):
    argv, words = FLAGS[case]
    argv = _argv(argv, tmp_path)
    before = snapshot(tmp_path)
    outcome = run_cli(argv, capsys)
    assert_clean_refusal(outcome, words, before, snapshot(tmp_path), tmp_path / "out", tmp_path)
    assert not (tmp_path / "out").exists()
    assert not outcome.out_lines  # nothing ran


def test_good_flag_values_still_pass(tmp_path, capsys):
    """The checks refuse only what is wrong: the edges of each range are accepted."""
    out = run_cli(
        G + ["--betas", "0.05,0.1,", "--rules", "c_ep,p_ep", "--batch", "1", "--seed", "0"],
        capsys,
    )
    assert out.rc == 0, out.err
    assert any(line.startswith("c_ep") for line in out.out_lines)
    from analogebl.cli import _parse_seeds, build_parser

    args = build_parser().parse_args(
        ["study", "run", "x", "--threads", "auto", "--checkpoint-seconds", "0", "--seed", "0"]
    )
    assert args.threads == "auto" and args.checkpoint_seconds == 0.0 and args.seed == 0
    assert build_parser().parse_args(["study", "run", "x", "--threads", "3"]).threads == 3
    assert _parse_seeds("0-4") == [0, 1, 2, 3, 4] and _parse_seeds("3,1,") == [3, 1]


# ---------------------------------------------------------------------------------------
# catalogs: one broken user file, the rest still listed. (file name, text, words of its
# ERROR line besides the file name)
BROKEN_STUDIES = {
    "malformed TOML": ("zz_bad.toml", STUDY + "[rule\n", ["invalid TOML"]),
    "sweep is a number": ("zz_bad.toml", "sweep = 5\n" + STUDY, ["sweep"]),
    "tier is a number": ("zz_bad.toml", "tiers = {smoke = 3}\n" + STUDY, ["tiers.smoke"]),
    "per_rule is a list": ("zz_bad.toml", "per_rule = [1]\n" + STUDY, ["per_rule"]),
    "unknown key": ("zz_bad.toml", STUDY.replace("epochs", "epochz"), ["epochz"]),
    "missing key": ("zz_bad.toml", STUDY.replace('dataset = "mnist"\n', ""), ["dataset"]),
    "description a number": ("zz_bad.toml", "description = 5\n" + STUDY, ["description"]),
    "not UTF-8": ("zz_bad.toml", b'description = "\xff\xfe"\n', ["UTF-8"]),
    "nested too deeply": ("zz_bad.toml", "x = " + "[" * 5000 + "]" * 5000, ["nested"]),
    "a folder named .toml": ("zz_bad.toml", None, ["not a regular file"]),
}


def _write(path: Path, text: str | bytes | None) -> None:
    if text is None:
        path.mkdir(parents=True)
    elif isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def _listing(outcome, name: str) -> str:
    lines = [line for line in outcome.out_lines if line.split()[:1] == [name]]
    assert len(lines) == 1, outcome.out_lines
    return lines[0]


@pytest.mark.parametrize("case", list(BROKEN_STUDIES))
def test_study_list_shows_a_broken_user_study_and_the_rest(case, tmp_path, capsys):
    fname, text, words = BROKEN_STUDIES[case]
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "zz_good.toml").write_text(STUDY)
    _write(tmp_path / "studies" / fname, text)
    before = snapshot(tmp_path)
    outcome = run_cli(["study", "list"], capsys, cwd=tmp_path)
    assert outcome.rc == 1, outcome.err  # documented: 1 when an entry cannot be loaded
    assert not outcome.err
    bad = _listing(outcome, "zz_bad")
    assert "ERROR" in bad and fname in bad, bad
    for w in words:
        assert w in bad, (w, bad)
    assert "1 run" in _listing(outcome, "zz_good")
    assert "run" in _listing(outcome, "mnist_dhn_c_ep")  # the project's catalog is listed
    assert snapshot(tmp_path) == before


PROFILE = '[profile]\nname = "NAME"\ndescription = "a user profile"\n'
BROKEN_PROFILES = {
    "malformed TOML": {"zz_bad": "[profile\n"},
    "unknown key": {"zz_bad": PROFILE.replace("NAME", "zz_bad") + "author = 1\n"},
    "bad value": {"zz_bad": PROFILE.replace("NAME", "zz_bad") + "[read]\nnoise_rel = nan\n"},
    "inheritance cycle, other names": {
        "zz_bad": '[profile]\nname = "alpha"\nextends = "zz_bad2"\n',
        "zz_bad2": '[profile]\nname = "beta"\nextends = "zz_bad"\n',
    },
    "parent missing": {"zz_bad": PROFILE.replace("NAME", "zz_bad") + 'extends = "nothing"\n'},
    "a folder named .toml": {"zz_bad": None},
}
PROFILE_WORDS = {
    "malformed TOML": ["invalid TOML"],
    "unknown key": ["profile.author"],
    "bad value": ["read.noise_rel"],
    "inheritance cycle, other names": ["profile.extends"],
    "parent missing": ["profile.extends", "nothing"],
    "a folder named .toml": ["not a regular file"],
}


@pytest.mark.parametrize("case", list(BROKEN_PROFILES))
def test_profile_list_shows_a_broken_user_profile_and_the_rest(case, tmp_path, capsys):
    d = tmp_path / "catalog" / "hardware_profiles"
    d.mkdir(parents=True)
    (d / "zz_good.toml").write_text(PROFILE.replace("NAME", "zz_good"))
    for name, text in BROKEN_PROFILES[case].items():
        _write(d / f"{name}.toml", text)
    before = snapshot(tmp_path)
    old = os.environ.get("ANALOGEBL_PATH")
    os.environ["ANALOGEBL_PATH"] = str(tmp_path / "catalog")  # the other way in: the path
    try:
        outcome = run_cli(["profile", "list"], capsys, cwd=tmp_path)
    finally:
        if old is None:
            del os.environ["ANALOGEBL_PATH"]
        else:
            os.environ["ANALOGEBL_PATH"] = old
    assert outcome.rc == 1 and not outcome.err, outcome.err
    bad = _listing(outcome, "zz_bad")
    assert "ERROR" in bad and "zz_bad" in bad.split("ERROR", 1)[1], bad
    for w in PROFILE_WORDS[case]:
        assert w in bad, (w, bad)
    assert "a user profile" in _listing(outcome, "zz_good")
    assert _listing(outcome, "reram_like")
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file without read permission")
def test_an_unreadable_user_study_is_listed_with_its_error(tmp_path, capsys):
    (tmp_path / "studies").mkdir()
    f = tmp_path / "studies" / "zz_bad.toml"
    f.write_text(STUDY)
    f.chmod(0)
    try:
        outcome = run_cli(["study", "list"], capsys, cwd=tmp_path)
    finally:
        f.chmod(0o644)
    assert outcome.rc == 1 and "cannot read" in _listing(outcome, "zz_bad")


def test_a_clean_catalog_lists_with_status_0(tmp_path, capsys):
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "zz_good.toml").write_text(STUDY)
    outcome = run_cli(["study", "list"], capsys, cwd=tmp_path)
    assert outcome.rc == 0 and not outcome.err
    assert not any("ERROR" in line for line in outcome.out_lines)
    assert run_cli(["profile", "list"], capsys, cwd=tmp_path).rc == 0


# ---------------------------------------------------------------------------------------
# show / report / data check on bad arguments. "DIR" is a sandbox folder prepared by SETUPS.
def _corrupt_h5(d: Path) -> None:
    (d / "run.h5").write_bytes(b"not an hdf5 file" * 10)


def _foreign_h5(d: Path) -> None:
    with h5py.File(d / "other.h5", "w") as f:
        f["x"] = np.arange(3)


def _h5_folder(d: Path) -> None:
    (d / "run.h5").mkdir()


def _plain(d: Path) -> None:
    (d / "FILE").write_text("x")


def _bad_sums(d: Path) -> None:
    (d / "MD5SUMS").write_text("not a checksum line\n")


def _sums_folder(d: Path) -> None:
    (d / "MD5SUMS").mkdir()


SHOW = {
    "study show unknown": (["study", "show", "nope"], None, ["unknown study 'nope'"]),
    "study show missing file": (["study", "show", "DIR/x.toml"], None, ["no such study file"]),
    "study show folder": (["study", "show", "DIR/d.toml"], "folder", ["not a study file"]),
    "study show bad tier": (["study", "show", "mnist_dhn_c_ep", "--tier", "huge"], None, ["huge"]),
    "profile show unknown": (["profile", "show", "nope"], None, ["unknown hardware profile"]),
    "profile show missing": (["profile", "show", "DIR/p.toml"], None, ["no such hardware profile"]),
    "report missing folder": (["study", "report", "DIR/none"], None, ["none", "folder"]),
    "report of a file": (["study", "report", "DIR/FILE"], _plain, ["FILE", "folder"]),
    "report corrupt h5": (["study", "report", "DIR"], _corrupt_h5, ["run.h5"]),
    "report non-run h5": (["study", "report", "DIR"], _foreign_h5, ["no run files"]),
    "report h5 folder": (["study", "report", "DIR"], _h5_folder, ["no run files"]),
    "report out is a file": (["study", "report", "DIR", "--out", "DIR/FILE"], _plain, ["--out"]),
    "report out under a file": (
        ["study", "report", "DIR", "--out", "DIR/FILE/sub"],
        _plain,
        ["--out", "FILE"],
    ),
    "data check missing root": (["data", "check", "--root", "DIR/none"], None, ["none"]),
    # no MD5SUMS is fine (the official checksums ship with the package); an unreadable one not
    "data check sums folder": (["data", "check", "--root", "DIR"], _sums_folder, ["MD5SUMS"]),
    "data check bad sums": (["data", "check", "--root", "DIR"], _bad_sums, ["MD5SUMS", "line 1"]),
}


@pytest.mark.parametrize("case", list(SHOW))
def test_show_report_and_data_check_refuse_bad_arguments(case, tmp_path, capsys):
    argv, setup, words = SHOW[case]
    d = tmp_path / "sandbox"
    d.mkdir()
    if setup == "folder":
        (d / "d.toml").mkdir()
    elif setup is not None:
        setup(d)
    argv = [a.replace("DIR", str(d)) for a in argv]
    before = snapshot(tmp_path)
    outcome = run_cli(argv, capsys)
    assert_clean_refusal(outcome, words, before, snapshot(tmp_path), None, tmp_path)
    assert not (d / "report").exists()


# ---------------------------------------------------------------------------------------
# dataset files


def _idx(magic: int, dims: tuple[int, ...], nbytes: int | None = None, fill: int = 0) -> bytes:
    n = int(np.prod(dims)) if nbytes is None else nbytes
    return gzip.compress(struct.pack(f">{1 + len(dims)}i", magic, *dims) + bytes([fill]) * n)


IMAGES, LABELS = 2051, 2049
# (file to replace in a copy of mnist, its bytes, words of the error line)
DATA = {
    "zero images": ("t10k-images-idx3-ubyte.gz", _idx(IMAGES, (0, 28, 28)), ["0 items"]),
    "header claims more": (
        "t10k-images-idx3-ubyte.gz",
        _idx(IMAGES, (100, 28, 28), nbytes=5 * 784),
        ["truncated"],
    ),
    "header claims fewer": (
        "t10k-images-idx3-ubyte.gz",
        _idx(IMAGES, (3, 28, 28), nbytes=5 * 784),
        ["or more", "truncated"],
    ),
    "wrong magic": ("t10k-images-idx3-ubyte.gz", _idx(LABELS, (100,)), ["magic"]),
    "zero-size images": ("t10k-images-idx3-ubyte.gz", _idx(IMAGES, (100, 0, 28)), ["(0, 28)"]),
    "negative dims": ("t10k-images-idx3-ubyte.gz", _idx(IMAGES, (-1, 28, 28), 0), ["-1 items"]),
    "not gzip": ("t10k-labels-idx1-ubyte.gz", b"\x00" * 100, ["gzip"]),
    "empty file": ("t10k-labels-idx1-ubyte.gz", b"", ["idx header"]),
    "label out of range": (
        "t10k-labels-idx1-ubyte.gz",
        _idx(LABELS, (100,), fill=10),
        ["label 10", "0..9"],
    ),
    "labels count differs": ("t10k-labels-idx1-ubyte.gz", _idx(LABELS, (5,)), ["5", "100"]),
    "zero labels": ("t10k-labels-idx1-ubyte.gz", _idx(LABELS, (0,)), ["0 items"]),
}


@pytest.fixture
def mnist_copy(tmp_path, monkeypatch):
    """A data root with small valid MNIST files (100 training, 100 test images; the test
    replaces one file)."""
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split in ("train", "t10k"):
        pixels = rng.integers(0, 256, size=100 * 784, dtype=np.uint8).tobytes()
        head = struct.pack(">4i", IMAGES, 100, 28, 28)
        (d / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(head + pixels))
        labels = (np.arange(100) % 10).astype(np.uint8).tobytes()
        head = struct.pack(">2i", LABELS, 100)
        (d / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(head + labels))
    monkeypatch.setenv("ANALOGEBL_DATA", str(tmp_path / "data"))
    return d


def test_the_small_mnist_files_are_accepted(mnist_copy, tmp_path, capsys):
    """The damaged-file cases below differ from a good data root by that one file."""
    from analogebl.data import load_dataset

    ds = load_dataset("mnist", mnist_copy.parent)
    assert ds.train_x.shape == (100, 1, 28, 28) and ds.test_y.tolist()[:3] == [0, 1, 2]


@pytest.mark.parametrize("case", list(DATA))
def test_a_damaged_dataset_file_is_refused_naming_it(case, mnist_copy, tmp_path, capsys):
    fname, data, words = DATA[case]
    (mnist_copy / fname).write_bytes(data)
    study = tmp_path / "study.toml"
    study.write_text(STUDY)
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    outcome = run_cli(["study", "run", str(study), "--out", str(out)], capsys)
    assert_clean_refusal(outcome, [fname, *words], before, snapshot(tmp_path), out, tmp_path)
    assert not out.exists()


def test_readers_check_size_count_and_records(tmp_path):
    f = tmp_path / "imgs.gz"
    f.write_bytes(_idx(IMAGES, (2, 20, 20)))
    assert read_idx_images(f).shape == (2, 1, 20, 20)
    with pytest.raises(DataError, match=r"imgs\.gz: images are 20x20 pixels, expected 28x28"):
        read_idx_images(f, size=(28, 28))
    g = tmp_path / "labels.gz"
    g.write_bytes(_idx(LABELS, (3,)))
    with pytest.raises(DataError, match=r"labels\.gz: 3 items, the matching file holds 2"):
        read_idx_labels(g, 10, count=2)
    assert read_idx_labels(g, 10, count=3).tolist() == [0, 0, 0]
    c = tmp_path / "batch.bin"
    c.write_bytes(b"")
    with pytest.raises(DataError, match=r"batch\.bin: 0 bytes"):
        read_cifar_binary(c, 1, 0, 10)
    with pytest.raises(DataError, match=r"nothing\.bin: file not found"):
        read_cifar_binary(tmp_path / "nothing.bin", 1, 0, 10)
    s = tmp_path / "empty.mat"
    savemat(s, {"X": np.zeros((32, 32, 3, 0), np.uint8), "y": np.zeros((0, 1), np.uint8)})
    with pytest.raises(DataError, match=r"empty\.mat: holds no images"):
        read_svhn_mat(s)
    savemat(s, {"X": np.zeros((32, 32, 3, 2)), "y": np.ones((2, 1), np.uint8)})
    with pytest.raises(DataError, match=r"empty\.mat: X holds float64"):
        read_svhn_mat(s)
    (tmp_path / "dir.bin").mkdir()
    with pytest.raises(DataError, match=r"dir\.bin: not a regular file"):
        read_cifar_binary(tmp_path / "dir.bin", 1, 0, 10)
