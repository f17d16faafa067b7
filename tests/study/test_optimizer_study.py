"""The optimizer comparison end to end: validation split, per-layer weight change and time
metrics, resume with optimizer state, divergence, selection on validation in the report."""

from __future__ import annotations

import numpy as np
import pytest

from analogebl.data import load_dataset, split_validation
from analogebl.errors import ConfigError, DataError, DivergenceError
from analogebl.pipeline import run_training
from analogebl.recording import read_run
from analogebl.reporting import load_runs
from analogebl.reporting.optimizers import optimizer_rows, optimizers_markdown
from analogebl.study import load_study, parse_set
from analogebl.study.runner import plan_runs
from tests.interrupt import interrupt_at

SMALL = [
    "epochs=2",
    "train_subset=300",
    "test_subset=200",
    "eval_batch_size=200",
    "batch_size=100",
    "relaxation.free_iterations=10",
    "rule.iterations=4",
    "backend=numba",
]


def _study(*extra, tier="smoke"):
    return load_study("mep_optimizers_mnist", tier, [parse_set(s) for s in [*SMALL, *extra]])


def test_validation_split_is_disjoint_and_sized(data_dir):
    ds = load_dataset("mnist", train_subset=500, test_subset=10, subset_seed=0)
    train, vx, vy = split_validation(ds, 120, np.random.default_rng(0))
    assert len(train.train_y) == 380 and len(vy) == 120 and vx.shape[1:] == ds.train_x.shape[1:]
    rows = {x.tobytes() for x in ds.train_x}
    assert len(rows) == 500  # MNIST images are distinct; the two parts partition them
    assert not ({x.tobytes() for x in train.train_x} & {x.tobytes() for x in vx})
    with pytest.raises(DataError, match="validation_subset"):
        split_validation(ds, 500, np.random.default_rng(0))


@pytest.mark.parametrize("variant", ["muon", "natural_ep", "sdmep"])
def test_run_records_layer_change_time_and_validation(variant, data_dir, tmp_path):
    study = _study(f"variant={variant}", "validation_subset=100", "optimizer.adam_lr=0.005").runs()[
        0
    ]
    path = tmp_path / "r.h5"
    res = run_training(study, progress=False, path=path)
    rec = read_run(path)
    assert rec.complete and rec.meta["variant"] == variant and rec.meta["validation_size"] == 100
    assert rec.meta["train_size"] == 300
    for k in ("rel_change_W1", "rel_change_W2", "rel_change_W3"):
        assert len(rec.metrics[k]) == 2 and np.all(rec.metrics[k] > 0), k  # every layer moves
    assert np.all(rec.metrics["seconds_per_step"] > 0)
    assert np.all((rec.metrics["val_error"] >= 0) & (rec.metrics["val_error"] <= 1))
    assert res.test_error < 0.9  # above chance after 2 small epochs
    # the optimizer state is checkpointed and a complete run is not redone
    assert any(k.startswith("opt/mom/") for k in rec.checkpoint.arrays)


@pytest.mark.parametrize("variant", ["sdmep", "natural_ep"])
def test_resume_mid_epoch_with_optimizer_state_is_bit_identical(
    variant, data_dir, tmp_path, monkeypatch
):
    """Dion's factors and momentum, K-FAC factors, Adam moments and the step count travel
    with the checkpoint: a run stopped inside epoch 2 and resumed ends bit-for-bit."""
    study = _study(f"variant={variant}", "optimizer.dion_threshold=1000").runs()[0]
    run_training(study, progress=False, path=tmp_path / "a.h5", checkpoint_seconds=0)
    from analogebl.network import Network

    restore = interrupt_at(monkeypatch, Network, 5)  # epoch 2 (3 batches per epoch), batch 2
    with pytest.raises(KeyboardInterrupt):
        run_training(study, progress=False, path=tmp_path / "b.h5", checkpoint_seconds=0)
    ck = read_run(tmp_path / "b.h5").checkpoint
    assert (ck.epoch, ck.step) == (1, 1)
    if variant == "sdmep":
        assert "opt/q/W1" in ck.arrays and "opt/mom/W1" in ck.arrays
    else:
        assert "opt/A/W1" in ck.arrays and "opt/G/W3" in ck.arrays
    restore()
    res = run_training(study, progress=False, path=tmp_path / "b.h5", checkpoint_seconds=0)
    assert res.resumed_from == (1, 1)
    a, b = read_run(tmp_path / "a.h5"), read_run(tmp_path / "b.h5")
    assert set(a.checkpoint.arrays) == set(b.checkpoint.arrays)
    for k in a.checkpoint.arrays:
        np.testing.assert_array_equal(a.checkpoint.arrays[k], b.checkpoint.arrays[k], err_msg=k)
    for k in ("test_error", "train_error", "rel_change_W1"):
        np.testing.assert_array_equal(a.metrics[k], b.metrics[k], err_msg=k)


def test_an_exploding_optimizer_stops_naming_the_parameter_and_step(data_dir, tmp_path):
    study = _study("variant=muon", "optimizer.lr=1e39", "dtype=float32").runs()[0]
    with pytest.raises(DivergenceError) as e:
        run_training(study, progress=False, path=tmp_path / "d.h5")
    msg = str(e.value)
    assert "parameter W2" in msg and "step 1" in msg and "epoch 1" in msg


def test_natural_ep_with_a_non_contrastive_rule_is_refused_before_writing(data_dir, tmp_path):
    study = _study("variant=muon", "optimizer.name=natural_ep")
    with pytest.raises(ConfigError, match="two equilibria"):
        plan_runs(study, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_report_selects_the_rate_on_validation_not_test(data_dir, tmp_path):
    """Three rates per optimizer: the reported row is the best mean validation accuracy."""
    study = load_study(
        "mep_optimizers_mnist",
        "tuned",
        [parse_set(s) for s in [*SMALL, "epochs=1", "validation_subset=100"]],
        {"seed": [0], "variant": ["adam", "eqprop"]},
    )
    for r in study.runs():
        run_training(r, progress=False, path=tmp_path / f"{r.run_id}.h5")
    runs = load_runs(tmp_path)
    rows = optimizer_rows(runs)
    assert [row.key for row in rows] == ["adam", "eqprop"]
    for row in rows:
        mine = [r for r in runs if r.meta["variant"] == row.key]
        best = min(mine, key=lambda r: r.metrics["val_error"][-1])
        assert row.lr == best.meta["lr"] and len(row.selected_from) == 3
    text = optimizers_markdown(rows)
    assert "sel. on val." in text and "93.56" in text  # published Adam number beside ours
