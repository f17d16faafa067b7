"""⑧ Recording: one HDF5 file per run, rewritten atomically at every checkpoint.

Layout of ``RUN.h5``::

    /meta              attributes: study, run_id, tier, dataset, rule, beta (NaN if none),
                       profile, optimizer, seed, backend, dtype, device, version, git_sha,
                       epochs_planned, complete, status ("running" | "complete" | "diverged"),
                       message, train_size, test_size, schema_version
    /meta/config_toml  the resolved study run (TOML text)
    /meta/profile_toml the resolved hardware profile (TOML text; "" without one)
    /meta/circuit_toml the resolved circuit (layers and couplings after overrides)
    /metrics/NAME      float64, one entry per finished epoch (epoch, train_error, test_error,
                       train_cost, energy, residual, seconds, pulses, energy_J, ...)
    /checkpoint        parameters, optimizer state, warm-start state, RNG states, hardware
                       state, and the position in the data order (attributes epoch, step)

Why a full rewrite: the file is small (parameters plus a few hundred numbers), and writing
a complete new file to ``RUN.h5.tmp``, fsync-ing it and renaming it over ``RUN.h5`` means a
crash at any moment leaves either the old or the new file, never a torn one. (HDF5 itself
gives no such guarantee for in-place edits.)
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from analogebl.errors import ConfigError

__all__ = ["Checkpoint", "RunRecord", "atomic_write_text", "git_sha", "read_run", "write_run"]

SCHEMA_VERSION = 1


@dataclass
class Checkpoint:
    """Everything needed to continue a run exactly where it stopped.

    ``arrays`` maps slash-separated names (``params/W1``, ``optimizer/velocity/W1``,
    ``warm/2``, ``hardware/G_plus/W1``) to NumPy arrays; ``epoch`` is the 0-based epoch in
    progress and ``step`` the next batch in its data order; ``scalars`` holds running sums
    and counters (float64 / int, exact); ``rng`` maps names to NumPy bit-generator states.
    """

    epoch: int
    step: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    scalars: dict[str, float] = field(default_factory=dict)
    rng: dict[str, dict] = field(default_factory=dict)


@dataclass
class RunRecord:
    """The contents of a run file."""

    meta: dict[str, Any]
    config_toml: str
    profile_toml: str
    metrics: dict[str, np.ndarray]
    checkpoint: Checkpoint | None
    circuit_toml: str = ""

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete", False))

    @property
    def epochs_done(self) -> int:
        return len(self.metrics.get("epoch", ()))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def git_sha() -> str:
    """The source tree's git commit (``"unknown"`` outside a checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=5,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _str_attr(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool | int | float | str | np.integer | np.floating | np.bool_):
        return v
    return str(v)


def write_run(path: str | Path, record: RunRecord) -> None:
    """Write ``record`` to ``path`` atomically (temp file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with h5py.File(tmp, "w") as f:
            meta = f.create_group("meta")
            for k, v in record.meta.items():
                meta.attrs[k] = _str_attr(v)
            meta.attrs["schema_version"] = SCHEMA_VERSION
            meta.create_dataset("config_toml", data=record.config_toml)
            meta.create_dataset("profile_toml", data=record.profile_toml)
            meta.create_dataset("circuit_toml", data=record.circuit_toml)
            m = f.create_group("metrics")
            for k, v in record.metrics.items():
                m.create_dataset(k, data=np.asarray(v, dtype=np.float64))
            ck = record.checkpoint
            if ck is not None:
                g = f.create_group("checkpoint")
                g.attrs["epoch"] = ck.epoch
                g.attrs["step"] = ck.step
                g.attrs["scalars"] = json.dumps(ck.scalars)
                g.attrs["rng"] = json.dumps(ck.rng)
                for k, v in ck.arrays.items():
                    g.create_dataset(k, data=np.asarray(v))
            f.flush()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_arrays(group: h5py.Group, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k, v in group.items():
        if isinstance(v, h5py.Group):
            out.update(_read_arrays(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v[()]
    return out


def _text(ds) -> str:
    v = ds[()]
    return v.decode() if isinstance(v, bytes) else str(v)


def read_run(path: str | Path) -> RunRecord:
    """Read a run file; an unreadable or malformed file raises :class:`ConfigError` naming it."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if "meta" not in f or "metrics" not in f:
                raise ConfigError("not an analogebl run file (no /meta or /metrics)", path=path)
            meta = {
                k: (
                    v.decode()
                    if isinstance(v, bytes)
                    else v.item()
                    if isinstance(v, np.generic)
                    else v
                )
                for k, v in f["meta"].attrs.items()
            }
            config = _text(f["meta/config_toml"])
            profile = _text(f["meta/profile_toml"]) if "profile_toml" in f["meta"] else ""
            circuit = _text(f["meta/circuit_toml"]) if "circuit_toml" in f["meta"] else ""
            metrics = {k: np.asarray(v[()]) for k, v in f["metrics"].items()}
            ck = None
            if "checkpoint" in f:
                g = f["checkpoint"]
                ck = Checkpoint(
                    int(g.attrs["epoch"]),
                    int(g.attrs["step"]),
                    _read_arrays(g),
                    json.loads(g.attrs["scalars"]),
                    json.loads(g.attrs["rng"]),
                )
    except ConfigError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"cannot read run file: {exc}", path=path) from None
    return RunRecord(meta, config, profile, metrics, ck, circuit)
