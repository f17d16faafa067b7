"""⑨ Running a study: expand its sweep into runs and fan them out over an executor.

Each run trains into its own HDF5 file ``OUT/RUN_ID.h5`` (:func:`analogebl.pipeline.
run_training`), so runs are independent and resumable: running the study again on the same
``OUT`` skips complete runs and continues the others from their checkpoints. A lost worker
therefore costs only its unfinished run.

One study at a time per output folder: :func:`run_study` holds ``OUT/.analogebl.lock``
(:func:`lock_out`) from the moment it first writes until its last run has ended, so a second
process pointed at the same ``OUT`` is refused at once (exit status 2) and writes nothing.
Nothing in ``OUT`` changes before every check has passed (:func:`plan_runs`): each run's
configuration, its file name (a slug of the run's values, always directly inside ``OUT``)
and the configuration recorded in any run file already there.

Executors: ``local`` (in this process, one run after another), ``local:N`` (a pool of N
processes; the machine's cores are split between them) and ``dask://HOST:PORT`` (a Dask
distributed scheduler; every worker must see ``OUT`` and the datasets at the same paths).

Results are bit-for-bit reproducible for a given backend *and thread count*: BLAS may sum in
a different order with more threads. Each run records its thread count and a resume reuses
it (:mod:`analogebl.threads`). Workers x threads never exceeds the cores: ``local`` gives its
run the cores not busy with other work (``threads = "auto"``); a ``local:N`` pool splits them
between its N workers (fewer workers when an explicit ``threads`` would oversubscribe); Dask
tasks run on one thread each (as Dask's nanny sets its workers up) unless ``threads`` says
otherwise, so a Dask sweep equals a ``local:N`` sweep with the same threads per worker.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from analogebl.errors import ConfigError, DivergenceError
from analogebl.recording import atomic_write_text, git_sha, read_run
from analogebl.recording.atomic import temp_target
from analogebl.study.config import StudyConfig
from analogebl.study.outlock import LOCK_FILE, OWNER_FILE, lock_out
from analogebl.threads import available_cores, parse_threads, resolve_threads
from analogebl.training.runfile import config_diff

__all__ = ["RunSummary", "lock_out", "parse_executor", "plan_runs", "pool_plan", "run_study"]

STUDY_FILE = "study.toml"  # the study's resolved configuration, in OUT


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def pool_plan(
    asked: list[int | None], workers: int, free: int, cores: int | None = None
) -> tuple[int, int]:
    """``(workers, threads per worker)`` of a process pool: ``free`` cores are idle now,
    ``cores`` (default :func:`analogebl.threads.available_cores`) exist.

    ``asked`` holds each run's explicit thread count (``None``: auto). Explicit counts are
    honoured (results depend on them) by running fewer workers; auto runs split the free
    cores. Workers never outnumber the runs or the cores, and workers x threads <= cores
    (unless one explicit count alone exceeds them).
    """
    cores = available_cores() if cores is None else cores
    explicit = max((a for a in asked if a is not None), default=None)
    workers = max(1, min(workers, len(asked) or 1, cores))
    if explicit is not None:
        workers = max(1, min(workers, cores // explicit))
    return workers, max(1, min(free, cores) // workers)


@dataclass(frozen=True)
class RunSummary:
    """Outcome of one run of a study."""

    run_id: str
    path: str
    status: str  # "complete" | "diverged"
    epochs: int
    test_error: float
    train_error: float
    seconds: float
    message: str = ""


def parse_executor(spec: str) -> tuple[str, int | str | None]:
    """``local`` -> ("local", None); ``local:N`` -> ("pool", N); ``dask://H:P`` ->
    ("dask", "tcp://H:P")."""
    if spec == "local":
        return "local", None
    if spec.startswith("local:"):
        try:
            n = int(spec[6:])
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"local:N needs a worker count >= 1, got {spec!r}", key="--executor")
        return ("local", None) if n == 1 else ("pool", n)
    if spec.startswith("dask://"):
        addr = spec[len("dask://") :]
        if ":" not in addr:
            raise ConfigError(f"expected dask://HOST:PORT, got {spec!r}", key="--executor")
        return "dask", "tcp://" + addr
    raise ConfigError(
        f"unknown executor {spec!r}; use local, local:N or dask://HOST:PORT", key="--executor"
    )


def _check_run(r: StudyConfig, seen: dict) -> None:
    """Everything a run needs exists and fits together: its typed spec, dataset, circuit or
    model, learning rates, rule x optimizer, validation split, hardware profile."""
    from analogebl.backends import check_device
    from analogebl.circuit import load_circuit
    from analogebl.data import DATASETS, load_dataset
    from analogebl.learning import ContrastiveLearning, EquilibriumPropagation, layer_learning_rates
    from analogebl.memory import check_run_memory
    from analogebl.models.rules import VectorFieldEP
    from analogebl.spec import RunSpec
    from analogebl.training.build import build_network, build_rule

    spec = RunSpec.from_flat(r.as_dict(), path=r.path, study=r.name, tier=r.tier,
                             run_id=r.run_id)  # fmt: skip
    check_device(spec.backend, spec.device)  # before --out: CUDA on a machine without it
    d = spec.data
    if d.dataset not in DATASETS:
        raise ConfigError(
            f"unknown dataset {d.dataset!r}; choose from {', '.join(DATASETS)}", key="dataset"
        )
    rule = build_rule(spec)
    n_val = d.validation_subset or 0
    n_train = None if d.train_subset is None else d.train_subset + n_val  # as the pipeline
    key = (d.dataset, n_train, d.test_subset, spec.seed)
    if key not in seen:  # each distinct dataset subset is read once per study
        seen[key] = load_dataset(d.dataset, train_subset=n_train, test_subset=d.test_subset,
                                 subset_seed=spec.seed)  # fmt: skip
    ds = seen[key]
    sample = tuple(ds.train_x.shape[1:])
    if d.pad_to is not None:
        sample = (sample[0], d.pad_to, d.pad_to)
    profile = _load_profile(spec)
    circuit = None
    if spec.model is None:
        c = spec.circuit
        circuit = load_circuit(c.name, in_channels=ds.in_channels, num_classes=ds.num_classes,
                               width=c.width, gains=None if c.gains is None else list(c.gains),
                               pool=c.pool, depth=c.depth, input_shape=sample)  # fmt: skip
    # refused with the estimate before any array is drawn (a model draws in build_network)
    check_run_memory(spec, circuit, n_in=math.prod(sample), num_classes=ds.num_classes,
                     profile=profile, n_train=len(ds.train_y), n_eval=len(ds.test_y))  # fmt: skip
    if circuit is not None:
        names = list(circuit.parameter_shapes())
    else:
        net, _ = build_network(spec, ds)
        names = list(net.parameters())
    for key, rates in (("optimizer.lr", spec.optimizer.lr),
                       ("optimizer.adam_lr", spec.optimizer.adam_lr)):  # fmt: skip
        if isinstance(rates, tuple) and spec.model is not None:
            raise ConfigError("recurrent models take one learning rate, not a list", key=key)
        layer_learning_rates(names, list(rates) if isinstance(rates, tuple) else rates)
    if spec.optimizer.name == "natural_ep" and not isinstance(
        rule, EquilibriumPropagation | ContrastiveLearning | VectorFieldEP
    ):
        raise ConfigError(
            f"natural_ep builds its K-FAC factors from a contrastive rule's "
            f"two equilibria; rule {spec.rule.name} has none",
            key="optimizer.name",
        )
    if n_val and n_val >= len(ds.train_y):
        raise ConfigError(
            f"validation_subset {n_val} leaves no training image (the "
            f"training split holds {len(ds.train_y)})",
            key="validation_subset",
        )


def _load_profile(spec):
    """The run's hardware profile (``None`` without one); an unknown name or a missing file
    names the key ``profile``."""
    if spec.hardware.profile is None:
        return None
    from analogebl.hardware import load_profile

    try:
        return load_profile(spec.hardware.profile)
    except ConfigError as exc:
        if exc.key is not None:
            raise
        raise ConfigError(exc.message, path=exc.path, key="profile") from None


def _inside(out: Path, path: Path, study: StudyConfig, what: str) -> Path:
    """``path`` if it lies directly in the output folder ``out`` once links and ``..`` are
    resolved; a path that would land elsewhere (a planted link) is refused."""
    if path.resolve().parent != out.resolve():
        raise ConfigError(
            f"{what} {path} resolves to {path.resolve()}, outside the output folder "
            f"{out.resolve()}; remove it or choose another --out",
            path=study.path,
            key="--out",
        )
    return path


def _check_existing(planned: list[tuple[StudyConfig, Path]]) -> None:
    """Every run file already in the output folder holds this run's configuration (a
    resume), so nothing will be refused once writing has begun."""
    for r, path in planned:
        if not path.exists():
            continue
        if not path.is_file():
            raise ConfigError(
                "is not a run file (a folder or special file has the run's name); "
                "remove it or choose another --out",
                path=path,
            )
        old = read_run(path, checkpoint=False)
        try:
            diff = config_diff(old.config_toml, r.to_toml())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"the recorded configuration is not valid TOML ({exc})",
                path=path,
                key="meta/config_toml",
            ) from None
        if diff:
            raise ConfigError(
                f"holds a run with a different configuration ({', '.join(diff)} differ); "
                "choose another --out to start a new run",
                path=path,
            )


def plan_runs(study: StudyConfig, out: Path) -> list[tuple[StudyConfig, Path]]:
    """The study's runs and their files; checks up front (before anything is written) that
    every run's circuit, profile and dataset can be loaded, that every file lies in ``out``
    and that a run file already there holds the same configuration (a resume)."""
    out = Path(out)
    runs = study.runs()
    ids = [r.run_id for r in runs]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ConfigError(
            f"two runs of the sweep get the same identifier ({', '.join(twice)})",
            path=study.path,
            key="sweep",
        )
    seen: dict = {}
    for r in runs:
        try:
            _check_run(r, seen)
        except ConfigError as exc:
            if exc.path is not None:
                raise
            raise ConfigError(exc.message,
                              path=study.path, key=exc.key) from None  # fmt: skip
    for name, what in ((STUDY_FILE, "the study record"), (LOCK_FILE, "the lock file"),
                       (OWNER_FILE, "the lock owner file")):  # fmt: skip
        _inside(out, out / name, study, what)
    planned = [(r, _inside(out, out / f"{r.run_id}.h5", study, "the run file")) for r in runs]
    _check_existing(planned)
    return planned


def _prepare_out(out: Path, study: StudyConfig) -> None:
    """Clear temp files that interrupted writes of run files or the study record left
    (only under the folder's lock: a live process's temp files are never touched), then
    record the study."""
    for stale in out.iterdir():
        name = stale.name
        target = temp_target(stale)
        ours = target is not None and (target.endswith(".h5") or target == STUDY_FILE)
        legacy = name.endswith(".h5.tmp") and not name.startswith(".")  # RUN.h5.tmp (old)
        if (ours or legacy) and stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
    atomic_write_text(out / STUDY_FILE, study.to_toml())


def _execute(
    run: StudyConfig,
    path: str,
    checkpoint_seconds: float | None,
    threads: int | None,
    progress: bool | str | None,
    quiet: bool,
) -> RunSummary:
    """Train one run (in this process or a worker) on at most ``threads`` threads (``None``:
    the free cores); divergence becomes a status."""
    from analogebl.pipeline import run_training

    def log(line: str) -> None:
        if not quiet:
            print(f"[{run.run_id}] {line}", flush=True)

    try:
        res = run_training(
            run,
            log=log,
            progress=progress,
            path=path,
            checkpoint_seconds=checkpoint_seconds,
            max_threads=threads,
        )
    except DivergenceError as exc:
        log(f"diverged: {exc}")
        return RunSummary(
            run.run_id, path, "diverged", 0, float("nan"), float("nan"), 0.0, str(exc)
        )
    last = res.epochs[-1]
    return RunSummary(
        run.run_id,
        path,
        "complete",
        len(res.epochs),
        last.test_error,
        last.train_error,
        sum(e.seconds for e in res.epochs),
    )


def run_study(
    study: StudyConfig,
    out: str | Path,
    executor: str = "local",
    log: Callable[[str], None] | None = None,
    progress: bool | None = None,
    checkpoint_seconds: float | None = None,
    quiet: bool = False,
) -> list[RunSummary]:
    """Run (or resume) every run of ``study`` into ``out``; returns one summary per run.

    Every check (:func:`plan_runs`, the executor) passes before anything in ``out`` is
    written; the folder's lock (:func:`lock_out`) is held from then until the last run has
    ended, so a second process running into the same ``out`` is refused (exit status 2).
    """
    log = log or (lambda s: None)
    kind, arg = parse_executor(executor)
    out = Path(out)
    planned = plan_runs(study, out)  # nothing is written before every check has passed
    client = _dask_client(arg) if kind == "dask" else None  # reachable, before writing
    try:
        with lock_out(out):
            try:
                _check_existing(planned)  # again: another run may have written since
                _prepare_out(out, study)
                log(f"{len(planned)} run(s) -> {out} (executor {executor})")
                jobs = [(r, str(p)) for r, p in planned]
                git_sha()  # read once, before the workers fork: every run names the same code
                return _launch(study, jobs, kind, arg, client, checkpoint_seconds, progress,
                               quiet, log)  # fmt: skip
            finally:  # the cluster lets go of the study's tasks before the lock is released
                if client is not None:
                    client.close()
                    client = None
    finally:
        if client is not None:  # the lock was refused
            client.close()


def _dask_client(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError(
            "the dask executor needs 'distributed' (pip install 'analogebl[dask]')",
            key="--executor",
        ) from None
    try:
        return Client(address, timeout=10)
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address}: {exc}", key="--executor"
        ) from None


def _launch(
    study, jobs, kind, arg, client, checkpoint_seconds, progress, quiet, log
) -> list[RunSummary]:
    """Train ``jobs`` (run, file) on the executor; the caller holds the folder's lock (the
    workers write only their own run files)."""
    if kind == "local":
        return [_execute(r, p, checkpoint_seconds, None, progress, quiet) for r, p in jobs]
    # workers share one stderr: plain progress lines (prefixed with the run), never bars
    lines = False if progress is False else "lines"
    if kind == "pool":
        n, threads = pool_plan(
            [parse_threads(r["threads"]) for r, _ in jobs], int(arg), resolve_threads("auto")
        )
        if n < min(int(arg), len(jobs)):
            log(f"{n} worker(s) instead of {arg}: workers x threads stay within the cores")
        ctx = multiprocessing.get_context("spawn")
        # BLAS and OpenMP read their thread counts when a worker first imports them: the
        # workers inherit this environment (the parent's own pools are already set up)
        saved = {k: os.environ.get(k) for k in _THREAD_VARS}
        os.environ.update({k: str(threads) for k in _THREAD_VARS})
        try:
            with cf.ProcessPoolExecutor(n, mp_context=ctx) as pool:
                futs = [
                    pool.submit(_execute, r, p, checkpoint_seconds, threads, lines, quiet)
                    for r, p in jobs
                ]
                return [f.result() for f in futs]
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    futs = [
        client.submit(
            _execute,
            r,
            p,
            checkpoint_seconds,
            1,
            lines,
            quiet,
            pure=False,
            key=f"{study.name}-{r.run_id}-{os.getpid()}",
        )
        for r, p in jobs
    ]
    return client.gather(futs)
