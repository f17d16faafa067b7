"""A run file written by the code before the Trainer (commit 64e4cd5, interrupted in its
second epoch) resumes under the current code, ends bit-for-bit like an uninterrupted run of
the current code, and reports."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from analogebl.pipeline import run_training
from analogebl.recording import read_run
from analogebl.study import load_study, parse_set

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "old_run_interrupted.h5"
# the configuration the fixture was written with (tests/fixtures/README.md)
SETS = ["epochs=2", "train_subset=200", "test_subset=100", "batch_size=50",
        "circuit.name=tiny_dense", "optimizer.lr=[0.1, 0.05, 0.025]", "backend=numba",
        "threads=2"]  # fmt: skip


def _study():
    return load_study("mnist_dhn_c_ep", tier="smoke", overrides=[parse_set(s) for s in SETS])


def test_old_run_file_resumes_bit_identically_and_reports(data_dir, tmp_path):
    old = read_run(FIXTURE)
    assert not old.complete and old.checkpoint is not None
    assert (old.checkpoint.epoch, old.checkpoint.step) == (1, 2)  # epoch 2, batch 3

    resumed = tmp_path / "runs" / "run.h5"
    resumed.parent.mkdir()
    shutil.copy(FIXTURE, resumed)
    res = run_training(_study(), progress=False, path=resumed, checkpoint_seconds=0)
    assert res.resumed_from == (1, 2)
    fresh = tmp_path / "fresh.h5"
    run_training(_study(), progress=False, path=fresh, checkpoint_seconds=0)

    ra, rb = read_run(resumed), read_run(fresh)
    assert ra.complete and rb.complete and ra.epochs_done == 2
    for k in rb.metrics:
        if k.startswith("seconds"):  # wall-clock metrics
            continue
        if k in old.metrics:
            np.testing.assert_array_equal(ra.metrics[k], rb.metrics[k], err_msg=k)
        elif k.startswith("probe_"):  # measured at an epoch's end: known for the epoch the
            # current code finished, and equal to the uninterrupted run's (same weights)
            assert np.isnan(ra.metrics[k][0]), k
            np.testing.assert_array_equal(ra.metrics[k][1:], rb.metrics[k][1:], err_msg=k)
        else:  # added since the fixture was written: unknown (NaN) for the epochs the old
            # version ran or began (the file was interrupted inside epoch 2)
            assert np.isnan(ra.metrics[k]).all(), k
    assert set(ra.checkpoint.arrays) == set(rb.checkpoint.arrays)
    for k, v in rb.checkpoint.arrays.items():
        np.testing.assert_array_equal(ra.checkpoint.arrays[k], v, err_msg=k)
    # the epoch recorded by the old code is kept as it was
    np.testing.assert_array_equal(ra.metrics["test_error"][:1], old.metrics["test_error"][:1])

    from analogebl.reporting import write_report

    paths = write_report(resumed.parent, tmp_path / "report")
    text = "\n".join(Path(p).read_text() for p in paths if str(p).endswith(".md"))
    assert "C-EP" in text
