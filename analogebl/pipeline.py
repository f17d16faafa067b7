"""The whole flow of one run on one page: data -> network (plan incl. hardware) -> rule ->
optimizer -> updater -> ``trainer.fit(run file)``.

:func:`run_training` trains one run of a study and evaluates it on the test set after every
epoch. With a ``path`` it records to an HDF5 run file (:mod:`analogebl.recording`); started
again on the same file it continues from the checkpoint and ends bit-for-bit where an
uninterrupted run would (same backend and thread count, which the file records).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from analogebl.data import load_dataset, split_validation
from analogebl.errors import ConfigError
from analogebl.hardware import load_profile
from analogebl.plan import derive_rng
from analogebl.spec import RunSpec
from analogebl.threads import parse_threads, resolve_threads, set_threads
from analogebl.training import RunFile, Trainer, TrainingResult
from analogebl.training.build import (
    build_network,
    build_optimizer,
    build_schedule,
    build_updater,
    diagnostic_batch,
    fit_options,
)
from analogebl.training.runfile import run_meta

__all__ = ["run_training"]


def _thread_budget(asked, previous, share: int | None, log) -> int:
    """The run's thread count: an explicit ``threads``; else the count a resumed run started
    with (so it resumes bit-exactly); else ``share`` (an executor's part of the cores) or the
    free cores now. Applied to every thread pool of this process."""
    n = parse_threads(asked)
    recorded = int(previous.meta.get("threads", 0) or 0) if previous is not None else 0
    if n is None:
        n = min(recorded or share or resolve_threads("auto"), share or sys.maxsize)
    if recorded and n != recorded:
        log(
            f"warning: resuming on {n} threads; the run started on {recorded}, so its "
            "numbers may differ in the last bits from an uninterrupted run"
        )
    return set_threads(n)


def run_training(
    study,
    log: Callable[[str], None] | None = None,
    progress: bool | str | None = None,
    path: str | Path | None = None,
    checkpoint_seconds: float | None = None,
    max_threads: int | None = None,
) -> TrainingResult:
    """Train and evaluate one run as ``study`` says (a resolved
    :class:`analogebl.study.StudyConfig` without sweep axes, or one of its ``.runs()``; the
    study package calls this module, never the reverse); ``log`` receives one line per epoch.

    ``path``: the HDF5 run file to record to and resume from (``None``: no recording).
    ``checkpoint_seconds`` overrides the study's ``checkpoint_minutes`` (0: every step).
    ``max_threads``: this run's share of the cores when an executor runs several at once.
    """
    if study.sweep:
        raise ConfigError(
            f"study {study.name} sweeps {', '.join(k for k, _ in study.sweep)}; "
            "run it through analogebl.study.run_study or pick one of .runs()"
        )
    log = log or (lambda s: None)
    spec = RunSpec.from_flat(study.as_dict(), path=study.path, study=study.name,
                             tier=study.tier, run_id=study.run_id)  # fmt: skip
    run = RunFile(path, study.to_toml())
    threads = _thread_budget(spec.threads, run.previous, max_threads, log)
    # data
    d, seed = spec.data, spec.seed
    n_val = d.validation_subset or 0
    n_train = None if d.train_subset is None else d.train_subset + n_val
    ds = load_dataset(d.dataset, train_subset=n_train, test_subset=d.test_subset,
                      subset_seed=seed)  # fmt: skip
    val = None
    if n_val:
        ds, *val = split_validation(ds, n_val, derive_rng(seed, "data/validation"))
    # hardware profile (loaded once), network, rule, optimizer, updater, trainer
    profile = None if spec.hardware.profile is None else load_profile(spec.hardware.profile)
    net, rule = build_network(spec, ds, profile)  # the profile compiled into the plan
    opt = build_optimizer(spec, net)
    updater = build_updater(net, opt, seed)
    r = spec.relaxation
    trainer = Trainer(net, rule, updater, build_schedule(spec), r.free_iterations, r.schedule)
    # the run file: metadata, and where an earlier attempt stopped
    meta = run_meta(spec, ds, net, rule, threads, 0 if val is None else len(val[1]))
    run.begin(meta, "" if profile is None else profile.to_toml(), net.description_toml())
    result = TrainingResult(path=run.path)
    start = trainer.resume(run.previous, result, log)  # None: the run is complete
    if start is not None:
        opts = fit_options(spec, ds, checkpoint_seconds, progress)
        resumed = run.previous is not None
        trainer.fit(ds, opts, run, seed=seed, start=start, val=val, log=log, result=result,
                    diagnostic_x=diagnostic_batch(ds, spec), resumed=resumed)  # fmt: skip
    result.network = net  # type: ignore[attr-defined]
    return result
