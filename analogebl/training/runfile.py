"""A run's HDF5 file as the trainer sees it: what an earlier attempt left, and the writer.

Every write replaces the whole file atomically (:func:`analogebl.recording.write_run`), so a
crash leaves the last good file; without a path nothing is written. What an earlier attempt
left is checked before it is used (the recorded configuration and ``/meta`` here, the
record against the run's plan in :meth:`RunFile.begin`, the checkpoint against the trainer
in :meth:`analogebl.training.Trainer.resume`); a refusal leaves the file as it is.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np

from analogebl.data import num_batches
from analogebl.errors import ConfigError
from analogebl.recording import Checkpoint, RunRecord, git_sha, read_run, write_run
from analogebl.training.checkpoints import check_record
from analogebl.training.support import flatten

__all__ = ["RESUME_FREE_KEYS", "RunFile", "config_diff", "run_meta"]

# keys that may change between a run and its resume (threads: the budget recorded in /meta
# is reused when the study says "auto"; see analogebl.threads; probes only add metrics and
# leave the trajectory unchanged, so an older run resumes with them)
RESUME_FREE_KEYS = ("checkpoint_minutes", "description", "default_tier", "threads", "probes")


def config_diff(old_toml: str, new_toml: str) -> list[str]:
    """Dotted keys whose values differ between two run configurations (TOML texts).

    A key one side lacks counts as its default (:func:`analogebl.spec.section_defaults`):
    a key added by a later version, with the earlier behaviour as its default, does not
    make an older run file a different run.
    """
    from analogebl.spec import section_defaults

    defaults = section_defaults()
    a = flatten(tomllib.loads(old_toml), ".")
    b = flatten(tomllib.loads(new_toml), ".")
    return sorted(
        k
        for k in set(a) | set(b)
        if k not in RESUME_FREE_KEYS and a.get(k, defaults.get(k)) != b.get(k, defaults.get(k))
    )


def run_meta(spec, ds, net, rule, threads: int, validation_size: int) -> dict:
    """The ``/meta`` attributes of a run (what reports group and label by) from its
    :class:`~analogebl.spec.RunSpec`."""
    import analogebl
    from analogebl.network import Network

    opt = spec.optimizer
    return {
        "study": spec.study,
        "run_id": spec.run_id,
        "tier": spec.tier,
        "dataset": ds.name,
        "rule": rule.name,
        "beta": float("nan") if spec.rule.beta is None else float(spec.rule.beta),
        "profile": spec.hardware.profile or "none",
        "optimizer": opt.name,
        "seed": spec.seed,
        "variant": spec.variant or "",
        "lr": float(np.ravel(opt.lr)[0]) * opt.lr_scale,
        **net.describe(),
        "version": analogebl.__version__,
        "git_sha": git_sha(),
        "epochs_planned": spec.epochs,
        "batch_size": spec.data.batch_size,
        "threads": threads,
        "complete": False,
        "status": "running",
        "message": "",
        "train_size": len(ds.train_y),
        "test_size": len(ds.test_y),
        "validation_size": validation_size,
        "hidden_layers": net.plan.num_layers - 2 if isinstance(net, Network) else 1,
        # the data files read ({name: [size, md5]}): a resume on other data is refused
        "data_files": json.dumps(ds.fingerprint(), sort_keys=True) if ds.files else "",
    }


# /meta attributes a resume reads, and what they must be
_META_KINDS = {
    "complete": (bool, "true or false"),
    "threads": (int, "an integer >= 0"),
    "status": (str, "a string"),
    "data_files": (str, "a JSON text"),
}


def _check_meta(record) -> None:
    """The recorded configuration parses and the ``/meta`` attributes a resume reads have
    their kinds."""
    if not record.config_toml.strip():
        raise ConfigError(
            "is missing or empty: the run's configuration is unknown, so it cannot be resumed",
            path=record.path,
            key="meta/config_toml",
        )
    try:
        tomllib.loads(record.config_toml)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"is not valid TOML ({exc}); the file is left as it is", path=record.path,
            key="meta/config_toml",
        ) from None  # fmt: skip
    if "complete" not in record.meta:
        raise ConfigError("is missing", path=record.path, key="meta/complete")
    for k, (kind, words) in _META_KINDS.items():
        v = record.meta.get(k)
        if v is None:
            continue
        ok = isinstance(v, kind) and (kind is bool or not isinstance(v, bool))
        if not ok or (kind is int and v < 0):
            raise ConfigError(f"must be {words}, got {v!r}", path=record.path, key=f"meta/{k}")


class RunFile:
    """The run file at ``path`` (``None``: record nothing) for the configuration
    ``config_toml``. ``previous`` is what an earlier attempt wrote (``None`` if nothing);
    a different configuration there is refused."""

    def __init__(self, path: str | Path | None, config_toml: str):
        self.path = None if path is None else Path(path)
        self.config_toml = config_toml
        exists = self.path is not None and self.path.exists()
        self.previous = read_run(self.path) if exists else None
        if self.previous is not None:
            _check_meta(self.previous)
            diff = config_diff(self.previous.config_toml, config_toml)
            if diff:
                raise ConfigError(
                    f"holds a run with a different configuration ({', '.join(diff)} "
                    "differ); choose another --out to start a new run",
                    path=self.path,
                )
        self.meta: dict = {}
        self.metrics: dict[str, list[float]] = {}
        self.profile_toml = self.circuit_toml = ""

    def begin(self, meta: dict, profile_toml: str, circuit_toml: str) -> None:
        """Set the run's metadata (:func:`run_meta`); a resumed run keeps the metrics recorded
        so far, once the record fits the run's plan (epochs, batches per epoch, the data
        files read now: :func:`~analogebl.training.checkpoints.check_record`)."""
        if self.previous is not None:
            check_record(
                self.previous,
                epochs=int(meta["epochs_planned"]),
                batches=num_batches(int(meta["train_size"]), int(meta["batch_size"])),
                data_files=meta.get("data_files") or None,
            )
        self.meta, self.profile_toml, self.circuit_toml = meta, profile_toml, circuit_toml
        if self.previous is not None:
            self.metrics = {k: [float(x) for x in v] for k, v in self.previous.metrics.items()}

    def write(self, checkpoint: Checkpoint | None) -> None:
        if self.path is None:
            return
        metrics = {k: np.asarray(v) for k, v in self.metrics.items()}
        write_run(
            self.path,
            RunRecord(self.meta, self.config_toml, self.profile_toml, metrics, checkpoint,
                      self.circuit_toml),
        )  # fmt: skip

    def mark_diverged(self, message: str) -> None:
        """Flag the last good file as diverged (its checkpoint stays)."""
        if self.path is not None and self.path.exists():
            last = read_run(self.path)
            last.meta.update(status="diverged", message=message)
            write_run(self.path, last)
