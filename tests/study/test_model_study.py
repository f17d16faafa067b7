"""Recurrent models through the study pipeline: they learn real MNIST above chance, record
their Lipschitz and convergence diagnostics, resume bit-for-bit (spectral-norm vectors
included), and refuse what does not apply to them."""

from __future__ import annotations

import numpy as np
import pytest

from analogebl.errors import ConfigError
from analogebl.pipeline import run_training
from analogebl.recording import read_run
from analogebl.study import load_study, parse_set
from analogebl.study.runner import plan_runs
from tests.interrupt import interrupt_at

SMALL = [
    "epochs=2",
    "train_subset=512",
    "validation_subset=128",
    "test_subset=256",
    "eval_batch_size=256",
    "batch_size=64",
    "model.hidden=48",
    "relaxation.free_iterations=40",
    "rule.iterations=20",
]


def _run(variant, *extra):
    return load_study(
        "toreq_models_mnist",
        "smoke",
        [parse_set(s) for s in [*SMALL, f"variant={variant}", *extra]],
    ).runs()[0]


@pytest.mark.parametrize("variant", ["bp_mlp", "looped_sn", "toroidal", "modern"])
def test_each_model_learns_and_records_diagnostics(variant, data_dir, tmp_path):
    res = run_training(_run(variant), progress=False, path=tmp_path / "r.h5")
    rec = read_run(tmp_path / "r.h5")
    assert res.test_error < 0.6, res.test_error  # chance is 0.9
    m = rec.metrics
    sig = "sigma_W1" if variant == "modern" else "sigma_W"
    assert np.all(m[sig] > 0) and np.all(np.isfinite(m["lipschitz_mean"]))
    if variant != "bp_mlp":
        assert np.all(m["relax_steps"] >= 1) and np.all(
            (m["converged"] >= 0) & (m["converged"] <= 1)
        )
        assert np.all(m["lipschitz_max"] < 1.0)  # damped contraction at the equilibria
    if variant == "looped_sn":
        assert np.all(m["sigma_W"] <= 0.95 * (1 + 1e-3))
    assert "model looped_mlp" in rec.circuit_toml or variant != "looped_sn"


def test_model_run_resumes_bit_for_bit(data_dir, tmp_path, monkeypatch):
    run = _run("looped_sn")
    run_training(run, progress=False, path=tmp_path / "a.h5", checkpoint_seconds=0)
    import analogebl.models.network as mn

    restore = interrupt_at(monkeypatch, mn.ModelNetwork, 11)  # epoch 2 (8 batches), batch 3
    with pytest.raises(KeyboardInterrupt):
        run_training(run, progress=False, path=tmp_path / "b.h5", checkpoint_seconds=0)
    assert "model/sn/W" in read_run(tmp_path / "b.h5").checkpoint.arrays
    restore()
    res = run_training(run, progress=False, path=tmp_path / "b.h5", checkpoint_seconds=0)
    assert res.resumed_from == (1, 2)
    a, b = read_run(tmp_path / "a.h5"), read_run(tmp_path / "b.h5")
    for k in a.checkpoint.arrays:
        np.testing.assert_array_equal(a.checkpoint.arrays[k], b.checkpoint.arrays[k], err_msg=k)
    for k in a.metrics:
        if not k.startswith("seconds"):
            np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)


@pytest.mark.parametrize(
    "sets,match",
    [
        (["variant=modern", "rule.name=h_ep"], "holomorphic"),
        (["variant=looped", "profile=reram_like"], "crossbar circuits"),
        (["variant=looped", "optimizer.lr=[0.1, 0.2]"], "one learning rate"),
        (["variant=bp_mlp", "rule.name=c_ep"], "feed-forward"),
    ],
)
def test_what_does_not_apply_is_refused_before_writing(sets, match, data_dir, tmp_path):
    with pytest.raises(ConfigError, match=match):  # when the study loads, or when runs are planned
        study = load_study("toreq_models_mnist", "smoke", [parse_set(s) for s in sets])
        plan_runs(study, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_circuit_rules_reject_model_only_rules(data_dir, tmp_path):
    study = load_study("mnist_dhn_c_ep", "smoke", [parse_set("rule.name=h_ep")])
    with pytest.raises(ConfigError, match="hard-sigmoid"):
        plan_runs(study, tmp_path / "out")
