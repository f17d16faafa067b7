"""Outputs stay inside ``--out``: run files are named by a safe slug of the run's values,
every output path is checked to lie in the folder, and nothing there changes before the
configuration is accepted (a refused rerun leaves ``study.toml`` and the run file as they
were)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import h5py
import pytest

from analogebl.recording import read_run
from analogebl.recording.atomic import is_temp_file, temp_target
from analogebl.study.config import MAX_RUN_ID_BYTES, run_id_slug
from tests.robustness.harness import assert_clean_refusal, run_cli, snapshot

BASE = (
    'dataset = "mnist"\nepochs = 1\ntrain_subset = 64\ntest_subset = 64\nbatch_size = 32\n'
    '[circuit]\nname = "tiny_dense"\n[rule]\nname = "c_ep"\nbeta = 0.25\n[optimizer]\nlr = 0.1\n'
)
PLAIN = re.compile(r"[A-Za-z0-9._+=,()\[\] -]+\.h5")  # what a run file name may look like


def _variants(*names: str) -> str:
    return BASE + "".join(f"[variants.{json.dumps(n)}]\nepochs = 1\n" for n in names)


# variant names (each becomes a run); SANDBOX is replaced by the sandbox's absolute path
SLUGGED = {
    "parent traversal": ["../../x", "../x.h5"],
    "absolute path": ["SANDBOX/abs", "/etc/passwd"],
    "slash inside": ["a/b", "a\\b", "a-b"],  # also: all three keep distinct files
    "empty, dot, dot-dot": ["", ".", ".."],
    "hidden, dash, spaces": [".hidden", "-rf", " padded "],
    "over 255 bytes": ["x" * 300, "x" * 300 + "y", "é" * 200],
    "unicode": ["ünï/cödé", "名前", "right\u202eleft"],
    "control characters": ["tab\there", "line\nbreak", "bell\x07", "del\x7f"],
    "Windows-reserved characters": ['a:b*c?"d<e>f|g'],
}


@pytest.fixture()
def sandbox(tmp_path):
    """``ROOT/work`` is the working folder, ``ROOT/work/out`` the output folder; a study
    file and a copy of a hardware profile lie in ``ROOT``."""
    work = tmp_path / "work"
    work.mkdir()
    return tmp_path, work, work / "out"


@pytest.mark.parametrize("case", list(SLUGGED))
def test_unsafe_variant_names_become_plain_files_inside_out(case, sandbox, data_dir, capsys):
    root, work, out = sandbox
    names = [n.replace("SANDBOX", str(root)) for n in SLUGGED[case]]
    study = root / "study.toml"
    study.write_text(_variants(*names), encoding="utf-8")
    before = snapshot(root)
    res = run_cli(["study", "run", str(study), "--out", str(out), "--json"], capsys, cwd=work)
    assert res.rc == 0, res.err
    after = snapshot(root)
    for rel in set(after) - set(before):  # nothing appeared outside --out
        assert rel == "work/out" or rel.startswith("work/out/"), rel
    runs = sorted(out.glob("*.h5"))
    assert len(runs) == len(names)  # one file per run: distinct values, distinct names
    recorded = set()
    for f in runs:
        assert f.parent == out and PLAIN.fullmatch(f.name), f.name
        assert not f.name.startswith((".", "-")) and len(f.name.encode()) <= 255
        rec = read_run(f, checkpoint=False)
        assert rec.complete
        recorded.add(rec.meta["variant"])
    assert recorded == set(names)  # every file is found again by the value it ran
    assert not [p for p in out.iterdir() if is_temp_file(p)]


SWEPT = {
    # a swept profile given as a path outside the working folder
    "sweep.profile path": ('[sweep]\nprofile = ["../p.toml"]\n', 1),
    "sweep.circuit.name path": ('[sweep]\n"circuit.name" = ["../c/tiny_dense.toml"]\n', 1),
    "--set variant path": ("", 1),
}


@pytest.mark.parametrize("case", list(SWEPT))
def test_swept_paths_become_plain_files_inside_out(case, sandbox, data_dir, capsys):
    root, work, out = sandbox
    repo = Path(__file__).resolve().parents[2]
    (root / "p.toml").write_text((repo / "hardware_profiles" / "ideal_fp32.toml").read_text())
    (root / "c").mkdir()
    (root / "c" / "tiny_dense.toml").write_text((repo / "circuits" / "tiny_dense.toml").read_text())
    text, n = SWEPT[case]
    argv = []
    text = BASE + text
    if case == "--set variant path":  # one variant picked: the run is "run"
        text = _variants("../v", "w")
        argv = ["--set", 'variant="../v"']
    study = root / "study.toml"
    study.write_text(text)
    before = snapshot(root)
    res = run_cli(["study", "run", str(study), "--out", str(out), *argv], capsys, cwd=work)
    assert res.rc == 0, res.err
    new = set(snapshot(root)) - set(before)
    assert all(rel == "work/out" or rel.startswith("work/out/") for rel in new), new
    runs = sorted(out.glob("*.h5"))
    assert len(runs) == n and all(PLAIN.fullmatch(f.name) for f in runs), runs
    assert "/" not in runs[0].stem and ".." not in runs[0].stem.split("-")[0]


SWEPT_REFUSED = {
    # a swept string that names no known entry -> words of the refusal (file and key)
    "dataset path": ('dataset = ["../mnist"]', ["study.toml", "'dataset'", "../mnist"]),
    "rule path": ('"rule.name" = ["../c_ep"]', ["study.toml", "'rule'", "../c_ep"]),
    "profile absolute path": ('profile = ["/etc/passwd"]', ["study.toml", "'profile'"]),
    "profile missing file": ('profile = ["../nope.toml"]', ["nope.toml", "'profile'"]),
    "dtype with slash": ('dtype = ["float32/../x"]', ["study.toml", "'sweep.dtype'"]),
}


@pytest.mark.parametrize("case", list(SWEPT_REFUSED))
def test_swept_strings_naming_nothing_are_refused(case, sandbox, data_dir, capsys):
    root, work, out = sandbox
    line, words = SWEPT_REFUSED[case]
    study = root / "study.toml"
    study.write_text(BASE + "[sweep]\n" + line + "\n")
    before = snapshot(root)
    res = run_cli(["study", "run", str(study), "--out", str(out)], capsys, cwd=work)
    assert_clean_refusal(res, words, before, snapshot(root), out, root)
    assert not out.exists()


def test_run_ids_of_ordinary_values_are_unchanged():
    """Resuming files written before the slug needs the same names for ordinary values."""
    for parts in (["c_ep", "seed1"], ["beta0.05", "p_ep", "seed2"], ["w0.5"],
                  ["optimizer-lr_scale-0.3", "standard_sn"], ["seed-1"], ["1e-05"],
                  ["optimizer-lr-[0.1, 0.05]"], ["ideal_fp32", "reram_like"]):  # fmt: skip
        assert run_id_slug(parts) == "_".join(parts)
    assert run_id_slug([]) == "run"


@pytest.mark.parametrize(
    "parts",
    [
        ["../../x"],
        ["/abs/p"],
        ["a/b"],
        [""],
        ["."],
        [".."],
        ["x" * 300],
        ["é" * 300],
        ["a\x00b"],
        ["\udcff"],
        ["ok", "../x"],
        ["a" * 150, "b" * 150],
    ],  # fmt: skip
)
def test_slug_is_one_plain_file_name(parts):
    rid = run_id_slug(parts)
    assert PLAIN.fullmatch(rid + ".h5") and rid.isascii()
    assert not rid.startswith((".", "-", " ")) and len(rid) <= MAX_RUN_ID_BYTES
    assert rid != run_id_slug([p + "!" for p in parts])  # the hash keeps values apart


def _run(study, out, capsys, *extra, cwd=None):
    return run_cli(["study", "run", str(study), "--out", str(out), *extra], capsys, cwd=cwd)


@pytest.fixture()
def finished(tmp_path, data_dir, capsys):
    """A study run once into ``tmp_path/out`` (one run, ``run.h5``)."""
    study = tmp_path / "study.toml"
    study.write_text(BASE)
    out = tmp_path / "out"
    assert _run(study, out, capsys).rc == 0
    assert (out / "run.h5").is_file() and (out / "study.toml").is_file()
    return tmp_path, study, out


def test_refused_rerun_changes_nothing_in_out(finished, capsys):
    root, study, out = finished
    before = snapshot(root)
    res = _run(study, out, capsys, "--set", "optimizer.lr=0.2")
    assert_clean_refusal(res, ["run.h5", "different configuration", "optimizer.lr"],
                         before, snapshot(root), out, root)  # fmt: skip
    assert snapshot(root) == before  # study.toml and the run file byte-identical


def test_refused_rerun_of_a_sweep_names_the_file_and_writes_nothing(tmp_path, data_dir, capsys):
    """A sweep where one run file of several holds another configuration: refused before
    the runs that would be accepted are started."""
    study = tmp_path / "study.toml"
    study.write_text(BASE + "[sweep]\nseed = [0, 1]\n")
    out = tmp_path / "out"
    assert _run(study, out, capsys, "--seeds", "0").rc == 0
    (out / "seed0.h5").rename(out / "seed1.h5")  # seed1.h5 now holds seed 0's run
    before = snapshot(tmp_path)
    res = _run(study, out, capsys)
    assert_clean_refusal(res, ["seed1.h5", "seed"], before, snapshot(tmp_path), out, tmp_path)
    assert not (out / "seed0.h5").exists()


def _crafted_run_file(path: Path, config: str) -> None:
    with h5py.File(path, "w") as f:
        g = f.create_group("meta")
        g.attrs["complete"] = False
        g["config_toml"] = config
        f.create_group("metrics")


PLANTED = {
    # what is put at OUT/NAME before the run -> words the refusal must contain
    "run file is a link outside": ("run.h5", "link", ["run.h5", "outside"]),
    "study.toml is a link outside": ("study.toml", "link", ["study.toml", "outside"]),
    "lock file is a link outside": (".analogebl.lock", "link", [".analogebl.lock", "outside"]),
    "run file is a folder": ("run.h5", "folder", ["run.h5", "not a run file"]),
    "run file is not HDF5": ("run.h5", "garbage", ["run.h5"]),
    "recorded config not TOML": ("run.h5", "bad-toml", ["run.h5", "config_toml"]),
    "recorded config differs": ("run.h5", "other-toml", ["run.h5", "epochs"]),
}


@pytest.mark.parametrize("case", list(PLANTED))
def test_planted_files_in_out_are_refused_untouched(case, tmp_path, data_dir, capsys):
    name, kind, words = PLANTED[case]
    study = tmp_path / "study.toml"
    study.write_text(BASE)
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = out / name
    if kind == "link":
        os.symlink(victim, target)
    elif kind == "folder":
        target.mkdir()
    elif kind == "garbage":
        target.write_bytes(b"not hdf5 at all")
    else:
        _crafted_run_file(target, "epochs = [" if kind == "bad-toml" else "epochs = 7\n")
    before = snapshot(tmp_path)
    res = _run(study, out, capsys)
    assert_clean_refusal(res, words, before, snapshot(tmp_path), out, tmp_path)
    assert victim.read_text() == "precious"
    assert not (out / "study.toml").is_file() or name == "study.toml"


def test_nul_in_a_name_is_refused_before_anything_is_written(tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text(_variants("a\x00b"))
    out = tmp_path / "out"
    res = _run(study, out, capsys)
    assert_clean_refusal(res, ["study.toml", "variants", "NUL"], {}, {}, out, tmp_path)
    assert not out.exists()
    study.write_text(BASE)
    res = _run(study, out, capsys, "--set", 'description="a\\u0000b"')
    assert_clean_refusal(res, ["description", "NUL"], {}, {}, out, tmp_path)
    assert not out.exists()


def test_temp_names():
    assert temp_target(".run.h5.0123abcd.tmp") == "run.h5"
    assert temp_target(".study.toml.ffffffff.tmp") == "study.toml"
    for name in (".run.h5.tmp", "run.h5.0123abcd.tmp", ".x.0123abcz.tmp", ".0123abcd.tmp"):
        assert temp_target(name) is None and not is_temp_file(name), name
