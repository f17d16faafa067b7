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
a complete new file to a temp file next to it (``.RUN.h5.XXXXXXXX.tmp``), fsync-ing it and
renaming it over ``RUN.h5`` means a crash at any moment leaves either the old or the new
file, never a torn one (HDF5 itself gives no such guarantee for in-place edits). The one
atomic writer is :mod:`analogebl.recording.atomic`.

:func:`read_run` is the one reader of run files: everything for a resume, or with
``checkpoint=False`` only ``/meta`` and ``/metrics`` (the cheap read for reports over many
files). An HDF5 file without ``/meta`` raises :class:`NotARunFile`.

A run file is read only if it is self-contained: before anything else is read,
:func:`read_run` walks every link of the file and refuses external links, soft links,
datasets with external raw storage and virtual datasets (each could make a read open another
file on the machine); it also refuses a ``schema_version`` newer than :data:`SCHEMA_VERSION`
(a file without one is an older file of version 1) and checkpoint attributes of the wrong
kind. Whether the checkpoint fits the run being resumed is checked by
:mod:`analogebl.training.checkpoints`.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from analogebl.errors import ConfigError
from analogebl.recording.atomic import atomic_path, atomic_write_text

__all__ = [
    "Checkpoint",
    "NotARunFile",
    "RunRecord",
    "atomic_write_text",
    "git_sha",
    "read_run",
    "write_run",
]

#: The run-file format this version writes and reads (``/meta`` attribute ``schema_version``;
#: files written before the attribute existed are version 1).
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
    """The contents of a run file.

    ``meta`` holds the ``/meta`` attributes as plain Python values (``str``, ``int``,
    ``float``, ``bool``; ``beta`` is NaN when the rule has none); ``metrics`` maps names to
    1-D float64 arrays, one entry per finished epoch (read-only when read from a file);
    ``checkpoint`` is ``None`` for a finished run and after ``read_run(...,
    checkpoint=False)``; ``path`` is the file it was read from (``None`` when built in
    memory).
    """

    meta: dict[str, Any]
    config_toml: str = field(repr=False)
    profile_toml: str = field(repr=False)
    metrics: dict[str, np.ndarray] = field(repr=False)
    checkpoint: Checkpoint | None = field(repr=False)
    circuit_toml: str = field(default="", repr=False)
    path: Path | None = None

    @property
    def complete(self) -> bool:
        """Whether all planned epochs finished."""
        return bool(self.meta.get("complete", False))

    @property
    def epochs_done(self) -> int:
        """Number of finished epochs (length of the metric arrays)."""
        return len(self.metrics.get("epoch", ()))

    @property
    def rule(self) -> str:
        """Rule key (``meta["rule"]``)."""
        return str(self.meta["rule"])

    @property
    def dataset(self) -> str:
        """Dataset key (``meta["dataset"]``)."""
        return str(self.meta["dataset"])

    @property
    def profile(self) -> str:
        """Hardware profile name (``"none"`` without one)."""
        return str(self.meta["profile"])

    @property
    def seed(self) -> int:
        """The run's seed."""
        return int(self.meta["seed"])

    @property
    def beta(self) -> float:
        """Nudging strength β (NaN when the rule has none)."""
        return float(self.meta["beta"])

    @property
    def final_test_error(self) -> float:
        """Test error (fraction) after the last finished epoch; NaN if none finished."""
        v = self.metrics["test_error"]
        return float(v[-1]) if len(v) else math.nan

    @property
    def final_train_error(self) -> float:
        """Train error (fraction) after the last finished epoch; NaN if none finished."""
        v = self.metrics["train_error"]
        return float(v[-1]) if len(v) else math.nan


class NotARunFile(ConfigError):
    """An HDF5 file without a ``/meta`` group: some other file (a dataset, a cache)."""


@functools.cache
def git_sha() -> str:
    """The source tree's git commit, ``-dirty`` appended when tracked files differ from it
    (``"unknown"`` outside a checkout). Read once per process: the code a process runs is
    the code it imported, so a commit made while a study runs does not relabel its later
    runs."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=here,
                             timeout=5, check=False)  # fmt: skip
        return out.stdout.strip() if out.returncode == 0 else ""

    try:
        sha = git("rev-parse", "HEAD")
        if not sha:
            return "unknown"
        return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _str_attr(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool | int | float | str | np.integer | np.floating | np.bool_):
        return v
    return str(v)


def write_run(path: str | Path, record: RunRecord) -> None:
    """Write ``record`` to ``path`` atomically (temp file, fsync, rename; see
    :func:`~analogebl.recording.atomic.atomic_path`). ``record.path`` is not used."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
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
                a = np.asarray(v)
                # device state (a constant drift, write noise 0) and float32 weights shrink
                # under gzip; level 1 costs ~10 ms per MB, lossless, so resume stays exact
                packed = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
                g.create_dataset(k, data=a, **(packed if a.size >= 4096 else {}))


def _read_arrays(
    group: h5py.Group, path: Path, prefix: str = "", seen: set | None = None
) -> dict[str, np.ndarray]:
    """Every dataset under ``group`` by its slash-separated name; an object reached twice
    (a hard-link loop or alias, which a run file never holds) is refused."""
    seen = set() if seen is None else seen
    out: dict[str, np.ndarray] = {}
    for k, v in group.items():
        name = f"{prefix}{k}"
        if v.id in seen:
            raise ConfigError(
                "links to an entry already read (a loop or an alias)",
                path=path,
                key=f"checkpoint/{name}",
            )
        seen.add(v.id)
        if isinstance(v, h5py.Group):
            out.update(_read_arrays(v, path, f"{name}/", seen))
        elif isinstance(v, h5py.Dataset) and v.dtype.kind in "biuf":
            out[name] = v[()]
        else:
            raise ConfigError(
                "is not a numeric array (a checkpoint holds only numbers)",
                path=path,
                key=f"checkpoint/{name}",
            )
    return out


def _refuse_outside_links(f: h5py.File, path: Path) -> None:
    """Refuse any way a read of ``f`` could open another file: external links, soft links
    (a run file never holds one), external raw storage and virtual datasets. Only link
    targets are inspected (:meth:`h5py.Group.get` with ``getlink=True``); nothing is followed
    or read."""

    def refuse(name: str, what: str) -> None:
        raise ConfigError(
            f"holds {what}; a run file must be self-contained (it is not read)",
            path=path,
            key=name,
        )

    def links(gname: str, g: h5py.Group) -> None:
        for name in g:
            link = g.get(name, getlink=True)
            full = f"{gname}/{name}" if gname else name
            if isinstance(link, h5py.ExternalLink):
                refuse(full, f"an external link (to {link.filename}:{link.path})")
            if isinstance(link, h5py.SoftLink):
                refuse(full, f"a soft link (to {link.path})")

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Group):
            links(name, obj)
        elif isinstance(obj, h5py.Dataset):
            if obj.is_virtual:
                refuse(name, "a virtual dataset (its data lives in other files)")
            if obj.external:
                refuse(name, "a dataset with external raw storage (its data lives in other files)")

    links("", f)
    f.visititems(visit)  # hard links only: soft and external links were refused above


def _int_attr(attrs, name: str, path: Path) -> int:
    """The integer attribute ``name`` (an integer scalar, not a bool or a float)."""
    v = attrs.get(name)
    if v is None:
        raise ConfigError("is missing", path=path, key=f"checkpoint/{name}")
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    if isinstance(v, bool | np.bool_) or not isinstance(v, int | np.integer):
        raise ConfigError(f"must be an integer, got {v!r}", path=path, key=f"checkpoint/{name}")
    return int(v)


def _json_attr(attrs, name: str, path: Path, check) -> dict:
    """The JSON object in the text attribute ``name``, each value passing ``check``."""
    key = f"checkpoint/{name}"
    raw = _plain(attrs.get(name, "{}"))
    try:
        v = json.loads(raw) if isinstance(raw, str) else None
    except ValueError as exc:
        raise ConfigError(f"is not valid JSON ({exc})", path=path, key=key) from None
    if not isinstance(v, dict):
        raise ConfigError("must be a JSON object", path=path, key=key)
    for k, x in v.items():
        if not check(x):
            raise ConfigError(f"has a bad value for '{k}': {x!r}", path=path, key=key)
    return v


def _number(x) -> bool:
    """A JSON number (NaN allowed: a metric undefined for the network sums to NaN)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and not math.isinf(x)


def _schema_version(meta: dict, path: Path) -> int:
    v = meta.get("schema_version", 1)  # files older than the attribute are version 1
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(
            f"must be a positive integer, got {v!r}", path=path, key="meta/schema_version"
        )
    if v > SCHEMA_VERSION:
        raise ConfigError(
            f"is {v}: the file was written by a newer analogebl (this one reads up to "
            f"{SCHEMA_VERSION}); upgrade analogebl to read it",
            path=path,
            key="meta/schema_version",
        )
    return v


def _plain(v: Any) -> Any:
    """An HDF5 attribute value as a plain Python value."""
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, np.generic):
        return _plain(v.item())
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _text(group: h5py.Group, name: str) -> str:
    """The text dataset ``name`` of ``group`` (``""`` when absent)."""
    return str(_plain(group[name][()])) if name in group else ""


def read_run(path: str | Path, *, checkpoint: bool = True) -> RunRecord:
    """Read a run file.

    Parameters
    ----------
    path : str or Path
        The run file.
    checkpoint : bool
        Also read the ``/checkpoint`` group (every parameter and optimizer array: what a
        resume needs). ``False`` reads only ``/meta`` and ``/metrics``, the cheap read for
        reports over many files; ``RunRecord.checkpoint`` is then ``None``.

    Returns
    -------
    RunRecord
        ``meta`` as plain Python values, the TOML texts (``""`` when absent), ``metrics``
        as read-only 1-D float64 arrays, and ``path``.

    Raises
    ------
    NotARunFile
        An HDF5 file without a ``/meta`` group (a :class:`ConfigError`).
    ConfigError
        The file cannot be read (not HDF5, truncated, corrupted); it links to or stores data
        in other files; its ``schema_version`` is newer than this version reads; it has
        ``/meta`` but no ``/metrics`` group, a metric that is not a 1-D numeric dataset, or
        a checkpoint entry of the wrong kind. The error names the file and the entry.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            _refuse_outside_links(f, path)
            if not isinstance(f.get("meta"), h5py.Group):
                raise NotARunFile("not an analogebl run file (no /meta group)", path=path)
            g = f["meta"]
            meta = {k: _plain(v) for k, v in g.attrs.items()}
            _schema_version(meta, path)
            config, profile, circuit = (
                _text(g, n) for n in ("config_toml", "profile_toml", "circuit_toml")
            )
            if not isinstance(f.get("metrics"), h5py.Group):
                raise ConfigError(
                    "run file has /meta but no /metrics group", path=path, key="metrics"
                )
            metrics = {}
            for k, ds in f["metrics"].items():
                if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.kind not in "biuf":
                    raise ConfigError(
                        "metrics must be 1-D numeric datasets", path=path, key=f"metrics/{k}"
                    )
                a = np.asarray(ds[()], dtype=np.float64)
                a.setflags(write=False)
                metrics[k] = a
            ck = None
            if checkpoint and "checkpoint" in f:
                c = f["checkpoint"]
                if not isinstance(c, h5py.Group):
                    raise ConfigError("must be a group", path=path, key="checkpoint")
                ck = Checkpoint(
                    _int_attr(c.attrs, "epoch", path),
                    _int_attr(c.attrs, "step", path),
                    _read_arrays(c, path, seen={c.id}),
                    _json_attr(c.attrs, "scalars", path, _number),
                    _json_attr(c.attrs, "rng", path, lambda x: isinstance(x, dict)),
                )
    except ConfigError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ConfigError(
            f"cannot read run file ({type(exc).__name__}: {exc})", path=path
        ) from None
    return RunRecord(meta, config, profile, metrics, ck, circuit, path)
