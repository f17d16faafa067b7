"""Reading run files into :class:`~analogebl.recording.RunRecord` objects for reports, and
the canonical orderings.

A *run file* is any ``*.h5`` file under the report root that has a ``/meta`` group. Files
without ``/meta`` (datasets, caches, other tools' files) are skipped silently; a file that
cannot be opened as HDF5, or that has ``/meta`` but breaks the schema, raises
:class:`~analogebl.errors.ConfigError` naming it. Files are read with
:func:`analogebl.recording.read_run` (without the checkpoint arrays); rule names and labels
come from :data:`analogebl.learning.rules.RULE_LABELS`.
"""

from __future__ import annotations

from pathlib import Path

from analogebl.errors import ConfigError
from analogebl.learning.rules import RULES, rule_label
from analogebl.recording import NotARunFile, RunRecord, read_run

__all__ = [
    "DATASET_NAMES",
    "DATASET_ORDER",
    "REQUIRED_META",
    "REQUIRED_METRICS",
    "RULE_ORDER",
    "RunRecord",
    "dataset_name",
    "load_runs",
    "order_keys",
    "rule_name",
]

#: Rows of the tables: the rules in the paper's order (:data:`analogebl.learning.RULES`).
RULE_ORDER = RULES
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
    return rule_label(rule)


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


def _read(path: Path) -> RunRecord | None:
    """One run file with the attributes and metrics the reports use checked and typed, or
    ``None`` when it has no ``/meta`` group (not a run file)."""
    try:
        rec = read_run(path, checkpoint=False)
    except NotARunFile:
        return None
    meta, metrics = rec.meta, rec.metrics
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
    return rec


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
