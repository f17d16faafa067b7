"""The command line a new user meets first: ``--version`` and ``python -m analogebl``, help
text at every level, ``study list`` / ``study show`` as readable text, and ``data check``
against the official checksums shipped with the package.

The CLI runs in-process (``analogebl.cli.main``), and once as ``python -m analogebl``.
Datasets: the MNIST files of ``$ANALOGEBL_DATA`` are copied into temporary folders and
damaged there; the CIFAR-100 files are written by the test in the official binary format
(``tests.datafiles``), with the official table patched to their record counts where the
test needs a CIFAR-100 folder that passes.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import analogebl
from analogebl.catalog import list_entries
from analogebl.cli import _ABBREVIATIONS, _applies, _first_sentence, _plain, build_parser, main
from analogebl.data import checksums
from analogebl.data.checksums import OFFICIAL_DATASETS, OFFICIAL_FILES, OfficialFile
from analogebl.data.datasets import _SPECS, DATASETS
from analogebl.errors import ConfigError
from analogebl.study import load_study
from tests.datafiles import write_cifar100

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], capsys) -> tuple[int, list[str], list[str]]:
    """``analogebl ARGV`` in this process: (exit status, stdout lines, stderr lines)."""
    try:
        rc = main(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        rc = exc.code if isinstance(exc.code, int) else 1
    cap = capsys.readouterr()
    return rc, cap.out.splitlines(), cap.err.splitlines()


# ---------------------------------------------------------------------------------------
# version and python -m


def test_version_prints_the_package_version(capsys):
    rc, out, err = _run(["--version"], capsys)
    assert rc == 0 and not err
    assert out == [f"analogebl {analogebl.__version__}"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", analogebl.__version__)


def test_python_dash_m_runs_the_same_command():
    res = subprocess.run(
        [sys.executable, "-m", "analogebl", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"analogebl {analogebl.__version__}\n"


def test_the_version_has_one_source():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = tomllib.loads(text)["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert 'version = { attr = "analogebl.__version__" }' in text


# ---------------------------------------------------------------------------------------
# help text


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(command words, parser)`` of the top level and of every subcommand, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _helps(parser: argparse.ArgumentParser):
    """``(label, help)`` of every action of ``parser`` and of every subcommand it lists."""
    for action in parser._actions:
        label = "/".join(action.option_strings) or action.dest
        yield label, action.help
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield choice.dest, choice.help


PARSERS = list(_parsers(build_parser()))
# what a help text must not show: Markdown / reST markup and unexpanded % formats
MARKUP = re.compile(r"`|\*|%|:(func|class|mod|ref|data|meth):|\.\. ")


def test_every_command_is_reached():
    paths = {" ".join(p) for p, _ in PARSERS}
    for cmd in ("study list", "study show", "study run", "study report", "profile list",
                "profile show", "check gradients", "data check"):  # fmt: skip
        assert cmd in paths


@pytest.mark.parametrize("path", [p for p, _ in PARSERS], ids=lambda p: " ".join(p) or "top")
def test_every_command_and_flag_is_described_without_markup(path, capsys):
    parser = dict(PARSERS)[path]
    first = parser.description.split("\n\n")[0].strip()  # a sentence (examples may follow)
    assert first.endswith("."), (path, first)
    for label, text in _helps(parser):
        assert text and text is not argparse.SUPPRESS and text.strip(), (path, label)
        assert not MARKUP.search(text), (path, label, text)
    for text in (parser.description, parser.epilog or ""):
        assert not MARKUP.search(text), (path, text)
    rc, out, err = _run([*path, "--help"], capsys)
    assert rc == 0 and not err
    shown = "\n".join(out)
    assert shown.startswith(f"usage: analogebl {' '.join(path)}".rstrip())
    assert not MARKUP.search(shown), shown
    # a flag with a default says it, with the value
    for action in parser._actions:
        if action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            continue
        assert "default" in action.help and str(action.default) in action.help, action.help


def test_top_level_help_describes_and_points_at_the_documentation(capsys):
    rc, out, _ = _run(["--help"], capsys)
    text = " ".join(" ".join(out).split())
    assert rc == 0
    for word in ("study", "profile", "check", "data", "--version", "Exit status"):
        assert word in text
    assert "documentation" in text and "docs" in text
    # a pip-installed user has no source folder: the help says where the docs come from
    assert "source distribution or repository" in text
    assert "pip install 'analogebl[docs]'" in text
    assert "python -m sphinx -b html docs docs/_build/html" in text


def test_bare_analogebl_prints_the_help(capsys):
    rc, out, err = _run([], capsys)
    assert rc == 2 and not out  # a usage error: nothing was done
    assert err[0].startswith("usage: analogebl ")
    shown = " ".join(" ".join(err).split())
    assert "commands:" in shown and "A first session:" in shown
    assert "no command given (the help is printed)" in shown  # the exit-status paragraph
    rc, _, err = _run(["study"], capsys)  # a group without its command: one line
    assert rc == 2 and len(err) == 1 and "required" in err[0]


def test_descriptions_break_lines_only_between_paragraphs_and_examples():
    """A subcommand's description and epilog are prose joined from string literals: a line
    break inside a paragraph is a stray "\\n" (the top level is written as wrapped text)."""
    for path, parser in PARSERS:
        if not path:
            continue
        for text in (parser.description, parser.epilog or ""):
            assert not re.search(r"[^\n]\n(?![\n ])", text), (path, text)


def test_json_help_says_what_reaches_each_stream():
    """--json silences every per-run line (quiet): the help must not promise a log."""
    (run,) = [p for path, p in PARSERS if path == ("study", "run")]
    (action,) = [a for a in run._actions if "--json" in a.option_strings]
    text = " ".join(action.help.split())
    assert "log to standard error" not in text
    assert "no per-run or per-epoch lines" in text and "no progress bar" in text
    assert "one JSON summary line" in text and "standard output" in text


# ---------------------------------------------------------------------------------------
# study list


def test_first_sentence():
    assert _first_sentence("A b. C d.") == "A b."
    assert _first_sentence("See Laborieux et al. (2021) on it. Then") == (
        "See Laborieux et al. (2021) on it."
    )
    assert _first_sentence("beta 0.25 and\n`cpu` tier, e.g. here. More.") == (
        "beta 0.25 and cpu tier, e.g. here."
    )
    assert _first_sentence("no sentence end") == "no sentence end"


@pytest.mark.parametrize(
    "text, first",
    [
        ("Trains it on MNIST. the rest follows.", "Trains it on MNIST."),
        ("Trains it on MNIST. 60k images.", "Trains it on MNIST."),
        ("Trains it (see below.) More.", "Trains it (see below.)"),
        ('It is "done." Then more.', 'It is "done."'),
        ("Does it? yes.", "Does it?"),
        ("beta 0.25, .5 and 1e-3. Then", "beta 0.25, .5 and 1e-3."),
        ("See Fig. 3 and Eq. 2 here. More", "See Fig. 3 and Eq. 2 here."),
        ("Rules (i.e. C-EP), e.g. this vs. that. More", "Rules (i.e. C-EP), e.g. this vs. that."),
        (
            "Table No. 1 of B. Scellier et al. (2023) on it. More",
            "Table No. 1 of B. Scellier et al. (2023) on it.",
        ),
        ("Cf. the rest. More", "Cf. the rest."),
    ],
)
def test_first_sentence_ends_before_any_next_word(text, first):
    assert _first_sentence(text) == first


def test_first_sentence_of_every_catalog_study():
    """Each study's first sentence is whole: it ends a sentence, not an abbreviation, and
    what follows starts a new one."""
    for path in sorted((ROOT / "studies").glob("*.toml")):
        flat = _plain(tomllib.loads(path.read_text(encoding="utf-8"))["description"])
        first = _first_sentence(flat)
        assert flat.startswith(first) and re.search(r"[.!?][)\]\"']*$", first), path.name
        assert first.split()[-1] not in _ABBREVIATIONS, path.name
        rest = flat[len(first) :]
        assert not rest or re.match(r" [A-Z0-9(\"']", rest), (path.name, rest[:40])


def test_study_list_shows_whole_first_sentences(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the project's catalog only
    monkeypatch.delenv("ANALOGEBL_PATH", raising=False)
    rc, out, err = _run(["study", "list"], capsys)
    assert rc == 0 and not err
    names = list(list_entries("studies"))
    assert [line.split()[0] for line in out] == names
    for line in out:
        assert re.fullmatch(r"\S+ +\d+ runs? +\S.*[.!?]", line), line  # a whole sentence
        assert not re.search(r"`|\.\./|shared/|docs/|seed_systems|\.md\b", line), line


def test_study_descriptions_name_no_file_the_package_lacks():
    for path in sorted((ROOT / "studies").glob("*.toml")):
        text = tomllib.loads(path.read_text(encoding="utf-8"))["description"]
        assert not re.search(r"`|\.\./|shared/|docs/|seed_systems|\.md\b", text), path.name
        assert len(_first_sentence(text)) <= 180, path.name  # one readable line in study list


# ---------------------------------------------------------------------------------------
# study show


def _show(capsys, *argv: str) -> str:
    rc, out, err = _run(["study", "show", *argv], capsys)
    assert rc == 0 and not err
    return "\n".join(out) + "\n"


def test_study_show_prints_the_description_as_text(capsys):
    text = _show(capsys, "mnist_dhn_c_ep")
    comments = [line[2:] for line in text.splitlines() if line.startswith("# ")]
    description = load_study("mnist_dhn_c_ep")["description"]
    assert " ".join(" ".join(comments).split()).find(" ".join(description.split())) >= 0
    assert "\\n" not in text and "description =" not in text
    assert max(len(line) for line in text.splitlines() if line.startswith("#")) <= 90
    doc = tomllib.loads(text)  # text lines are comments: the settings still parse
    assert doc["circuit"]["name"] == "dhn_mnist" and doc["rule"]["name"] == "c_ep"


def test_study_show_leaves_out_the_keys_no_run_reads(capsys):
    doc = tomllib.loads(_show(capsys, "mnist_dhn_c_ep"))
    assert "model" not in doc and "profile" not in doc and "sweep" not in doc
    assert set(doc["optimizer"]) == {"name", "lr", "lr_scale", "momentum", "weight_decay",
                                     "schedule", "eta_min"}  # fmt: skip
    assert set(doc["rule"]) == {"name", "beta", "iterations", "nudge"}
    model = tomllib.loads(_show(capsys, "toreq_models_mnist"))
    assert "circuit" not in model and "probes" not in model
    assert "schedule" not in model["relaxation"] and "momentum" not in model["optimizer"]
    swept = tomllib.loads(_show(capsys, "seven_rules_mnist", "--tier", "cpu"))
    assert "seed" not in swept and swept["sweep"]["seed"] == [0, 1, 2]  # swept, not top level
    assert "nudge" not in swept["rule"]  # every EP rule sets its own (per_rule)
    assert swept["per_rule"]["c_ep"]["rule"]["nudge"] == "step"
    hw = tomllib.loads(_show(capsys, "hardware_profiles_mnist"))
    assert "profile" not in hw and len(hw["sweep"]["profile"]) == 6


@pytest.mark.parametrize("tier", ["full", "cpu", "smoke"])
def test_study_show_output_loads_as_the_same_study(tier, tmp_path, capsys):
    """Saved as a study file, what ``study show`` prints runs the same runs with the same
    values of every key that applies (the keys it leaves out change nothing), loaded as
    ``analogebl study run FILE.toml`` loads it: with no tier."""
    for name in list_entries("studies"):
        path = tmp_path / f"{name}_{tier}.toml"
        path.write_text(_show(capsys, name, "--tier", tier), encoding="utf-8")
        want, got = load_study(name, tier).runs(), load_study(str(path)).runs()
        assert [r.run_id for r in got] == [r.run_id for r in want], name
        for a, b in zip(want, got, strict=True):
            va, vb = a.as_dict(), b.as_dict()
            assert _applies(vb) == _applies(va), (name, a.run_id)
            assert {k: vb[k] for k in _applies(vb)} == {k: va[k] for k in _applies(va)}, (
                name,
                a.run_id,
            )


def test_study_show_output_runs_as_a_study(tmp_path, capsys, monkeypatch):
    """study show NAME > my.toml; study run my.toml: the saved output is accepted as it is
    (no --tier) and runs the shown tier's runs (training and the report stubbed out)."""
    from analogebl import reporting
    from analogebl.study import runner

    started = []

    def run_study(study, out, **kw):
        started.append(study)
        return []

    monkeypatch.setattr(runner, "run_study", run_study)
    monkeypatch.setattr(reporting, "write_report", lambda out: [])
    monkeypatch.chdir(tmp_path)
    want = load_study("mnist_dhn_c_ep", "cpu")
    assert want["default_tier"] == "cpu"  # a study whose own default tier the file lacks
    Path("my.toml").write_text(_show(capsys, "mnist_dhn_c_ep"), encoding="utf-8")
    rc, out, err = _run(["study", "run", "my.toml"], capsys)
    assert rc == 0, err
    (study,) = started
    assert [r.run_id for r in study.runs()] == [r.run_id for r in want.runs()]
    assert out[0].startswith("study my (tier full): mnist, circuit dhn_mnist")


def test_a_missing_tier_of_a_study_without_tiers_reads_naturally(tmp_path):
    path = tmp_path / "bare.toml"
    path.write_text('dataset = "mnist"\n[circuit]\nname = "dhn_mnist"\n[rule]\nname = "c_ep"\n'
                    "[optimizer]\nlr = 0.1\n")  # fmt: skip
    with pytest.raises(ConfigError) as exc:
        load_study(str(path), "cpu")
    assert str(exc.value).endswith("study has no tier 'cpu' (its only tier is full)")


# ---------------------------------------------------------------------------------------
# a typo is answered with the names close to it


def test_an_unknown_study_suggests_the_close_names(capsys):
    rc, out, err = _run(["study", "show", "mnist_dhn_c_epp"], capsys)
    assert rc == 2 and not out
    assert err == ["analogebl: error: unknown study 'mnist_dhn_c_epp'; did you mean "
                   "'mnist_dhn_c_ep'?"]  # fmt: skip
    rc, _, err = _run(["study", "run", "sevn_rules_mnist"], capsys)
    assert rc == 2 and "did you mean 'seven_rules_mnist'" in err[0] and "speedup" not in err[0]
    rc, _, err = _run(["study", "show", "zzzz"], capsys)  # nothing close: every name
    assert rc == 2 and len(err) == 1
    assert all(name in err[0] for name in list_entries("studies"))


@pytest.mark.parametrize(
    "key, hint",
    [
        ("rule.bta", "did you mean 'rule.beta'?"),
        ("beta", "did you mean 'rule.beta'?"),
        ("optimizer.beta", "did you mean 'rule.beta'?"),
        ("optimiser.lr", "did you mean 'optimizer.lr'?"),
        ("lrr", "did you mean 'optimizer.lr'?"),
        ("epoch", "did you mean 'epochs'?"),
        ("batchsize", "did you mean 'batch_size'?"),
        ("circuit.widht", "did you mean 'circuit.width'?"),
    ],
)
def test_an_unknown_set_key_suggests_the_close_keys(key, hint, capsys):
    rc, out, err = _run(["study", "run", "mnist_dhn_c_ep", "--set", f"{key}=1"], capsys)
    assert rc == 2 and not out
    assert err == [f"analogebl: error: --set, key '{key}': unknown key; {hint}"]


def test_an_unknown_set_key_without_a_close_one_lists_the_keys_by_table(capsys):
    rc, _, err = _run(["study", "run", "mnist_dhn_c_ep", "--set", "rule.xyzzy=1"], capsys)
    assert rc == 2 and len(err) == 1
    assert err[0].endswith("unknown key; the rule keys are rule.name, rule.beta, "
                           "rule.iterations, rule.schedule, rule.nudge, rule.points, "
                           "rule.homeostasis, rule.temperature")  # fmt: skip
    rc, _, err = _run(["study", "run", "mnist_dhn_c_ep", "--set", "frobnicate=1"], capsys)
    assert rc == 2 and len(err) == 1
    assert "known: description, default_tier, dataset" in err[0]
    assert "the tables circuit, rule, relaxation, optimizer, model" in err[0]
    assert "optimizer.kfac_decay" not in err[0] and len(err[0]) < 500  # not all 58 keys


def test_an_unknown_key_in_a_study_file_suggests_the_close_key(tmp_path, capsys):
    path = tmp_path / "typo.toml"
    path.write_text('dataset = "mnist"\nepoch = 3\n[circuit]\nname = "dhn_mnist"\n'
                    '[rule]\nname = "c_ep"\n[optimizer]\nlr = 0.1\n')  # fmt: skip
    rc, _, err = _run(["study", "show", str(path)], capsys)
    assert rc == 2
    assert err == [f"analogebl: error: {path}, key 'epoch': unknown key; did you mean 'epochs'?"]


# ---------------------------------------------------------------------------------------
# data check


def test_the_official_table_matches_the_readers_and_the_shared_checksums(data_dir):
    assert set(OFFICIAL_DATASETS) == set(DATASETS)
    for name, ds in OFFICIAL_DATASETS.items():
        spec = _SPECS[name]  # the files the reader opens are the files the check requires
        read = {f"{ds.folder}/{n}" for split in ("train", "test") for n in spec.files(split)}
        required = {
            rel
            for rel, f in OFFICIAL_FILES.items()
            if rel.startswith(ds.folder + "/") and f.required
        }
        assert required == read, name
    listed = (Path(data_dir) / "MD5SUMS").read_text().splitlines()
    for line in listed:
        digest, rel = line.split()
        rel = rel.removeprefix("./")
        assert OFFICIAL_FILES[rel].md5 == digest, rel
        assert OFFICIAL_FILES[rel].size == (Path(data_dir) / rel).stat().st_size, rel


def _lines(out: list[str], name: str) -> list[list[str]]:
    return [line.split(None, 2) for line in out if line.split()[:1] == [name]]


def test_data_check_of_the_shared_data(data_dir, capsys):
    rc, out, err = _run(["data", "check", "--root", data_dir], capsys)
    assert rc == 0 and not err
    for name in ("mnist", "fmnist", "cifar10"):
        (line,) = _lines(out, name)
        assert line[1] == "ok", line
    assert out[-1].startswith("summary: ") or out[-2].startswith("summary: ")


@pytest.fixture
def mnist_root(data_dir, tmp_path):
    """A data folder holding a writable copy of the four MNIST files only."""
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    for f in (Path(data_dir) / "mnist").iterdir():
        shutil.copyfile(f, root / "mnist" / f.name)
    return root


def test_data_check_without_a_checksum_list(mnist_root, capsys):
    assert not (mnist_root / "MD5SUMS").exists()
    rc, out, err = _run(["data", "check", "--root", str(mnist_root)], capsys)
    assert rc == 0 and not err
    assert _lines(out, "mnist")[0][1] == "ok"
    for name in ("fmnist", "cifar10", "cifar100", "svhn"):
        (line,) = _lines(out, name)
        assert line[1] == "absent", line
    (fmnist,) = _lines(out, "fmnist")
    assert "fashion-mnist" in fmnist[2] and "http" in fmnist[2]  # where to get it
    (cifar100,) = _lines(out, "cifar100")
    assert (
        "cifar-100-binary.tar.gz" in cifar100[2]
        and "03b5dce01913d631647c71ecec9e9cb8" in (cifar100[2])
    )
    assert "summary: 1 ok, 0 BAD, 4 absent" in out


def test_data_check_names_a_corrupted_file(mnist_root, capsys):
    f = mnist_root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one bit, same size
    f.write_bytes(bytes(raw))
    rc, out, err = _run(["data", "check", "--root", str(mnist_root)], capsys)
    assert rc == 1 and not err
    bad = _lines(out, "mnist")
    assert all(line[1] == "BAD" for line in bad)
    assert bad[0][2].startswith("mnist/t10k-labels-idx1-ubyte.gz: MD5 ")
    assert "ec29112dd5afa0611ce80d1b7f02629c" in bad[0][2]  # the official MD5
    assert "yann.lecun.com" in bad[-1][2]  # where to get a good copy
    assert bad[-1][2].startswith("1 of 4 files is missing or differs from the official "
                                 "release; to replace it: ")  # fmt: skip


def test_data_check_names_a_missing_file_of_a_present_dataset(mnist_root, capsys):
    (mnist_root / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    rc, out, _ = _run(["data", "check", "--root", str(mnist_root)], capsys)
    assert rc == 1
    assert ["mnist", "BAD", "mnist/train-images-idx3-ubyte.gz: missing"] in _lines(out, "mnist")


def test_a_user_checksum_list_is_checked_in_addition(mnist_root, capsys):
    (mnist_root / "notes.txt").write_bytes(b"mine")
    good = hashlib.md5(b"mine").hexdigest()
    official = OFFICIAL_FILES["mnist/t10k-labels-idx1-ubyte.gz"].md5
    (mnist_root / "MD5SUMS").write_text(
        f"{good}  ./notes.txt\n{official}  ./mnist/t10k-labels-idx1-ubyte.gz\n"
    )
    rc, out, _ = _run(["data", "check", "--root", str(mnist_root)], capsys)
    assert rc == 0
    user = _lines(out, "MD5SUMS")
    assert user[0][1] == "ok" and "1 of them official" in user[0][2]
    assert user[1:] == [["MD5SUMS", "ok", "./notes.txt"]]
    (mnist_root / "notes.txt").write_bytes(b"changed")
    rc, out, _ = _run(["data", "check", "--root", str(mnist_root)], capsys)
    assert rc == 1 and _lines(out, "mnist")[0][1] == "ok"
    assert _lines(out, "MD5SUMS")[1][:2] == ["MD5SUMS", "BAD"]


def test_the_summary_counts_the_checksum_list(mnist_root, capsys):
    """The summary agrees with the exit status: a bad MD5SUMS entry is counted in it."""
    (mnist_root / "notes.txt").write_bytes(b"mine")
    (mnist_root / "MD5SUMS").write_text(f"{hashlib.md5(b'mine').hexdigest()}  notes.txt\n")
    rc, out, _ = _run(["data", "check", "--root", str(mnist_root)], capsys)
    assert rc == 0
    assert _lines(out, "MD5SUMS")[0][2].startswith("1 file listed in ")
    assert "summary: 1 ok, 0 BAD, 4 absent; MD5SUMS: ok" in out
    (mnist_root / "notes.txt").write_bytes(b"changed")
    rc, out, _ = _run(["data", "check", "--root", str(mnist_root)], capsys)
    assert rc == 1
    assert "summary: 1 ok, 0 BAD, 4 absent; MD5SUMS: 1 file BAD" in out
    official = OFFICIAL_FILES["mnist/t10k-labels-idx1-ubyte.gz"].md5
    (mnist_root / "MD5SUMS").write_text(f"{official}  mnist/t10k-labels-idx1-ubyte.gz\n")
    rc, out, _ = _run(["data", "check", "--root", str(mnist_root)], capsys)
    assert rc == 0
    assert _lines(out, "MD5SUMS")[0][2].endswith("MD5SUMS, an official file checked above")


def test_data_check_output_has_no_plural_after_one(mnist_root, capsys):
    (mnist_root / "MD5SUMS").write_text(f"{'0' * 32}  gone.txt\n")
    f = mnist_root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-1])
    rc, out, _ = _run(["data", "check", "--root", str(mnist_root)], capsys)
    assert rc == 1
    assert not re.search(r"\b1 files\b|\b1 of \d+ files are\b", "\n".join(out)), out


def test_data_check_of_an_absent_folder_is_a_clear_error(tmp_path, capsys):
    rc, out, err = _run(["data", "check", "--root", str(tmp_path / "nowhere")], capsys)
    assert rc == 2 and not out
    assert len(err) == 1 and err[0].startswith("analogebl: error: ") and "nowhere" in err[0]


def test_cifar100_is_checked_by_size_and_labels(tmp_path, capsys, monkeypatch):
    """No MD5 of the extracted CIFAR-100 files is published: the check says so and checks
    their size, record count and labels (files written here in the official format)."""
    write_cifar100(tmp_path, 10, np.random.default_rng(0))  # 10 train, 5 test records
    rc, out, _ = _run(["data", "check", "--root", str(tmp_path)], capsys)
    assert rc == 1  # far fewer records than the official 50,000 / 10,000
    bad = _lines(out, "cifar100")
    assert bad[0][2].startswith("cifar100/cifar-100-binary/train.bin: 30,740 bytes")
    assert "153,700,000" in bad[0][2]
    small = dict(OFFICIAL_FILES)
    for split, n in (("train", 10), ("test", 5)):
        small[f"cifar100/cifar-100-binary/{split}.bin"] = OfficialFile(
            None, n * checksums.CIFAR100_RECORD, records=n
        )
    monkeypatch.setattr(checksums, "OFFICIAL_FILES", small)
    rc, out, _ = _run(["data", "check", "--root", str(tmp_path)], capsys)
    assert rc == 0
    (line,) = _lines(out, "cifar100")
    assert line[1] == "ok" and "published MD5" in line[2] and "cifar-100-binary.tar.gz" in line[2]
    f = tmp_path / "cifar100" / "cifar-100-binary" / "test.bin"
    raw = bytearray(f.read_bytes())
    raw[3 * checksums.CIFAR100_RECORD + 1] = 100  # record 3: fine label 100
    f.write_bytes(bytes(raw))
    rc, out, _ = _run(["data", "check", "--root", str(tmp_path)], capsys)
    assert rc == 1
    assert "record 3: fine label 100 is outside 0..99" in _lines(out, "cifar100")[0][2]


def test_svhn_is_checked_against_its_published_md5(tmp_path, capsys):
    (tmp_path / "svhn").mkdir()
    for split in ("train", "test"):
        (tmp_path / "svhn" / f"{split}_32x32.mat").write_bytes(b"MATLAB 5.0" + bytes(64))
    rc, out, _ = _run(["data", "check", "--root", str(tmp_path)], capsys)
    assert rc == 1
    bad = " ".join(line[2] for line in _lines(out, "svhn"))
    assert "e26dedcc434d2e4c54c9b2d4a06d8373" in bad and "eb5a983be6a315427106f1b164d9cef3" in bad


@pytest.mark.parametrize(
    "argv, hint",
    [
        (["check", "gradients", "--circuit", "tiny_dens"], "did you mean 'tiny_dense'?"),
        (["profile", "show", "reram"], "did you mean 'reram_like'?"),
        (["study", "show", "mnist_dhn"], "did you mean 'mnist_dhn_c_ep'?"),
    ],
)
def test_every_catalog_name_typo_gets_a_suggestion(argv, hint, capsys):
    """Circuits and profiles too, not only studies: one catalog lookup says it."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(hint) and len(err.splitlines()) == 1
