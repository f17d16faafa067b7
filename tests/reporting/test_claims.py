"""Claims tested with statistics, reports that never pool what should not be pooled, and the
report document regenerated from committed run files (tests/fixtures/report_runs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from analogebl.cli import main
from analogebl.errors import ConfigError
from analogebl.recording import RunRecord, write_run
from analogebl.reporting import load_runs, summarize, write_report
from analogebl.reporting.claims import evaluate_claim
from analogebl.study import load_study
from analogebl.study.claims import parse_claims

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "report_runs"


def run_file(
    path: Path,
    rule: str,
    seed: int,
    test: float,
    *,
    study: str = "toy",
    tier: str = "cpu",
    epochs: int = 2,
    train_size: int = 1000,
    test_size: int = 500,
    beta: float = 0.25,
    val: tuple | None = None,
) -> Path:
    """A complete run file whose final test error is ``test``."""
    config = f'dataset = "mnist"\nseed = {seed}\n\n[rule]\nname = "{rule}"\nbeta = {beta}\n'
    metrics = {
        "epoch": np.arange(1.0, epochs + 1),
        "train_error": np.linspace(0.9, test / 2, epochs),
        "test_error": np.r_[np.full(epochs - 1, 0.9), test],
        "seconds": np.full(epochs, 1.5),
    }
    if val is not None:
        metrics["val_error"] = np.asarray(val, float)
    meta = {
        "study": study,
        "tier": tier,
        "rule": rule,
        "dataset": "mnist",
        "profile": "none",
        "seed": seed,
        "beta": beta,
        "complete": True,
        "epochs_planned": epochs,
        "train_size": train_size,
        "test_size": test_size,
        "validation_size": 0,
        "git_sha": "a" * 40,
        "version": "0.1.0",
        "variant": "",
    }
    write_run(path, RunRecord(meta, config, "", metrics, None))
    return path


def claims(text: str, values=None):
    import tomllib

    return parse_claims(tomllib.loads(text)["claims"], "toy.toml", values)


TOY_CLAIMS = """
[claims.a_beats_b]
lhs = "a"
rhs = "b"
metric = "test_error"
direction = "less"
[claims.b_beats_a]
lhs = "b"
rhs = "a"
metric = "test_error"
direction = "less"
[claims.a_beats_c]
lhs = "a"
rhs = "c"
metric = "test_error"
direction = "less"
[claims.a_beats_d]
lhs = "a"
rhs = "d"
metric = "test_error"
direction = "less"
[claims.a_like_c]
lhs = "a"
rhs = "c"
metric = "test_error"
direction = "similar"
margin = 0.05
[claims.a_best]
lhs = "a"
rhs = ["b", "c"]
metric = "test_error"
direction = "less"
"""

A = [0.10, 0.11, 0.12, 0.10]
B = [0.30, 0.31, 0.29, 0.33]
C = [0.11, 0.10, 0.12, 0.10]


@pytest.fixture
def toy(tmp_path):
    root = tmp_path / "runs"
    for rule, vals in (("a", A), ("b", B), ("c", C), ("d", [0.5])):
        for s, v in enumerate(vals):
            run_file(root / f"{rule}_{s}.h5", rule, s, v)
    return root


def test_welch_verdicts_and_p_values(toy):
    runs = load_runs(toy)
    res = {c.name: evaluate_claim(c, runs, "toy") for c in claims(TOY_CLAIMS)}
    assert all(len(r) == 1 for r in res.values())
    v = {k: r[0].verdict for k, r in res.items()}
    assert v == {
        "a_beats_b": "confirmed",
        "b_beats_a": "contradicted",
        "a_beats_c": "not significant",
        "a_beats_d": "insufficient data",
        "a_like_c": "confirmed",
        "a_best": "not significant",  # confirmed against b, not against c
    }
    comp = res["a_beats_b"][0].comparisons[0]
    want = stats.ttest_ind(A, B, equal_var=False, alternative="less").pvalue
    assert comp.p == pytest.approx(want) and comp.p < 1e-4 and comp.lhs_seeds == (0, 1, 2, 3)
    assert comp.hedges_g < -5  # lhs - rhs, in pooled std
    assert res["b_beats_a"][0].comparisons[0].p_opposite == pytest.approx(want)


def test_report_lists_claims_with_verdicts(toy):
    write_report(toy, claims={"toy": claims(TOY_CLAIMS)})
    md = (toy / "report" / "report.md").read_text()
    assert "## Claims" in md and "Welch" in md and "Hedges' *g*" in md
    assert "#### a_beats_b: confirmed" in md and "#### b_beats_a: contradicted" in md
    assert "#### a_beats_d: insufficient data" in md and "best *test* epoch" in md
    assert "| a | b | 10.75 ± 0.96 [n=4] | 30.75 ± 1.71 [n=4] |" in md


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ('lhs = "a"\nrhs = "b"\nmetric = "test_error"\ndirection = "lesser"', "direction", "less"),
        ('lhs = "a"\nrhs = "b"\ndirection = "less"', "metric", "missing"),
        (
            'lhs = "a"\nrhs = "b"\nmetric = "test_error"\ndirection = "less"\nalfa = 0.1',
            "alfa",
            "unknown key",
        ),
        ('lhs = "a"\nrhs = "zz"\nmetric = "test_error"\ndirection = "less"', "rhs", "not a value"),
        ('lhs = "a"\nrhs = "b"\nmetric = "e"\ndirection = "less"\nalpha = 0.7', "alpha", "0.5"),
        ('lhs = "a"\nrhs = "b"\nmetric = "e"\ndirection = "similar"', "margin", "margin"),
        ('lhs = "a"\nrhs = "b"\nmetric = "e"\ndirection = "less"\nby = "rul"', "by", "unknown"),
    ],
)
def test_bad_claim_names_its_key(table, key, words):
    with pytest.raises(ConfigError, match=words) as exc:
        claims(f"[claims.x]\n{table}\n", {"rule.name": {"a", "b"}})
    assert exc.value.key == f"claims.x.{key}" and "toy.toml" in str(exc.value)


STUDY = """description = "toy"
dataset = "mnist"
epochs = 1
[circuit]
name = "tiny_dense"
[rule]
name = "c_ep"
beta = 0.25
[optimizer]
lr = 0.01
[sweep]
rule.name = ["c_ep", "p_ep"]
seed = [0, 1]
"""
CLAIM = '[claims.x]\nlhs = "c_ep"\nrhs = "p_ep"\nmetric = "test_error"\ndirection = "{}"\n'


def test_bad_claim_in_a_study_file_exits_2(tmp_path, monkeypatch, capsys, toy):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "toy.toml").write_text(STUDY + CLAIM.format("lesser"))
    assert main(["study", "show", "toy"]) == 2
    err = capsys.readouterr().err
    assert "toy.toml" in err and "claims.x.direction" in err
    assert main(["study", "report", str(toy)]) == 2  # the runs' study file is read
    assert "claims.x.direction" in capsys.readouterr().err
    assert not (toy / "report").exists()  # nothing half-written


def test_claims_change_no_run_id_or_recorded_configuration(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    f = tmp_path / "studies" / "toy.toml"
    f.write_text(STUDY)
    plain = [(r.run_id, r.to_toml()) for r in load_study("toy").runs()]
    f.write_text(STUDY + CLAIM.format("less"))
    study = load_study("toy")
    assert [(r.run_id, r.to_toml()) for r in study.runs()] == plain
    assert "claims" not in study.to_toml() and [c.name for c in study.claims] == ["x"]
    assert main(["study", "show", "toy"]) == 0
    assert "#   x: c_ep < p_ep in test_error" in capsys.readouterr().out


def test_mixed_tiers_epochs_and_sizes_are_never_pooled(tmp_path):
    root = tmp_path / "mixed"
    run_file(root / "smoke.h5", "c_ep", 0, 0.30, tier="smoke")
    run_file(root / "e3.h5", "c_ep", 0, 0.20, epochs=3)
    run_file(root / "cpu0.h5", "c_ep", 0, 0.10)
    run_file(root / "cpu1.h5", "c_ep", 1, 0.12)
    run_file(root / "small.h5", "c_ep", 0, 0.15, train_size=300)
    run_file(root / "beta.h5", "c_ep", 0, 0.05, beta=0.5)
    cells = summarize(load_runs(root))
    assert sorted(c.n for c in cells) == [1, 1, 1, 1, 2]
    (pooled,) = [c for c in cells if c.n == 2]
    assert pooled.cohort.tier == "cpu" and pooled.cohort.epochs == 2
    assert pooled.label == "rule.beta=0.25"  # a beta-0.5 run sits beside it
    assert {c.label for c in cells} == {"", "rule.beta=0.25", "rule.beta=0.5"}
    write_report(root, claims={})
    md = (root / "report" / "report.md").read_text()
    assert md.count("### study `toy`, tier `") == 4
    assert "tier `smoke`, 2 epochs, 1000 training / 500 test images" in md
    assert "tier `cpu`, 3 epochs" in md and "300 training" in md
    assert "smoke: not a result" in md and "Seeds: 0, 1." in md
    assert "12.69" not in md and "C-EP (rule.beta=0.5)" in md


def test_a_duplicated_seed_counts_once(tmp_path):
    root = tmp_path / "dup"
    run_file(root / "a/s0.h5", "c_ep", 0, 0.10)
    shutil.copy(root / "a/s0.h5", root / "copy_of_s0.h5")
    run_file(root / "a/s1.h5", "c_ep", 1, 0.14)
    (cell,) = summarize(load_runs(root))
    assert cell.n == 2 and cell.seeds == (0, 1)
    write_report(root, claims={})
    md = (root / "report" / "report.md").read_text()
    assert "## Duplicated runs" in md and "| `copy_of_s0.h5` | `a/s0.h5` | yes |" in md
    assert "2 distinct run(s)" in md and "12.00 ± 2.83" in md


def test_best_validation_epoch_is_reported(tmp_path):
    root = tmp_path / "val"
    for s in (0, 1):
        run_file(root / f"{s}.h5", "c_ep", s, 0.2 + s / 100, val=(0.1, 0.3))
    write_report(root, claims={})
    md = (root / "report" / "report.md").read_text()
    assert "test error % at the best-validation epoch" in md
    assert "| C-EP | 90.00 ± 0.00 |" in md  # epoch 1 has the lowest val_error


def test_report_regenerated_from_committed_run_files(tmp_path):
    files = sorted(p.name for p in FIXTURES.glob("*.h5"))
    assert files == ["n_ep_seed0.h5", "n_ep_seed1.h5", "p_ep_seed0.h5", "p_ep_seed1.h5"]
    assert sum(p.stat().st_size for p in FIXTURES.glob("*.h5")) < 200_000
    root = tmp_path / "runs"
    shutil.copytree(FIXTURES, root)
    shutil.copy(root / "n_ep_seed0.h5", root / "again.h5")  # a copied run: one run
    out = tmp_path / "rep"
    assert main(["study", "report", str(root), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    for text in (
        "5 run file(s)",
        "4 distinct run(s)",
        "Studies: `seven_rules_mnist`.",
        "#### negative_beats_positive_ep: not significant",
        "| n_ep | p_ep | 85.94 ± 4.42 [n=2] | 86.72 ± 5.52 [n=2] |",
        "#### c_ep_best_energy_based: insufficient data",
        "tier `smoke`, 1 epoch, 64 training / 64 test images",
        "**smoke: not a result**",
        "| P-EP | 86.72 ± 5.52 (91.41) |",
        "| N-EP | 85.94 ± 4.42 (91.41) |",
        "git sha: `8d819db84450c538bbfde21ffb5925d4717d1732`",
        "analogebl version: `0.1.0`",
        "| `p_ep_seed0.h5` | smoke | P-EP | MNIST | none | 0 | 1 / 1 | 1 |",
        "| `n_ep_seed0.h5` | `again.h5` | yes |",
        "total wall time of all runs",
        "machine:",
        "![bars_none_mnist](bars_none_mnist.png)",
    ):
        assert text in md, text
    assert (out / "bars_none_mnist.png").read_bytes()[:4] == b"\x89PNG"
