"""The whole flow on one page: dataset -> circuit -> plan -> backend -> rule -> update -> record.

:func:`run_training` trains one run of a study and evaluates it on the test set after every
epoch (zero-initialised relaxation, argmax of the output, the reference's protocol). With a
``path`` it records to an HDF5 run file (:mod:`analogebl.recording`): metrics per epoch and a
checkpoint at every epoch end and every ``checkpoint_minutes``; started again on the same
file it continues from the checkpoint and ends bit-for-bit where an uninterrupted run would
(same backend): parameters, optimizer state, the warm-start state, running sums and the
position in the epoch's data order are all restored, and every random stream is derived
from (seed, name) or restored from its recorded state.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import analogebl
from analogebl.data import (
    DEFAULT_AUGMENTATION,
    iterate_batches,
    load_dataset,
    num_batches,
    split_validation,
)
from analogebl.errors import ConfigError, DivergenceError
from analogebl.hardware import load_profile
from analogebl.learning import (
    ConstantSchedule,
    CosineSchedule,
    layer_learning_rates,
    make_optimizer,
    make_rule,
)
from analogebl.network import Network
from analogebl.plan import derive_rng
from analogebl.recording import Checkpoint, RunRecord, git_sha, read_run, write_run
from analogebl.study.config import StudyConfig
from analogebl.threads import parse_threads, resolve_threads, set_threads
from analogebl.threads import settle as settle_threads
from analogebl.update.session import HardwareSession

__all__ = ["EpochResult", "TrainingResult", "evaluate", "run_training"]

# keys that may change between a run and its resumption without changing its results
# keys that may change between a run and its resume (threads: the budget recorded in /meta
# is reused when the study says "auto"; see _thread_budget)
_RESUME_FREE_KEYS = ("checkpoint_minutes", "description", "default_tier", "threads")


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_error: float
    train_cost: float
    test_error: float
    seconds: float


@dataclass
class TrainingResult:
    epochs: list[EpochResult] = field(default_factory=list)
    seconds: float = 0.0
    path: Path | None = None
    resumed_from: tuple[int, int] | None = None  # (epoch, step) of the checkpoint used

    @property
    def test_error(self) -> float:
        return self.epochs[-1].test_error if self.epochs else math.nan


def evaluate(
    net: Network,
    x_uint8: np.ndarray,
    y: np.ndarray,
    *,
    mean,
    std,
    pad_to: int | None,
    iterations: int,
    batch_size: int,
    dtype,
) -> float:
    """Test error: relax every batch from zero for ``iterations`` and take the argmax."""
    wrong = 0
    for xb, yb in iterate_batches(
        x_uint8,
        y,
        batch_size,
        rng=None,
        mean=mean,
        std=std,
        pad_to=pad_to,
        augmentation=None,
        dtype=dtype,
    ):
        wrong += int(np.sum(net.predict(xb, iterations) != yb))
    return wrong / len(y)


def build_rule(cfg: dict):
    """The run's rule: a circuit rule (``analogebl.learning.rules``) or, with ``model.name``,
    a recurrent-model rule (``analogebl.learning.model_rules``)."""
    name = cfg["rule.name"]
    if cfg["model.name"] is not None:
        from analogebl.models.rules import make_model_rule

        return make_model_rule(
            name,
            cfg["rule.beta"],
            cfg["rule.iterations"],
            points=cfg["rule.points"],
            homeostasis=cfg["rule.homeostasis"],
            temperature=cfg["rule.temperature"],
        )
    if name in ("h_ep", "fn_ep", "vf_ep", "d_ep", "bptt"):  # the recurrent models' rules
        why = {
            "h_ep": "needs a holomorphic energy (analytic activations); circuit "
            f"{cfg['circuit.name']} clamps its layers with hard-sigmoid diodes",
            "fn_ep": "is built on the recurrent models' smooth Gibbs ensembles",
            "vf_ep": "is for fixed-point models without an energy",
            "d_ep": "is for directed (non-symmetric) couplings",
            "bptt": "is the recurrent models' baseline (circuits: tbp)",
        }[name]
        raise ConfigError(
            f"rule {name} {why}; set model.name (looped_mlp, toroidal_mlp, "
            "modern_eqprop) to use it",
            key="rule.name",
        )
    return make_rule(name, cfg["rule.beta"], cfg["rule.iterations"])


def build_network(cfg: dict, ds, seed: int):
    """The trainable thing of a run and its rule: a crossbar :class:`Network` built from
    ``circuit.*``, or a :class:`~analogebl.models.ModelNetwork` from ``model.*``."""
    rule = build_rule(cfg)
    if cfg["model.name"] is None:
        net = Network.from_catalog(
            cfg["circuit.name"],
            in_channels=ds.in_channels,
            num_classes=ds.num_classes,
            width=cfg["circuit.width"],
            gains=cfg["circuit.gains"],
            pool=cfg["circuit.pool"],
            backend=cfg["backend"],
            dtype=cfg["dtype"],
            device=cfg["device"],
            seed=seed,
            depth=cfg["circuit.depth"],
        )
        return net, rule
    from analogebl.models import ModelNetwork, ModelSpec
    from analogebl.models.rules import check_rule_applies

    if cfg["profile"] != "none":
        raise ConfigError(
            "hardware profiles apply to crossbar circuits, not to recurrent models", key="profile"
        )
    spec = ModelSpec(
        cfg["model.name"],
        int(np.prod(ds.train_x.shape[1:])),
        cfg["model.hidden"],
        ds.num_classes,
        alpha=cfg["model.alpha"],
        symmetric=cfg["model.symmetric"],
        spectral_cap=cfg["model.spectral_cap"],
        cost=cfg["model.cost"],
    )
    net = ModelNetwork(spec, cfg["dtype"], cfg["device"], seed, tol=cfg["model.tol"])
    check_rule_applies(rule, net.model)
    return net, rule


def _peak_memory(fn):
    """Run ``fn`` and return ``(result, peak MB of array memory it allocated)``: tracemalloc's
    peak (NumPy reports its buffers to it: the reference and numba backends) or, on CUDA,
    torch's peak allocated bytes; NaN for torch on the CPU (its allocator is invisible)."""
    import tracemalloc

    torch = sys.modules.get("torch")
    cuda = torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    return out, peak / 2**20


def _diagnostic_batch(ds, cfg: dict, dtype) -> np.ndarray:
    """The first (up to) 256 training images, normalized: where per-epoch diagnostics
    (spectral norms, Lipschitz estimates) are measured."""
    n = min(256, len(ds.train_y))
    xb, _ = next(
        iter(
            iterate_batches(
                ds.train_x[:n],
                ds.train_y[:n],
                n,
                rng=None,
                mean=ds.mean,
                std=ds.std,
                pad_to=cfg["pad_to"],
                augmentation=None,
                dtype=dtype,
            )
        )
    )
    return xb


def _optimizer(cfg: dict, net: Network, seed: int):
    """The study's optimizer over the network's parameters (see ``make_optimizer``)."""
    shapes = {k: tuple(v.shape) for k, v in net.parameters().items()}
    names = list(shapes)
    hidden, dense = net.coupling_roles()
    scale = cfg["optimizer.lr_scale"]  # a tuning grid multiplies every rate
    lrs = {k: v * scale for k, v in layer_learning_rates(names, cfg["optimizer.lr"]).items()}
    adam_lrs = {
        k: v * scale for k, v in layer_learning_rates(names, cfg["optimizer.adam_lr"]).items()
    }
    return make_optimizer(
        cfg["optimizer.name"],
        lrs,
        shapes,
        hidden,
        dense,
        adam_lrs=adam_lrs,
        momentum=cfg["optimizer.momentum"],
        weight_decay=cfg["optimizer.weight_decay"],
        spectral_cap=cfg["optimizer.spectral_cap"],
        ns_steps=cfg["optimizer.ns_steps"],
        nesterov=cfg["optimizer.nesterov"],
        rank_frac=cfg["optimizer.rank_frac"],
        dion_threshold=cfg["optimizer.dion_threshold"],
        damping=cfg["optimizer.damping"],
        kfac_decay=cfg["optimizer.kfac_decay"],
        rng=derive_rng(seed, "optimizer/dion"),
    )


def _fmt_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _config_diff(old_toml: str, new: StudyConfig) -> list[str]:
    import tomllib

    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, prefix + k + "."))
            else:
                out[prefix + k] = v
        return out

    a = flat(tomllib.loads(old_toml))
    b = flat(tomllib.loads(new.to_toml()))
    return sorted(k for k in set(a) | set(b) if k not in _RESUME_FREE_KEYS and a.get(k) != b.get(k))


class _Recorder:
    """Holds a run's metrics and writes the run file (no-op without a path)."""

    def __init__(
        self, path: Path | None, meta: dict, config_toml: str, profile_toml: str, circuit_toml: str
    ):
        self.path, self.meta, self.config_toml = path, meta, config_toml
        self.profile_toml, self.circuit_toml = profile_toml, circuit_toml
        self.metrics: dict[str, list[float]] = {}

    def write(self, checkpoint: Checkpoint | None) -> None:
        if self.path is not None:
            write_run(
                self.path,
                RunRecord(
                    self.meta,
                    self.config_toml,
                    self.profile_toml,
                    {k: np.asarray(v) for k, v in self.metrics.items()},
                    checkpoint,
                    self.circuit_toml,
                ),
            )


def _thread_budget(asked, previous, share: int | None, log) -> int:
    """The run's thread count: an explicit ``threads``; else the count a resumed run started
    with (so it resumes bit-exactly); else ``share`` (an executor's part of the cores) or the
    free cores now. Applied to every thread pool of this process."""
    n = parse_threads(asked)
    recorded = int(previous.meta.get("threads", 0) or 0) if previous is not None else 0
    if n is None:
        n = recorded or share or resolve_threads("auto")
        if share is not None:
            n = min(n, share)
    if recorded and n != recorded:
        log(
            f"warning: resuming on {n} threads; the run started on {recorded}, so its "
            "numbers may differ in the last bits from an uninterrupted run"
        )
    return set_threads(n)


def run_training(
    study: StudyConfig,
    log: Callable[[str], None] | None = None,
    progress: bool | None = None,
    path: str | Path | None = None,
    checkpoint_seconds: float | None = None,
    max_threads: int | None = None,
) -> TrainingResult:
    """Train and evaluate one run as ``study`` says (a study without sweep axes, or one of
    :meth:`StudyConfig.runs`); ``log`` receives one line per epoch.

    ``path``: the HDF5 run file to record to and resume from (``None``: no recording).
    ``checkpoint_seconds`` overrides the study's ``checkpoint_minutes`` (0: every step).
    ``max_threads``: this run's share of the cores when an executor runs several at once.
    """
    if study.sweep:
        raise ConfigError(
            f"study {study.name} sweeps {', '.join(k for k, _ in study.sweep)}; "
            "run it through analogebl.study.run_study or pick one of .runs()"
        )
    cfg = study.as_dict()
    log = log or (lambda s: None)
    path = None if path is None else Path(path)
    seed = cfg["seed"]
    previous = read_run(path) if path is not None and path.exists() else None
    if previous is not None:
        diff = _config_diff(previous.config_toml, study)
        if diff:
            raise ConfigError(
                f"holds a run with a different configuration ({', '.join(diff)} "
                "differ); choose another --out to start a new run",
                path=path,
            )
    n_threads = _thread_budget(cfg["threads"], previous, max_threads, log)
    n_val, n_train = cfg["validation_subset"] or 0, cfg["train_subset"]
    ds = load_dataset(
        cfg["dataset"],
        train_subset=None if n_train is None else n_train + n_val,
        test_subset=cfg["test_subset"],
        subset_seed=seed,
    )
    val_x = val_y = None
    if n_val:
        ds, val_x, val_y = split_validation(ds, n_val, derive_rng(seed, "data/validation"))
    net, rule = build_network(cfg, ds, seed)
    profile = None if cfg["profile"] == "none" else load_profile(cfg["profile"])
    hw = (
        None
        if profile is None or profile.is_ideal
        else HardwareSession(profile, net.backend, ds.mean, ds.std, seed)
    )
    opt = _optimizer(cfg, net, seed)
    init_weights = {k: v.astype(np.float64) for k, v in net.parameters().items() if v.ndim > 1}
    epochs = cfg["epochs"]
    sched = (
        CosineSchedule(epochs, cfg["optimizer.eta_min"])
        if cfg["optimizer.schedule"] == "cosine"
        else ConstantSchedule()
    )
    aug = DEFAULT_AUGMENTATION[ds.name] if cfg["augment"] else None
    free_it = cfg["relaxation.free_iterations"]
    schedule = cfg["relaxation.schedule"]
    np_dtype = np.dtype(cfg["dtype"])
    bs = cfg["batch_size"]
    n_batches = num_batches(len(ds.train_y), bs)
    every_s = cfg["checkpoint_minutes"] * 60.0 if checkpoint_seconds is None else checkpoint_seconds
    if progress is None:
        progress = sys.stderr.isatty()

    meta = {
        "study": study.name,
        "run_id": study.run_id or "run",
        "tier": study.tier,
        "dataset": ds.name,
        "rule": rule.name,
        "beta": float("nan") if cfg["rule.beta"] is None else float(cfg["rule.beta"]),
        "profile": cfg["profile"],
        "optimizer": cfg["optimizer.name"],
        "seed": seed,
        "variant": cfg["variant"] or "",
        "lr": float(np.ravel(cfg["optimizer.lr"])[0]) * cfg["optimizer.lr_scale"],
        **net.describe(),
        "version": analogebl.__version__,
        "git_sha": git_sha(),
        "epochs_planned": epochs,
        "threads": n_threads,
        "complete": False,
        "status": "running",
        "message": "",
        "train_size": len(ds.train_y),
        "test_size": len(ds.test_y),
        "validation_size": 0 if val_y is None else len(val_y),
        "hidden_layers": net.plan.num_layers - 2 if isinstance(net, Network) else 1,
    }
    rec = _Recorder(
        path,
        meta,
        study.to_toml(),
        "" if profile is None else profile.to_toml(),
        net.description_toml(),
    )
    result = TrainingResult(path=path)

    start_epoch, start_step, sums = 0, 0, {}
    if previous is not None:
        rec.metrics = {k: [float(x) for x in v] for k, v in previous.metrics.items()}
        for e in range(previous.epochs_done):
            result.epochs.append(
                EpochResult(
                    *(
                        rec.metrics[k][e] if k != "epoch" else int(rec.metrics[k][e])
                        for k in ("epoch", "train_error", "train_cost", "test_error", "seconds")
                    )
                )
            )
        if previous.complete:
            log(f"run {path} is complete ({previous.epochs_done} epochs); nothing to do")
            result.network = net  # type: ignore[attr-defined]
            net.load_parameters(
                {k[7:]: v for k, v in previous.checkpoint.arrays.items() if k.startswith("params/")}
            )
            return result
        ck = previous.checkpoint
        if ck is not None:
            start_epoch, start_step, sums = ck.epoch, ck.step, dict(ck.scalars)
            net.load_parameters({k[7:]: v for k, v in ck.arrays.items() if k.startswith("params/")})
            opt.load_state(
                {k[4:]: net.to_backend(v) for k, v in ck.arrays.items() if k.startswith("opt/")},
                sums,
            )
            net.load_warm_arrays({k[5:]: v for k, v in ck.arrays.items() if k.startswith("warm/")})
            net.load_extra_state({k[6:]: v for k, v in ck.arrays.items() if k.startswith("model/")})
            if hw is not None:
                hw.load_state(ck.arrays, ck.rng, sums)
            result.resumed_from = (start_epoch, start_step)
            log(f"resuming {path} at epoch {start_epoch + 1}, batch {start_step + 1}")

    def checkpoint(epoch: int, step: int, sums: dict) -> Checkpoint:
        arrays = {f"params/{k}": v for k, v in net.parameters().items()}
        arrays.update({f"opt/{k}": net.to_numpy(v) for k, v in opt.state().items()})
        arrays.update({f"warm/{k}": v for k, v in net.warm_arrays().items()})
        arrays.update({f"model/{k}": v for k, v in net.extra_state().items()})
        rng, scalars = {}, {}
        if hw is not None:
            hw_arrays, rng, scalars = hw.state()
            arrays.update(hw_arrays)
        return Checkpoint(epoch, step, arrays, {**sums, **opt.scalars(), **scalars}, rng)

    def diverged(where: str, epoch: int, step: int) -> DivergenceError:
        msg = (
            f"NaN/Inf in {where} at epoch {epoch + 1}, step {step + 1} (rule {rule.name}); "
            "the last good checkpoint is kept; lower the learning rates or beta"
        )
        if path is not None and path.exists():
            last = read_run(path)
            last.meta.update(status="diverged", message=msg)
            write_run(path, last)
        return DivergenceError(msg)

    t_start = time.perf_counter()
    estimated = previous is not None
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter() - sums.get("seconds", 0.0)
        sched.apply(opt, epoch)
        rng = derive_rng(seed, f"data/order/epoch{epoch}")
        first = start_step if epoch == start_epoch else 0
        if epoch != start_epoch:
            sums = {}
        batches = iterate_batches(
            ds.train_x,
            ds.train_y,
            bs,
            rng=rng,
            mean=ds.mean,
            std=ds.std,
            pad_to=cfg["pad_to"],
            augmentation=aug,
            dtype=np_dtype,
            start_batch=first,
        )
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(
                total=n_batches,
                initial=first,
                desc=f"epoch {epoch + 1}/{epochs}",
                leave=False,
                file=sys.stderr,
                dynamic_ncols=True,
            )
        for k in ("n", "steps", "train_seconds"):
            sums.setdefault(k, 0.0)
        last_ck = time.perf_counter()
        t_train = time.perf_counter() - sums["train_seconds"]
        for step, (xb, yb) in enumerate(batches, start=first):
            settle_threads()  # every step starts on the same thread counts (bit-exact resume)
            if cfg["measure_memory"] and step == min(first + 1, n_batches - 1):
                # the second step: the first pays one-time allocations (JIT, caches)
                m, peak = _peak_memory(
                    functools.partial(
                        net.train_step, xb, yb, rule, opt, free_it, schedule, hardware=hw
                    )
                )
                sums["peak_step_MB"] = max(sums.get("peak_step_MB", 0.0), peak)
            else:
                m = net.train_step(xb, yb, rule, opt, free_it, schedule, hardware=hw)
            sums["steps"] += 1
            bad = net.check_finite()
            if bad is not None or not math.isfinite(m["cost"]):
                if bar is not None:
                    bar.close()
                raise diverged(bad or "the output", epoch, step)
            n = len(yb)
            sums["n"] += n
            for k, v in m.items():  # cost, error, energy, residual (+ a model's extras)
                sums[f"m_{k}"] = sums.get(f"m_{k}", 0.0) + v * n
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    err=f"{sums['m_error'] / sums['n']:.3f}",
                    cost=f"{sums['m_cost'] / sums['n']:.3f}",
                    E=f"{sums['m_energy'] / sums['n']:.2f}",
                )
            if not estimated and step - first == min(3, n_batches - 1):
                per_batch = (time.perf_counter() - t0) / (step - first + 1)
                ep = per_batch * n_batches * (1 + 0.6 * len(ds.test_y) / len(ds.train_y))
                log(
                    f"estimated time: {_fmt_seconds(ep)} per epoch, "
                    f"{_fmt_seconds(ep * (epochs - epoch))} for the remaining "
                    f"{epochs - epoch} epochs"
                )
                estimated = True
            if step + 1 < n_batches and time.perf_counter() - last_ck >= every_s:
                sums["seconds"] = time.perf_counter() - t0
                sums["train_seconds"] = time.perf_counter() - t_train
                rec.write(checkpoint(epoch, step + 1, sums))
                last_ck = time.perf_counter()
        if bar is not None:
            bar.close()
        train_seconds = time.perf_counter() - t_train
        settle_threads()
        test_err = evaluate(
            net,
            ds.test_x,
            ds.test_y,
            mean=ds.mean,
            std=ds.std,
            pad_to=cfg["pad_to"],
            iterations=free_it,
            batch_size=cfg["eval_batch_size"],
            dtype=np_dtype,
        )
        r = EpochResult(
            epoch + 1,
            sums["m_error"] / sums["n"],
            sums["m_cost"] / sums["n"],
            test_err,
            time.perf_counter() - t0,
        )
        result.epochs.append(r)
        row = {
            "epoch": r.epoch,
            "train_error": r.train_error,
            "train_cost": r.train_cost,
            "test_error": r.test_error,
            "energy": sums["m_energy"] / sums["n"],
            "residual": sums["m_residual"] / sums["n"],
            "seconds": r.seconds,
            "lr": float(next(iter(opt.lrs.values()))),
            "seconds_per_step": train_seconds / max(sums["steps"], 1),
        }
        params_now = net.parameters()
        for k, w0 in init_weights.items():  # does every layer learn?
            row[f"rel_change_{k}"] = float(
                np.linalg.norm(params_now[k] - w0) / max(np.linalg.norm(w0), 1e-30)
            )
        if "peak_step_MB" in sums:
            row["peak_step_MB"] = sums["peak_step_MB"]
        means = {k[2:]: v / sums["n"] for k, v in sums.items() if k.startswith("m_")}
        row.update(
            {k: v for k, v in means.items() if k not in ("cost", "error", "energy", "residual")}
        )
        row.update(net.epoch_diagnostics(_diagnostic_batch(ds, cfg, np_dtype), free_it))
        if val_y is not None:
            row["val_error"] = evaluate(
                net,
                val_x,
                val_y,
                mean=ds.mean,
                std=ds.std,
                pad_to=cfg["pad_to"],
                iterations=free_it,
                batch_size=cfg["eval_batch_size"],
                dtype=np_dtype,
            )
        if hw is not None:
            row.update(
                pulses=hw.pulses,
                update_energy_J=hw.update_energy_J,
                relax_energy_J=hw.relax_energy_J,
                energy_J=hw.update_energy_J + hw.relax_energy_J,
            )
            hw.end_epoch()
        for k, v in row.items():
            rec.metrics.setdefault(k, []).append(float(v))
        if epoch + 1 == epochs:
            meta.update(complete=True, status="complete")
        rec.write(checkpoint(epoch + 1, 0, {}))
        log(
            f"epoch {r.epoch}/{epochs}  train_error {100 * r.train_error:6.2f}%  "
            f"cost {r.train_cost:.4f}  energy {row['energy']:.3f}  "
            f"test_error {100 * r.test_error:6.2f}%  ({r.seconds:.1f} s)"
        )
    result.seconds = time.perf_counter() - t_start
    result.network = net  # type: ignore[attr-defined]
    return result
