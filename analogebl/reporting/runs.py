"""Reading run files (HDF5) into :class:`RunRecord` objects, and the canonical orderings.

A *run file* is any ``*.h5`` file under the report root that has a ``/meta`` group. Files
without ``/meta`` (datasets, caches, other tools' files) are skipped silently; a file that
cannot be opened as HDF5, or that has ``/meta`` but breaks the schema, raises
:class:`~analogebl.errors.ConfigError` naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from analogebl.errors import ConfigError

__all__ = [
    "DATASET_NAMES",
    "DATASET_ORDER",
    "REQUIRED_META",
    "REQUIRED_METRICS",
    "RULE_NAMES",
    "RULE_ORDER",
    "RunRecord",
    "dataset_name",
    "load_runs",
    "order_keys",
    "rule_name",
]

RULE_ORDER = ("cl", "p_ep", "n_ep", "c_ep", "p_cpl", "n_cpl", "c_cpl", "tbp", "rbp")
RULE_NAMES = {
    "cl": "CL",
    "p_ep": "P-EP",
    "n_ep": "N-EP",
    "c_ep": "C-EP",
    "p_cpl": "P-CpL",
    "n_cpl": "N-CpL",
    "c_cpl": "C-CpL",
    "tbp": "TBP",
    "rbp": "RBP",
}
DATASET_ORDER = ("mnist", "fmnist", "svhn", "cifar10", "cifar100")
DATASET_NAMES = {
    "mnist": "MNIST",
    "fmnist": "F-MNIST",
    "svhn": "SVHN",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
}
PROFILE_ORDER = ("none",)

#: ``/meta`` attributes the reports use; a run file lacking one is rejected.
REQUIRED_META = ("rule", "dataset", "profile", "seed", "beta", "complete")
#: ``/metrics`` datasets the reports use; a run file lacking one is rejected.
REQUIRED_METRICS = ("epoch", "train_error", "test_error")


def rule_name(rule: str) -> str:
    """Display name of a rule (``"p_cpl"`` -> ``"P-CpL"``; unknown rules unchanged)."""
    return RULE_NAMES.get(rule, rule)


def dataset_name(dataset: str) -> str:
    """Display name of a dataset (``"cifar10"`` -> ``"CIFAR-10"``; unknown ones unchanged)."""
    return DATASET_NAMES.get(dataset, dataset)


def order_keys(keys, canonical) -> list[str]:
    """``keys`` in ``canonical`` order, then the keys not in ``canonical`` sorted by name.

    Parameters
    ----------
    keys : iterable of str
        The keys present in the data.
    canonical : sequence of str
        The preferred order.

    Returns
    -------
    list of str
    """
    keys = set(keys)
    return [k for k in canonical if k in keys] + sorted(k for k in keys if k not in canonical)


@dataclass(frozen=True)
class RunRecord:
    """The contents of one run file that the reports need.

    Parameters
    ----------
    path : Path
        The run file.
    meta : dict
        The ``/meta`` attributes as plain Python values (``str``, ``int``, ``float``,
        ``bool``); ``beta`` is a float (NaN when the rule has none).
    metrics : dict of str to numpy.ndarray
        The ``/metrics`` datasets as read-only 1-D float64 arrays of equal length.
    config_toml : str
        The ``/meta/config_toml`` text (``""`` when absent).
    """

    path: Path
    meta: dict[str, Any]
    metrics: dict[str, np.ndarray]
    config_toml: str = field(default="", repr=False)

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
    def complete(self) -> bool:
        """Whether all planned epochs finished."""
        return bool(self.meta["complete"])

    @property
    def epochs_done(self) -> int:
        """Number of finished epochs (length of the metric arrays)."""
        return len(self.metrics["epoch"])

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


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, np.generic):
        return _plain(v.item())
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _read(path: Path) -> RunRecord | None:
    """One run file, or ``None`` when it has no ``/meta`` group (not a run file)."""
    try:
        with h5py.File(path, "r") as f:
            if "meta" not in f or not isinstance(f["meta"], h5py.Group):
                return None
            g = f["meta"]
            meta = {k: _plain(v) for k, v in g.attrs.items()}
            config = _plain(g["config_toml"][()]) if "config_toml" in g else ""
            if "metrics" not in f or not isinstance(f["metrics"], h5py.Group):
                raise ConfigError(
                    "run file has /meta but no /metrics group", path=path, key="metrics"
                )
            metrics = {}
            for k, ds in f["metrics"].items():
                if not isinstance(ds, h5py.Dataset) or ds.ndim != 1:
                    raise ConfigError("metrics must be 1-D datasets", path=path, key=f"metrics/{k}")
                a = np.asarray(ds[()], dtype=np.float64)
                a.setflags(write=False)
                metrics[k] = a
    except ConfigError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ConfigError(
            f"cannot read run file ({type(exc).__name__}: {exc})", path=path
        ) from None
    for k in REQUIRED_META:
        if k not in meta:
            raise ConfigError(
                "run file lacks a required /meta attribute", path=path, key=f"meta/{k}"
            )
    for k in REQUIRED_METRICS:
        if k not in metrics:
            raise ConfigError("run file lacks a required metric", path=path, key=f"metrics/{k}")
    lengths = {len(v) for v in metrics.values()}
    if len(lengths) > 1:
        raise ConfigError(
            f"metric arrays differ in length ({sorted(lengths)})", path=path, key="metrics"
        )
    try:
        meta["seed"] = int(meta["seed"])
        meta["beta"] = float(meta["beta"])
        meta["complete"] = bool(meta["complete"])
        for k in ("rule", "dataset", "profile"):
            meta[k] = str(meta[k])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad /meta attribute type ({exc})", path=path, key="meta") from None
    return RunRecord(path=path, meta=meta, metrics=metrics, config_toml=str(config))


def load_runs(root: str | Path) -> list[RunRecord]:
    """Read every run file under ``root`` (recursively), sorted by path.

    Parameters
    ----------
    root : str or Path
        Folder searched for ``*.h5`` files at any depth.

    Returns
    -------
    list of RunRecord
        One record per file with a ``/meta`` group; files without ``/meta`` are skipped.
        Incomplete runs are included (``RunRecord.complete`` is False). May be empty.

    Raises
    ------
    ConfigError
        ``root`` is not a folder, or a ``*.h5`` file is unreadable (corrupted, truncated)
        or has ``/meta`` but lacks a required attribute or metric (the error's ``path`` is
        that file).
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError("report root is not an existing folder", path=root)
    runs = []
    for f in sorted(p for p in root.rglob("*.h5") if p.is_file()):
        rec = _read(f)
        if rec is not None:
            runs.append(rec)
    return runs
