"""Crafted and damaged run files: a resume never trusts one blindly.

A tiny two-epoch run is stopped inside its second epoch (a checkpoint every step); each case
copies its output folder, damages ``run.h5`` one way with h5py and runs the study again: the
CLI must refuse with exit status 2 and one line naming the file and the entry, and leave
every file byte-for-byte as it was. Links to other files (external links, external raw
storage, virtual datasets) are refused before anything is read. Also: a resume on other data
files is refused; NaN/Inf in an epoch's recorded metrics marks the run diverged; an epoch's
``seconds`` counts its own time once, checkpoints inside it or not.
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
import types
from pathlib import Path

import h5py
import numpy as np
import pytest

from analogebl.network import Network
from analogebl.recording import read_run
from tests.interrupt import interrupt_at
from tests.robustness.harness import assert_clean_refusal, run_cli, snapshot

STUDY = (
    'dataset = "mnist"\nepochs = 2\ntrain_subset = 64\ntest_subset = 64\nbatch_size = 16\n'
    '[circuit]\nname = "tiny_dense"\n[rule]\nname = "c_ep"\nbeta = 0.25\n'
    "[optimizer]\nlr = 0.1\n"
)
STOP_AT = 6  # the 6th step: epoch 2, batch 2 (4 batches per epoch); checkpoint (1, 1) on disk


def _argv(study: Path, out: Path) -> list[str]:
    return ["study", "run", str(study), "--out", str(out), "--checkpoint-seconds", "0"]


@pytest.fixture(scope="module")
def stopped(data_dir, tmp_path_factory):
    """An output folder whose run stopped inside epoch 2 (and the study file)."""
    root = tmp_path_factory.mktemp("stopped")
    study = root / "study.toml"
    study.write_text(STUDY)
    mp = pytest.MonkeyPatch()
    try:
        interrupt_at(mp, Network, STOP_AT)
        from analogebl.cli import main

        assert main(_argv(study, root / "out")) == 130
    finally:
        mp.undo()
    rec = read_run(root / "out" / "run.h5")
    assert not rec.complete and (rec.checkpoint.epoch, rec.checkpoint.step) == (1, 1)
    return root


def _copy(stopped: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(sandbox root, study file, output folder) copied from the stopped run."""
    root = tmp_path / "sandbox"
    shutil.copytree(stopped, root)
    return root, root / "study.toml", root / "out"


# ---------------------------------------------------------------------- damage, one way each
def _set_attr(path, name, value):
    def f(h):
        obj, _, attr = path.rpartition("@")
        h[obj].attrs[attr] = value

    f.__name__ = name
    return f


def _replace(entry, data):
    def f(h):
        del h[entry]
        h[entry] = data

    return f


def _delete(entry):
    def f(h):
        del h[entry]

    return f


def _scalars(edit):
    def f(h):
        c = h["checkpoint"]
        s = json.loads(c.attrs["scalars"])
        edit(s)
        c.attrs["scalars"] = json.dumps(s)

    return f


def _nan_in(entry):
    def f(h):
        a = h[entry][()]
        a.flat[0] = np.nan
        h[entry][...] = a

    return f


def _batch_mismatch(h):
    a = h["checkpoint/warm/1"][()]
    del h["checkpoint/warm/1"]
    h["checkpoint/warm/1"] = a[:3]


# case -> (damage, words the one error line must hold besides the file name)
CASES = {
    # the checkpoint's position
    "checkpoint deleted, metrics kept": (_delete("checkpoint"), ["'checkpoint'", "missing"]),
    "epoch -2": (_set_attr("checkpoint@epoch", "e", -2), ["checkpoint/epoch", "-2"]),
    "epoch 99": (_set_attr("checkpoint@epoch", "e", 99), ["checkpoint/epoch", "99"]),
    "epoch 0 (metrics say 1)": (_set_attr("checkpoint@epoch", "e", 0), ["checkpoint/epoch"]),
    "epoch a float": (_set_attr("checkpoint@epoch", "e", 1.5), ["checkpoint/epoch", "integer"]),
    "epoch a string": (_set_attr("checkpoint@epoch", "e", "one"), ["checkpoint/epoch"]),
    "epoch missing": (lambda h: h["checkpoint"].attrs.__delitem__("epoch"), ["checkpoint/epoch"]),
    "step 99": (_set_attr("checkpoint@step", "s", 99), ["checkpoint/step", "99"]),
    "step -1": (_set_attr("checkpoint@step", "s", -1), ["checkpoint/step"]),
    # the arrays against the run's plan
    "param wrong shape": (
        _replace("checkpoint/params/W1", np.zeros((3, 3), "f4")),
        ["checkpoint/params/W1", "shape"],
    ),
    "param wrong dtype": (
        _replace("checkpoint/params/b2", np.zeros(16, "f8")),
        ["checkpoint/params/b2", "dtype"],
    ),
    "param NaN": (_nan_in("checkpoint/params/W3"), ["checkpoint/params/W3", "NaN"]),
    "param Inf": (
        _replace("checkpoint/params/b3", np.full(10, np.inf, "f4")),
        ["checkpoint/params/b3", "NaN or Inf"],
    ),
    "param missing": (_delete("checkpoint/params/W2"), ["checkpoint/params/W2", "missing"]),
    "param extra": (
        lambda h: h.create_dataset("checkpoint/params/W9", data=np.zeros(2, "f4")),
        ["checkpoint/params/W9", "not part"],
    ),
    "param as text": (
        _replace("checkpoint/params/b1", "thirty-two"),
        ["checkpoint/params/b1", "numeric"],
    ),
    "optimizer entry missing": (
        _delete("checkpoint/opt/velocity/b1"),
        ["checkpoint/opt/velocity/b1", "missing"],
    ),
    "optimizer group missing": (_delete("checkpoint/opt"), ["checkpoint/opt/", "missing"]),
    "optimizer wrong shape": (
        _replace("checkpoint/opt/velocity/W2", np.zeros((16, 32), "f4")),
        ["checkpoint/opt/velocity/W2", "shape"],
    ),
    "warm layer missing": (_delete("checkpoint/warm/2"), ["checkpoint/warm/2", "missing"]),
    "warm state missing": (_delete("checkpoint/warm"), ["checkpoint/warm/0", "missing"]),
    "warm batch sizes differ": (_batch_mismatch, ["checkpoint/warm", "batch size"]),
    "foreign group": (
        lambda h: h.create_dataset("checkpoint/hw/plus/W1/G", data=np.ones(3)),
        ["checkpoint/hw/plus/W1/G", "not part"],
    ),
    "hard-link loop": (
        lambda h: h["checkpoint/params"].__setitem__("loop", h["checkpoint"]),
        ["checkpoint/params/loop", "loop"],
    ),
    # counters and random generators
    "scalars not JSON": (
        _set_attr("checkpoint@scalars", "s", "{n: 3"),
        ["checkpoint/scalars", "JSON"],
    ),
    "scalars a list": (
        _set_attr("checkpoint@scalars", "s", "[1, 2]"),
        ["checkpoint/scalars", "object"],
    ),
    "running sum missing": (_scalars(lambda s: s.pop("m_cost")), ["checkpoint/scalars", "m_cost"]),
    "running sum Inf": (
        _scalars(lambda s: s.update(m_error=float("inf"))),
        ["checkpoint/scalars", "m_error"],
    ),
    "count negative": (_scalars(lambda s: s.update(steps=-4)), ["checkpoint/scalars", "steps"]),
    "count a string": (_scalars(lambda s: s.update(n="many")), ["checkpoint/scalars", "'n'"]),
    "rng state of no generator": (
        _set_attr("checkpoint@rng", "r", json.dumps({"data": {"bit_generator": "PCG64"}})),
        ["checkpoint/rng", "'data'"],
    ),
    "rng not JSON": (_set_attr("checkpoint@rng", "r", "???"), ["checkpoint/rng", "JSON"]),
    # metrics
    "metric too long": (
        _replace("metrics/train_error", np.zeros(2)),
        ["metrics/train_error", "entries"],
    ),
    "metric missing": (_delete("metrics/test_error"), ["metrics/test_error", "missing"]),
    "epochs miscounted": (_replace("metrics/epoch", np.array([7.0])), ["metrics/epoch"]),
    "metric 2-D": (_replace("metrics/seconds", np.zeros((1, 2))), ["metrics/seconds", "1-D"]),
    "metric as text": (_replace("metrics/energy", np.array([b"x"])), ["metrics/energy"]),
    "all metrics gone": (
        lambda h: [h["metrics"].__delitem__(k) for k in list(h["metrics"])],
        ["checkpoint/epoch", "0 finished"],
    ),
    # /meta
    "config_toml garbage": (
        _replace("meta/config_toml", "[[[ not toml"),
        ["meta/config_toml", "TOML"],
    ),
    "config_toml empty": (_replace("meta/config_toml", ""), ["configuration"]),
    "schema from the future": (
        _set_attr("meta@schema_version", "v", 99),
        ["meta/schema_version", "newer"],
    ),
    "schema a string": (_set_attr("meta@schema_version", "v", "one"), ["meta/schema_version"]),
    "complete a string": (_set_attr("meta@complete", "c", "yes"), ["meta/complete"]),
    "complete too early": (_set_attr("meta@complete", "c", True), ["meta/complete", "1 of 2"]),
    "threads a string": (_set_attr("meta@threads", "t", "lots"), ["meta/threads"]),
    "data fingerprint garbage": (_set_attr("meta@data_files", "d", "{"), ["meta/data_files"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_run_file_is_refused_and_left_untouched(case, stopped, tmp_path, capsys):
    damage, words = CASES[case]
    root, study, out = _copy(stopped, tmp_path)
    with h5py.File(out / "run.h5", "r+") as h:
        damage(h)
    before = snapshot(root)
    outcome = run_cli(_argv(study, out), capsys)
    assert_clean_refusal(outcome, ["run.h5", *words], before, snapshot(root), out, root)


# ---------------------------------------------------------------------- other files
def _secret(tmp_path: Path) -> tuple[Path, Path]:
    """A secret HDF5 file and a raw file elsewhere on the machine."""
    h5 = tmp_path / "secret.h5"
    with h5py.File(h5, "w") as f:
        f["data"] = np.arange(10, dtype="f4")
        f["params"] = np.zeros((784, 32), "f4")
    raw = tmp_path / "secret.raw"
    raw.write_bytes(np.zeros(16, "f4").tobytes())
    return h5, raw


def _external_link(secret, raw):
    def f(h):
        del h["checkpoint/params/W1"]
        h["checkpoint/params/W1"] = h5py.ExternalLink(str(secret), "/params")

    return f


def _external_meta(secret, raw):
    def f(h):
        h["meta/extra"] = h5py.ExternalLink(str(secret), "/data")

    return f


def _soft_link(secret, raw):
    def f(h):
        h["checkpoint/alias"] = h5py.SoftLink("/checkpoint/params")

    return f


def _external_storage(secret, raw):
    def f(h):
        del h["checkpoint/params/b2"]
        h.create_dataset("checkpoint/params/b2", (16,), "f4", external=[(str(raw), 0, 64)])

    return f


def _virtual(secret, raw):
    def f(h):
        layout = h5py.VirtualLayout(shape=(10,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(secret), "data", shape=(10,))
        del h["metrics/seconds"]
        h["metrics"].create_virtual_dataset("seconds", layout)

    return f


OUTSIDE = {
    "external link in the checkpoint": (_external_link, ["checkpoint/params/W1", "external link"]),
    "external link in /meta": (_external_meta, ["meta/extra", "external link"]),
    "soft link": (_soft_link, ["checkpoint/alias", "soft link"]),
    "external raw storage": (_external_storage, ["checkpoint/params/b2", "external raw"]),
    "virtual dataset": (_virtual, ["metrics/seconds", "virtual dataset"]),
}


@pytest.mark.parametrize("case", list(OUTSIDE))
def test_links_to_other_files_are_refused_not_followed(case, stopped, tmp_path, capsys):
    make, words = OUTSIDE[case]
    (tmp_path / "elsewhere").mkdir()
    secret, raw = _secret(tmp_path / "elsewhere")
    root, study, out = _copy(stopped, tmp_path)
    with h5py.File(out / "run.h5", "r+") as h:
        make(secret, raw)(h)
    before = snapshot(root)
    outcome = run_cli(_argv(study, out), capsys)
    assert_clean_refusal(outcome, ["run.h5", *words], before, snapshot(root), out, root)
    # the reports' reader refuses it too
    from analogebl.errors import ConfigError

    with pytest.raises(ConfigError, match="self-contained"):
        read_run(out / "run.h5", checkpoint=False)


# ---------------------------------------------------------------------- other data
def _idx_labels(labels: np.ndarray) -> bytes:
    return gzip.compress(struct.pack(">II", 2049, len(labels)) + labels.astype("u1").tobytes())


def test_resume_on_other_data_files_is_refused(stopped, data_dir, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(Path(data_dir) / "mnist", data / "mnist")
    labels_gz = data / "mnist" / "t10k-labels-idx1-ubyte.gz"
    labels = np.frombuffer(gzip.decompress(labels_gz.read_bytes())[8:], dtype="u1").copy()
    labels[:100] = (labels[:100] + 1) % 10  # other labels: still a valid file
    labels_gz.write_bytes(_idx_labels(labels))
    monkeypatch.setenv("ANALOGEBL_DATA", str(data))
    root, study, out = _copy(stopped, tmp_path)
    recorded = json.loads(read_run(out / "run.h5").meta["data_files"])
    assert "mnist/t10k-labels-idx1-ubyte.gz" in recorded and len(recorded) == 4
    before = snapshot(root)
    outcome = run_cli(_argv(study, out), capsys)
    words = ["run.h5", "meta/data_files", "mnist/t10k-labels-idx1-ubyte.gz", "differs"]
    assert_clean_refusal(outcome, words, before, snapshot(root), out, root)


def test_old_run_file_without_fingerprint_still_resumes(stopped, tmp_path, capsys):
    root, study, out = _copy(stopped, tmp_path)
    with h5py.File(out / "run.h5", "r+") as h:
        del h["meta"].attrs["data_files"]
        del h["meta"].attrs["schema_version"]  # older files had neither
    outcome = run_cli(_argv(study, out), capsys)
    assert outcome.rc == 0, outcome.err
    rec = read_run(out / "run.h5")
    assert rec.complete and rec.epochs_done == 2 and rec.meta["data_files"]


# ---------------------------------------------------------------------- divergence in metrics
def _study(tmp_path: Path, epochs: int = 2):
    from analogebl.study import load_study

    f = tmp_path / "s.toml"
    f.write_text(STUDY.replace("epochs = 2", f"epochs = {epochs}"))
    return load_study(str(f))


@pytest.mark.parametrize(
    "where, value",
    [("energy", -np.inf), ("energy", np.nan), ("cost", np.inf), ("sigma_W2", np.inf),
     ("sigma_W1", np.nan)],
)  # fmt: skip
def test_non_finite_recorded_metric_marks_the_run_diverged(where, value, data_dir, tmp_path,
                                                           monkeypatch):  # fmt: skip
    """A step's metric (energy, cost) or an epoch's diagnostic that is Inf, or NaN after
    being defined, in epoch 2: the run is diverged, its message names the metric and epoch;
    the file keeps epoch 1."""
    from analogebl.errors import DivergenceError
    from analogebl.pipeline import run_training

    real_step, real_diag = Network.train_step, Network.epoch_diagnostics
    calls = {"n": 0}

    def step(self, *a, **k):
        m = real_step(self, *a, **k)
        calls["n"] += 1
        if where in m and calls["n"] == 6:  # epoch 2
            m[where] = value
        return m

    def diag(self, *a, **k):
        d = real_diag(self, *a, **k)
        if where in d and calls["n"] > 4:
            d[where] = value
        return d

    monkeypatch.setattr(Network, "train_step", step)
    monkeypatch.setattr(Network, "epoch_diagnostics", diag)
    path = tmp_path / "run.h5"
    with pytest.raises(DivergenceError) as e:
        run_training(_study(tmp_path), progress=False, path=path, checkpoint_seconds=1e9)
    msg = str(e.value)
    assert f"metric {where} ({value})" in msg and "epoch 2" in msg, msg
    rec = read_run(path)
    assert rec.meta["status"] == "diverged" and rec.meta["message"] == msg
    assert rec.epochs_done == 1 and not rec.complete


def test_metric_undefined_from_the_first_step_is_not_divergence(data_dir, tmp_path, monkeypatch):
    """A network without an energy reports NaN at every step: recorded as NaN, complete."""
    from analogebl.pipeline import run_training

    real_step = Network.train_step

    def step(self, *a, **k):
        return {**real_step(self, *a, **k), "energy": float("nan")}

    monkeypatch.setattr(Network, "train_step", step)
    path = tmp_path / "run.h5"
    run_training(_study(tmp_path), progress=False, path=path, checkpoint_seconds=0)
    rec = read_run(path)
    assert rec.complete and np.isnan(rec.metrics["energy"]).all()
    assert np.isfinite(rec.metrics["train_cost"]).all()


# ---------------------------------------------------------------------- seconds per epoch
class _Clock:
    """A clock that moves only when a training step runs (1 s per step)."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


def test_epoch_seconds_count_each_step_once_with_checkpoints_and_resume(
    data_dir, tmp_path, monkeypatch
):
    """With a clock that advances 1 s per step, every epoch of 4 batches lasts 4 s: without
    checkpoints, with one after every step (it used to start epoch 2's clock early by epoch
    1's last checkpoint time) and across an interruption and resume."""
    import analogebl.training.trainer as trainer_mod
    from analogebl.pipeline import run_training

    clock = _Clock()
    monkeypatch.setattr(trainer_mod, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    real_step = Network.train_step

    def step(self, *a, **k):
        clock.now += 1.0
        return real_step(self, *a, **k)

    monkeypatch.setattr(Network, "train_step", step)
    study = _study(tmp_path, epochs=3)
    for name, every in (("none.h5", 1e9), ("every.h5", 0.0)):
        run_training(study, progress=False, path=tmp_path / name, checkpoint_seconds=every)
        assert list(read_run(tmp_path / name).metrics["seconds"]) == [4.0, 4.0, 4.0], name
    # stopped at the 7th step (epoch 2, batch 3; checkpoint after batch 2), then resumed
    restore = interrupt_at(monkeypatch, Network, 7)
    with pytest.raises(KeyboardInterrupt):
        run_training(study, progress=False, path=tmp_path / "resumed.h5", checkpoint_seconds=0)
    restore()
    res = run_training(study, progress=False, path=tmp_path / "resumed.h5", checkpoint_seconds=0)
    assert res.resumed_from == (1, 2)
    assert list(read_run(tmp_path / "resumed.h5").metrics["seconds"]) == [4.0, 4.0, 4.0]
