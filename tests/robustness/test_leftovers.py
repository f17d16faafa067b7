"""Leftovers of the bad-input tables: study files of the wrong shape, values named where they
were set (a variant, a tier, a sweep, a flag), flag values taken as typed, the MD5SUMS list,
idx files that disagree, and ``study run`` writing its report under the folder's lock.

Each refusal: exit 2, one line naming the file (or flag) and the key, nothing written.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from analogebl.errors import ConfigError
from analogebl.study.config import check_flag
from tests.robustness.harness import assert_clean_refusal, run_cli, snapshot

STUDY = (
    'dataset = "mnist"\nepochs = 1\ntrain_subset = 64\ntest_subset = 64\nbatch_size = 32\n'
    '[circuit]\nname = "tiny_dense"\n[rule]\nname = "c_ep"\nbeta = 0.25\n[optimizer]\nlr = 0.1\n'
)

# (text before the study, text after it, extra argv, words of the error line besides the
# study file's name). Keys before the study are top-level keys; tables go after it.
SHAPES = {
    "variants is a number": ("variants = 3\n", "", [], ["key 'variants'", "got 3"]),
    "sweep is a number": ("sweep = 5\n", "", [], ["key 'sweep'", "got 5"]),
    "per_rule is a list": ("per_rule = [1]\n", "", [], ["key 'per_rule'", "[1]"]),
    "tier is a number": ("tiers = {smoke = 3}\n", "", [], ["key 'tiers.smoke'"]),
    "tiers is a list": ("tiers = [1]\n", "", [], ["key 'tiers'"]),
    "tier sweep is a number": ("", "[tiers.smoke]\nsweep = 3\n", [], ["'tiers.smoke.sweep'"]),
    "tier sweep axis not a list": (
        "",
        "[tiers.smoke.sweep]\nseed = 3\n",
        [],
        ["'tiers.smoke.sweep.seed'", "list"],
    ),
    "tier per_rule is a number": (
        "",
        "[tiers.smoke]\nper_rule = 2\n",
        [],
        ["tiers.smoke.per_rule"],
    ),
    "variants in a tier": ("", "[tiers.smoke.variants.a]\nepochs = 1\n", [], ["top level"]),
    "tiers inside a tier": ("", "[tiers.smoke.tiers.cpu]\nepochs = 1\n", [], ["tiers.smoke.tiers"]),
    "a variant is a number": ("", "[variants]\nfast = 3\n", [], ["'variants.fast'"]),
    "a per_rule entry is a number": ("", "[per_rule]\nc_ep = 3\n", [], ["'per_rule.c_ep'"]),
    "extra_tiers is a number": ("extra_tiers = 3\n", "", [], ["'extra_tiers'"]),
    "extra tier not a name": ('extra_tiers = ["a b"]\n', "", [], ["'extra_tiers'"]),
    "default_tier unknown": ('default_tier = "huge"\n', "", [], ["'default_tier'", "huge"]),
    # values: named by their full dotted key in the file
    "variant epochs 0": ("", "[variants.fast]\nepochs = 0\n", [], ["'variants.fast.epochs'"]),
    "variant epochs a word": (
        "",
        '[variants.fast]\nepochs = "x"\n',
        [],
        ["'variants.fast.epochs'", "int"],
    ),
    "variant unknown key": ("", "[variants.fast]\nepochz = 1\n", [], ["'variants.fast.epochz'"]),
    "variant lr nan": (
        "",
        "[variants.fast]\noptimizer.lr = nan\n",
        [],
        ["'variants.fast.optimizer.lr'", "nan"],
    ),
    "variant beta inf": (
        "",
        "[variants.a]\nrule.beta = 0.2\n[variants.b]\nrule.beta = inf\n",
        [],
        ["'variants.b.rule.beta'", "inf"],
    ),
    "variant picks a variant": ("", '[variants.a]\nvariant = "b"\n', [], ["'variants.a.variant'"]),
    "per_rule beta inf": (
        "",
        "[per_rule.c_ep]\nrule.beta = inf\n",
        [],
        ["'per_rule.c_ep.rule.beta'"],
    ),
    "per_rule unknown key": ("", "[per_rule.c_ep]\nbeta = 1\n", [], ["'per_rule.c_ep.beta'"]),
    "per_rule unknown rule": ("", "[per_rule.hebb]\nrule.beta = 1.0\n", [], ["per_rule.hebb"]),
    "tier per_rule beta inf": (
        "",
        "[tiers.smoke.per_rule.c_ep]\nrule.beta = inf\n",
        ["--tier", "smoke"],
        ["'tiers.smoke.per_rule.c_ep.rule.beta'"],
    ),
    "tier epochs negative": ("", "[tiers.smoke]\nepochs = -1\n", [], ["'tiers.smoke.epochs'"]),
    "unused tier lr nan": (
        "",
        "[tiers.cpu]\noptimizer.lr = nan\n",
        [],
        ["'tiers.cpu.optimizer.lr'"],
    ),
    "tier beta inf": (
        "",
        "[tiers.smoke]\nrule.beta = inf\n",
        ["--tier", "smoke"],
        ["'tiers.smoke.rule.beta'"],
    ),
    "sweep lr nan": ("", "[sweep]\noptimizer.lr = [0.1, nan]\n", [], ["'sweep.optimizer.lr'"]),
    "sweep beta inf": ("", "[sweep]\nrule.beta = [0.1, inf]\n", [], ["'sweep.rule.beta'", "inf"]),
    "tier sweep beta inf": (
        "",
        "[tiers.smoke.sweep]\nrule.beta = [inf]\n",
        ["--tier", "smoke"],
        ["'tiers.smoke.sweep.rule.beta'"],
    ),
}


@pytest.mark.parametrize("case", list(SHAPES))
def test_a_study_of_the_wrong_shape_or_value_is_refused_naming_the_key(case, tmp_path, capsys):
    before_text, after_text, extra, words = SHAPES[case]
    study = tmp_path / "zz_study.toml"
    study.write_text(before_text + STUDY + after_text)
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    outcome = run_cli(["study", "run", str(study), "--out", str(out), *extra], capsys)
    assert_clean_refusal(outcome, ["zz_study.toml", *words], before, snapshot(tmp_path), out,
                         tmp_path)  # fmt: skip
    assert not out.exists() and not outcome.out_lines


@pytest.mark.parametrize("case", ["variants is a number", "tier sweep is a number",
                                  "variant epochs 0", "unused tier lr nan"])  # fmt: skip
def test_study_list_lists_the_broken_study_with_its_key(case, tmp_path, capsys):
    before_text, after_text, _, words = SHAPES[case]
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "zz_bad.toml").write_text(before_text + STUDY + after_text)
    (tmp_path / "studies" / "zz_good.toml").write_text(STUDY)
    outcome = run_cli(["study", "list"], capsys, cwd=tmp_path)
    assert outcome.rc == 1 and not outcome.err, outcome.err
    (bad,) = [line for line in outcome.out_lines if line.startswith("zz_bad ")]
    assert "ERROR" in bad and "zz_bad.toml" in bad, bad
    for w in words:
        assert w in bad, (w, bad)
    assert any(line.startswith("zz_good ") and "1 run" in line for line in outcome.out_lines)


# flags: (argv after `study run STUDY --out OUT`, words of the error line). A flag's error
# names the flag as typed ("--tier: ..."), not "key '--tier'".
FLAGS = {
    "profile unknown": (["--profile", "nope"], ["--profile: ", "'nope'"]),
    "profile file missing": (["--profile", "DIR/x.toml"], ["x.toml: --profile: ", "no such"]),
    "profile with a quote": (["--profile", "it's"], ["--profile: ", "it's"]),
    "executor unknown": (["--executor", "bogus"], ["--executor: ", "'bogus'"]),
    "executor no workers": (["--executor", "local:0"], ["--executor: ", "local:0"]),
    "tier unknown": (["--tier", "zz"], ["zz_study.toml: --tier: ", "'zz'"]),
    "set without =": (["--set", "epochs"], ["--set: needs key=value", "'epochs'"]),
    "set unknown key": (["--set", "epochz=1"], ["--set, key 'epochz'"]),
    "set lr inf": (["--set", "optimizer.lr=inf"], ["--set, key 'optimizer.lr'", "inf"]),
    "set lr list with nan": (["--set", "optimizer.lr=[0.1, nan]"], ["--set, key 'optimizer.lr'"]),
    "device with a backslash": (["--device", "cu\\da"], ["--device: ", "cu\\\\da"]),
    "device with quotes": (["--device", "'c\"u'"], ["--device: ", 'c"u']),
    "device cuda:x": (["--device", "cuda:x"], ["--device: ", "cuda:x"]),
    "device NUL-free control char": (["--device", "cu\x01da"], ["--device: "]),
}


@pytest.mark.parametrize("case", list(FLAGS))
def test_flag_errors_name_the_flag(case, tmp_path, capsys):
    argv, words = FLAGS[case]
    study = tmp_path / "zz_study.toml"
    study.write_text(STUDY)
    out = tmp_path / "out"
    argv = [a.replace("DIR", str(tmp_path)) for a in argv]
    before = snapshot(tmp_path)
    outcome = run_cli(["study", "run", str(study), "--out", str(out), *argv], capsys)
    assert_clean_refusal(outcome, words, before, snapshot(tmp_path), out, tmp_path)
    assert "key '--" not in outcome.err[-1]
    assert not out.exists() and not outcome.out_lines  # no header line before the refusal


def test_flag_values_are_taken_as_typed():
    """A flag's value is not parsed as TOML text (no quotes or escapes added or lost)."""
    assert check_flag("--device", "device", "cu\\da") == ("device", "cu\\da")
    assert check_flag("--device", "device", "a'b\"c") == ("device", "a'b\"c")
    assert check_flag("--device", "device", "none") == ("device", None)  # as --set does
    assert check_flag("--profile", "profile", "none") == ("profile", "none")  # ideal
    assert check_flag("--threads", "threads", 3) == ("threads", 3)
    with pytest.raises(ConfigError, match=r"^--threads: must be > 0"):
        check_flag("--threads", "threads", 0)


def test_config_error_renders_keys_and_flags():
    assert str(ConfigError("m", path="f.toml", key="a.b")) == "f.toml, key 'a.b': m"
    assert str(ConfigError("m", key="a.b")) == "key 'a.b': m"
    assert str(ConfigError("m", path="f.toml", key="--out")) == "f.toml: --out: m"
    assert str(ConfigError("m", key="--out")) == "--out: m"
    assert str(ConfigError("m", path="f.toml")) == "f.toml: m"
    assert str(ConfigError("m")) == "m"


# ---------------------------------------------------------------------------------------
# the report is written while the output folder's lock is held


def test_study_run_writes_its_report_under_the_lock(tmp_path, data_dir, capsys, monkeypatch):
    import analogebl.reporting as reporting

    real = reporting.write_report
    seen = []

    def checked(root, *a, **kw):
        with open(Path(root) / ".analogebl.lock", "rb") as f:  # flock: per open file
            with pytest.raises(BlockingIOError):
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        seen.append((Path(root) / ".analogebl.lock.owner").read_text())
        return real(root, *a, **kw)

    monkeypatch.setattr(reporting, "write_report", checked)
    study = tmp_path / "zz_study.toml"
    study.write_text(STUDY)
    out = tmp_path / "out"
    outcome = run_cli(["study", "run", str(study), "--out", str(out), "--profile", "none"], capsys)
    assert outcome.rc == 0, outcome.err
    assert len(seen) == 1 and seen[0].startswith("pid ")
    assert (out / "report" / "report.md").is_file() and (out / "run.h5").is_file()
    assert not (out / ".analogebl.lock.owner").exists()  # released after the report
    with open(out / ".analogebl.lock", "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


# ---------------------------------------------------------------------------------------
# dataset files: idx files that disagree, and the checksum list


def _idx(magic: int, dims: tuple[int, ...]) -> bytes:
    n = int(np.prod(dims))
    return gzip.compress(struct.pack(f">{1 + len(dims)}i", magic, *dims) + bytes(n))


@pytest.fixture
def mnist_copy(tmp_path, monkeypatch):
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    for split in ("train", "t10k"):
        (d / f"{split}-images-idx3-ubyte.gz").write_bytes(_idx(2051, (20, 28, 28)))
        (d / f"{split}-labels-idx1-ubyte.gz").write_bytes(_idx(2049, (20,)))
    monkeypatch.setenv("ANALOGEBL_DATA", str(tmp_path / "data"))
    return d


IDX = {
    "fewer labels": ("train-labels-idx1-ubyte.gz", _idx(2049, (7,)), ["7 items", "holds 20"]),
    "more labels": ("t10k-labels-idx1-ubyte.gz", _idx(2049, (30,)), ["30 items", "holds 20"]),
    "images 20x20": ("train-images-idx3-ubyte.gz", _idx(2051, (20, 20, 20)), ["20x20", "28x28"]),
    "images 28x27": ("t10k-images-idx3-ubyte.gz", _idx(2051, (20, 28, 27)), ["28x27", "28x28"]),
}


@pytest.mark.parametrize("case", list(IDX))
def test_idx_files_that_disagree_are_refused_naming_the_file(case, mnist_copy, tmp_path, capsys):
    fname, data, words = IDX[case]
    (mnist_copy / fname).write_bytes(data)
    study = tmp_path / "study.toml"
    study.write_text(STUDY.replace("64", "8"))
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    outcome = run_cli(["study", "run", str(study), "--out", str(out)], capsys)
    assert_clean_refusal(outcome, [fname, *words], before, snapshot(tmp_path), out, tmp_path)
    assert not out.exists()


GOOD = hashlib.md5(b"data").hexdigest()
# MD5SUMS contents (bytes) -> words of the error line besides "MD5SUMS"; every case is
# refused before any file is read or any line printed (a good first line included)
SUMS = {
    "not UTF-8": (f"{GOOD}  ./a.bin\n".encode() + b"\xff\xfe  ./b.bin\n", ["line 2", "UTF-8"]),
    "parent traversal": (
        f"{GOOD}  ./a.bin\n{GOOD}  ../../etc/hostname\n",
        ["line 2", "../../etc/hostname"],
    ),
    "absolute path": (f"{GOOD}  /etc/hostname\n", ["line 1", "/etc/hostname"]),
    "binary-mode absolute": (f"{GOOD} */etc/hostname\n", ["line 1", "/etc/hostname"]),
    "traversal inside": (f"{GOOD}  ./a/../../x\n", ["line 1", "./a/../../x"]),
    "NUL in path": (f"{GOOD}  ./a\x00b\n", ["line 1"]),
    "digest not hex": ("z" * 32 + "  ./a.bin\n", ["line 1", "<md5>"]),
    "no path": (f"{GOOD}  *\n", ["line 1", "<md5>"]),
    "digest only": (f"{GOOD}\n", ["line 1", "<md5>"]),
}


@pytest.mark.parametrize("case", list(SUMS))
def test_a_bad_checksum_list_is_refused_naming_the_line(case, tmp_path, capsys):
    text, words = SUMS[case]
    root = tmp_path / "data"
    root.mkdir()
    (root / "a.bin").write_bytes(b"data")
    (root / "MD5SUMS").write_bytes(text if isinstance(text, bytes) else text.encode())
    before = snapshot(tmp_path)
    outcome = run_cli(["data", "check", "--root", str(root)], capsys)
    assert_clean_refusal(outcome, ["MD5SUMS", *words], before, snapshot(tmp_path), None, tmp_path)
    assert not outcome.out_lines  # refused before the first file was checked


def test_a_good_checksum_list_still_checks(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "a.bin").write_bytes(b"data")
    (root / "sub" / "b.bin").write_bytes(b"other")
    (root / "MD5SUMS").write_text(f"{GOOD}  ./a.bin\n\n{GOOD.upper()} *sub/b.bin\n{GOOD}  ./c\n")
    outcome = run_cli(["data", "check", "--root", str(root)], capsys)
    assert outcome.rc == 1 and not outcome.err
    # the user's list is checked in addition to the official checksums (datasets: absent)
    listed = [line.split()[1:3] for line in outcome.out_lines if line.startswith("MD5SUMS")]
    assert listed[1:] == [["ok", "./a.bin"], ["BAD", "sub/b.bin:"], ["BAD", "./c:"]]
