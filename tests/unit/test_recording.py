"""Run files: one atomic writer, one reader (full, or cheap without the checkpoint)."""

from __future__ import annotations

import math
import os

import h5py
import numpy as np
import pytest

from analogebl.errors import ConfigError
from analogebl.recording import (
    Checkpoint,
    NotARunFile,
    RunRecord,
    atomic_write_text,
    read_run,
    write_run,
)
from analogebl.recording.atomic import atomic_write_bytes, is_temp_file


def _record() -> RunRecord:
    meta = {"rule": "c_ep", "dataset": "mnist", "profile": "none", "seed": 3, "beta": 0.25}
    meta.update(complete=False, device=None)
    ck = Checkpoint(1, 7, {"params/W1": np.arange(6.0).reshape(2, 3)}, {"n": 2.0}, {"a": {}})
    metrics = {"epoch": [1.0], "train_error": [0.5], "test_error": [0.25]}
    return RunRecord(meta, 'rule = "c_ep"\n', "", metrics, ck, "# model x\n")


def test_write_then_read_everything_or_without_the_checkpoint(tmp_path):
    path = tmp_path / "r.h5"
    write_run(path, _record())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]
    full = read_run(path)
    assert full.path == path and full.checkpoint.step == 7
    assert full.checkpoint.arrays["params/W1"].shape == (2, 3)
    assert full.meta["device"] == "" and full.meta["seed"] == 3 and full.meta["schema_version"]
    assert (full.rule, full.dataset, full.profile, full.seed, full.beta) == (
        "c_ep",
        "mnist",
        "none",
        3,
        0.25,
    )
    assert (full.final_test_error, full.final_train_error, full.epochs_done) == (0.25, 0.5, 1)
    assert not full.complete and full.circuit_toml == "# model x\n"
    cheap = read_run(path, checkpoint=False)
    assert cheap.checkpoint is None and cheap.meta == full.meta
    assert cheap.config_toml == full.config_toml == 'rule = "c_ep"\n'
    with pytest.raises(ValueError):
        cheap.metrics["epoch"][0] = 2.0  # read-only
    full.meta["complete"] = True
    write_run(path, full)  # a record read back writes back
    assert read_run(path).complete


def test_reader_errors_name_the_file(tmp_path):
    with h5py.File(tmp_path / "cache.h5", "w") as f:
        f.create_dataset("x", data=np.zeros(2))
    with pytest.raises(NotARunFile) as exc:
        read_run(tmp_path / "cache.h5")
    assert isinstance(exc.value, ConfigError) and exc.value.path == str(tmp_path / "cache.h5")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ConfigError, match="bad.h5"):
        read_run(tmp_path / "bad.h5")
    with h5py.File(tmp_path / "nometrics.h5", "w") as f:
        f.create_group("meta")
    with pytest.raises(ConfigError, match="metrics"):
        read_run(tmp_path / "nometrics.h5")
    assert math.isnan(RunRecord({}, "", "", {"test_error": np.zeros(0)}, None).final_test_error)


def test_atomic_writes_replace_whole_files_or_nothing(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "a.txt"
    assert atomic_write_text(target, "é\n") == target  # creates the folder
    assert target.read_bytes() == "é\n".encode()
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("analogebl.recording.atomic.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "lost")
    with pytest.raises(OSError, match="disk full"):
        write_run(tmp_path / "sub" / "r.h5", _record())
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]
    assert target.read_bytes() == b"new"
    monkeypatch.undo()
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert is_temp_file(tmp_path / ".a.txt.0123abcd.tmp") and not is_temp_file(target)


def test_git_sha_is_read_once_per_process_and_marks_a_dirty_tree(monkeypatch):
    """The code a process runs is what it imported: later commits do not relabel its runs;
    uncommitted changes to tracked files show as ``-dirty``."""
    import subprocess

    from analogebl import recording

    calls = []

    def fake_run(args, **kw):
        calls.append(args[1])
        out = {"rev-parse": "ab" * 20, "status": " M analogebl/x.py"}[args[1]]
        return subprocess.CompletedProcess(args, 0, stdout=out + "\n", stderr="")

    recording.git_sha.cache_clear()
    monkeypatch.setattr(recording.subprocess, "run", fake_run)
    try:
        assert recording.git_sha() == "ab" * 20 + "-dirty"
        assert recording.git_sha() == "ab" * 20 + "-dirty" and calls == ["rev-parse", "status"]
    finally:
        recording.git_sha.cache_clear()
