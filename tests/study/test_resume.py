"""Runs survive SIGKILL at any moment: resumed, they end bit-for-bit where an uninterrupted
run ends; a complete run is not redone; a diverging run stops and keeps its last good
checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from analogebl.errors import DivergenceError
from analogebl.pipeline import run_training
from analogebl.recording import read_run
from analogebl.study import load_study, parse_set
from tests.interrupt import interrupt_at

SETS = [
    "epochs=3",
    "train_subset=600",
    "test_subset=200",
    "batch_size=50",
    "circuit.name=tiny_dense",
    "optimizer.lr=[0.1, 0.05, 0.025]",
    "backend=numba",
]


def _cmd(out):
    cmd = [
        sys.executable,
        "-m",
        "analogebl.cli",
        "study",
        "run",
        "mnist_dhn_c_ep",
        "--tier",
        "smoke",
        "--out",
        str(out),
        "--checkpoint-seconds",
        "0",
        "--json",
    ]
    for s in SETS:
        cmd += ["--set", s]
    return cmd


def _env(data_dir):
    return {**os.environ, "ANALOGEBL_DATA": data_dir, "OMP_NUM_THREADS": "2"}


def _compare(a, b):
    ra, rb = read_run(a), read_run(b)
    assert ra.complete and rb.complete
    assert set(ra.metrics) == set(rb.metrics)
    for k in ra.metrics:
        if not k.startswith("seconds"):  # wall-clock metrics
            np.testing.assert_array_equal(ra.metrics[k], rb.metrics[k], err_msg=k)
    pa = {k: v for k, v in ra.checkpoint.arrays.items()}
    pb = {k: v for k, v in rb.checkpoint.arrays.items()}
    assert set(pa) == set(pb)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bit_identical(data_dir, tmp_path):
    env = _env(data_dir)
    ref = tmp_path / "ref"
    subprocess.run(_cmd(ref), env=env, check=True, capture_output=True, timeout=300)
    run = tmp_path / "killed"
    rng = np.random.default_rng(1234)
    kills_after_checkpoint = 0
    for attempt in range(4):
        p = subprocess.Popen(
            _cmd(run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if attempt == 0:
            time.sleep(0.5)  # during start-up, before any file exists
        else:
            t0 = time.time()
            while not (run / "run.h5").exists() and time.time() - t0 < 60:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 1.5))
            kills_after_checkpoint += p.poll() is None
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert kills_after_checkpoint >= 1
    done = subprocess.run(_cmd(run), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not list(run.glob("*.tmp"))
    _compare(ref / "run.h5", run / "run.h5")


def test_resume_mid_epoch_in_process_equals_uninterrupted(data_dir, tmp_path, monkeypatch):
    """Stop a run after a checkpoint inside epoch 2 (by making the data source fail), then
    resume: same metrics and parameters as a run that never stopped."""
    study = load_study("mnist_dhn_c_ep", "smoke", [parse_set(s) for s in SETS])
    run_training(study, progress=False, path=tmp_path / "a.h5", checkpoint_seconds=0)
    from analogebl.network import Network

    restore = interrupt_at(monkeypatch, Network, 19)  # epoch 2 (12 batches per epoch), batch 7
    with pytest.raises(KeyboardInterrupt):
        run_training(study, progress=False, path=tmp_path / "b.h5", checkpoint_seconds=0)
    ck = read_run(tmp_path / "b.h5").checkpoint
    assert (ck.epoch, ck.step) == (1, 6)
    restore()
    res = run_training(study, progress=False, path=tmp_path / "b.h5", checkpoint_seconds=0)
    assert res.resumed_from == (1, 6)
    _compare(tmp_path / "a.h5", tmp_path / "b.h5")
    # a complete run is not redone
    t = time.perf_counter()
    again = run_training(study, progress=False, path=tmp_path / "b.h5")
    assert time.perf_counter() - t < 5 and len(again.epochs) == 3
    _compare(tmp_path / "a.h5", tmp_path / "b.h5")


def test_divergence_stops_within_a_step_and_keeps_the_last_good_checkpoint(data_dir, tmp_path):
    sets = SETS + ["optimizer.lr=[1e6, 1e6, 1e6]"]
    study = load_study("mnist_dhn_c_ep", "smoke", [parse_set(s) for s in sets])
    with pytest.raises(DivergenceError) as e:
        run_training(study, progress=False, path=tmp_path / "d.h5", checkpoint_seconds=0)
    msg = str(e.value)
    # where it shows first: a layer, a parameter or (an energy overflowing) a step's metric
    assert "NaN/Inf" in msg and "epoch 1" in msg
    assert "layer" in msg or "parameter" in msg or "metric" in msg
    rec = read_run(tmp_path / "d.h5")
    assert rec.meta["status"] == "diverged" and rec.meta["message"] == msg
    for k, v in rec.checkpoint.arrays.items():
        assert np.all(np.isfinite(v)), k


def test_resuming_with_a_different_configuration_is_refused(data_dir, tmp_path):
    from analogebl.errors import ConfigError

    study = load_study(
        "mnist_dhn_c_ep", "smoke", [parse_set(s) for s in SETS[1:]] + [parse_set("epochs=1")]
    )
    run_training(study, progress=False, path=tmp_path / "r.h5")
    other = load_study(
        "mnist_dhn_c_ep",
        "smoke",
        [parse_set(s) for s in SETS[1:]] + [parse_set("epochs=1"), parse_set("rule.beta=0.5")],
    )
    with pytest.raises(ConfigError, match="rule.beta"):
        run_training(other, progress=False, path=tmp_path / "r.h5")
