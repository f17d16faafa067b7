"""The owner of a training step: :class:`Trainer` (network + rule + updater + relaxation).

``Trainer.step(x, y)`` is one step (warm-started free phase, the rule's estimate, the
updater's write); ``evaluate`` the test protocol (zero-initialised relaxation, argmax);
``fit`` the epoch loop (data order, schedule, metrics, checkpoints, divergence); and
``state_dict`` / ``load_state_dict`` one nested state that checkpoints flatten with ``/``::

    {"params": {...}, "opt": {...}, "warm": {...}, "model": {...},   # arrays
     "updater": {"arrays": {"hw": {...}, "hwnoise": {...}}, "scalars": {...}, "rng": {...}},
     "scalars": {...}}                                                # optimizer counters

Crossbar circuits (:class:`analogebl.network.Network`) and the recurrent models
(:class:`analogebl.models.ModelNetwork`) implement the :class:`Trainable` protocol.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from analogebl.data import iterate_batches, num_batches
from analogebl.errors import DivergenceError
from analogebl.plan import derive_rng
from analogebl.recording import Checkpoint
from analogebl.threads import settle as settle_threads
from analogebl.training.checkpoints import check_checkpoint
from analogebl.training.progress import Progress
from analogebl.training.results import EpochResult, TrainingResult
from analogebl.training.support import (
    epoch_results,
    first_batch,
    flatten,
    peak_memory,
    unflatten,
)

__all__ = [
    "EpochResult",
    "FitOptions",
    "Trainable",
    "Trainer",
    "TrainingResult",
    "evaluate",
]


@runtime_checkable
class Trainable(Protocol):
    """What a :class:`Trainer` trains: a crossbar circuit or a recurrent model."""

    def parameters(self) -> dict[str, np.ndarray]: ...
    def load_parameters(self, params: dict[str, np.ndarray]) -> None: ...
    def warm_arrays(self) -> dict[str, np.ndarray]: ...
    def load_warm_arrays(self, arrays: dict[str, np.ndarray]) -> None: ...
    def extra_state(self) -> dict[str, np.ndarray]: ...
    def load_extra_state(self, arrays: dict[str, np.ndarray]) -> None: ...
    def to_backend(self, a: np.ndarray): ...
    def to_numpy(self, a) -> np.ndarray: ...
    def check_finite(self) -> str | None: ...
    def predict(self, x: np.ndarray, iterations: int) -> np.ndarray: ...
    def epoch_diagnostics(self, x: np.ndarray, iterations: int) -> dict[str, float]: ...
    def train_step(self, x, y, rule, updater, free_iterations, schedule) -> dict[str, float]: ...


def evaluate(net, x_uint8, y, *, mean, std, pad_to, iterations, batch_size, dtype) -> float:
    """Test error: relax every batch from zero for ``iterations`` and take the argmax."""
    wrong = 0
    for xb, yb in iterate_batches(
        x_uint8, y, batch_size, rng=None, mean=mean, std=std, pad_to=pad_to,
        augmentation=None, dtype=dtype,
    ):  # fmt: skip
        wrong += int(np.sum(net.predict(xb, iterations) != yb))
    return wrong / len(y)


@dataclass(frozen=True)
class FitOptions:
    """How :meth:`Trainer.fit` runs the epochs (from the study's keys)."""

    epochs: int
    batch_size: int
    eval_batch_size: int
    dtype: Any
    pad_to: int | None = None
    augmentation: Any = None
    checkpoint_seconds: float = 600.0
    measure_memory: bool = False
    #: report progress on stderr: a bar on a terminal, a plain line about every 30 s
    #: otherwise (:mod:`analogebl.training.progress`); ``"lines"``: plain lines even on a
    #: terminal (pool and Dask workers, whose bars would overwrite each other)
    progress: bool | str = False
    #: examples in the per-epoch gradient-fidelity probe batch (0: no probes)
    probes: int = 0


# checkpoint array groups the trainer writes itself (the rest belong to the updater)
_OWN_GROUPS = ("params", "opt", "warm", "model")
# recorded metrics that may be NaN by design (peak memory is unknown for torch on the CPU)
#: per-update hardware figures of an epoch are NaN when an older run file lacks the
#: cumulative counters they difference
_PER_UPDATE = ("pulses_per_update", "update_J_per_update", "train_J_per_update")
_MAY_BE_NAN = frozenset({"peak_step_MB", *_PER_UPDATE})
# a step's metric -> its epoch row's name
_ROW_NAMES = {"cost": "train_cost", "error": "train_error"}


class Trainer:
    """Network + rule + :class:`~analogebl.training.updaters.Updater` + relaxation settings.

    Parameters
    ----------
    net : Trainable
    rule : the circuit's or model's learning rule (``analogebl.learning`` / ``models``)
    updater : IdealUpdater or CrossbarUpdater (holds the optimizer)
    schedule : learning-rate schedule with ``apply(optimizer, epoch)``
    free_iterations : int
        Iterations of the free phase (training and evaluation).
    relax_schedule : {"async", "sync"}
    """

    def __init__(self, net, rule, updater, schedule, free_iterations: int, relax_schedule: str):
        self.net, self.rule, self.updater = net, rule, updater
        self.optimizer = updater.optimizer
        self.schedule = schedule
        self.free_iterations, self.relax_schedule = free_iterations, relax_schedule
        # the weights before any training (or resume): fit reports ||W - W0|| / ||W0||
        self.init_weights = {
            k: v.astype(np.float64) for k, v in net.parameters().items() if v.ndim > 1
        }

    # ------------------------------------------------------------------ one step
    def step(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """One training step; returns the batch's free-phase metrics (cost, error, ...)."""
        settle_threads()  # every step starts on the same thread counts (bit-exact resume)
        return self.net.train_step(
            x, y, self.rule, self.updater, self.free_iterations, self.relax_schedule
        )

    def evaluate(self, x_uint8, y, *, mean, std, pad_to, batch_size, dtype) -> float:
        """Error rate of the zero-initialised relaxation's argmax on ``(x_uint8, y)``."""
        settle_threads()
        return evaluate(
            self.net, x_uint8, y, mean=mean, std=std, pad_to=pad_to,
            iterations=self.free_iterations, batch_size=batch_size, dtype=dtype,
        )  # fmt: skip

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Nested state of everything a step changes (module docstring)."""
        net = self.net
        return {
            "params": net.parameters(),
            "opt": {k: net.to_numpy(v) for k, v in self.optimizer.state().items()},
            "warm": net.warm_arrays(),
            "model": net.extra_state(),
            "updater": self.updater.state_dict(),
            "scalars": self.optimizer.scalars(),
        }

    def load_state_dict(self, state: dict[str, Any], sums: dict[str, float] | None = None):
        """Restore :meth:`state_dict` (``sums``: scalars the optimizer's counters live in)."""
        net = self.net
        net.load_parameters(state["params"])
        scalars = {**state.get("scalars", {}), **(sums or {})}
        self.optimizer.load_state(
            {k: net.to_backend(v) for k, v in state.get("opt", {}).items()}, scalars
        )
        net.load_warm_arrays(state.get("warm", {}))
        net.load_extra_state(state.get("model", {}))
        if not self.updater.ideal:
            self.updater.load_state_dict(state["updater"])

    def checkpoint(self, epoch: int, step: int, sums: dict[str, float]) -> Checkpoint:
        """The state as a run-file checkpoint (arrays flattened with ``/``)."""
        st = self.state_dict()
        up = st.pop("updater")
        scalars = st.pop("scalars")
        arrays = flatten({**st, **up["arrays"]})
        return Checkpoint(epoch, step, arrays, {**sums, **scalars, **up["scalars"]}, up["rng"])

    def restore(self, ck: Checkpoint) -> None:
        """Load a run-file checkpoint written by :meth:`checkpoint`."""
        groups = unflatten(ck.arrays)
        state = {k: groups.pop(k, {}) for k in _OWN_GROUPS}
        state["updater"] = {
            "arrays": groups,  # every other group is the updater's (hw, hwnoise)
            "scalars": dict(ck.scalars),
            "rng": ck.rng,
        }
        self.load_state_dict(state, dict(ck.scalars))

    def resume(self, previous, result: TrainingResult, log) -> tuple | None:
        """Continue from a run file's record ``previous`` (``None``: a fresh run): its epochs
        go into ``result``; returns ``(epoch, step, sums)`` to :meth:`fit` from, or ``None``
        when the run is complete (then only its parameters are loaded).

        The checkpoint is checked against this trainer before anything is restored
        (:func:`~analogebl.training.checkpoints.check_checkpoint`: a :class:`ConfigError`
        naming the file and the entry); the record itself is checked by
        :meth:`analogebl.training.RunFile.begin`."""
        if previous is None:
            return (0, 0, None)
        check_checkpoint(previous, self)
        result.epochs.extend(epoch_results(previous.metrics, previous.epochs_done))
        ck = previous.checkpoint
        if previous.complete:
            log(f"run {result.path} is complete ({previous.epochs_done} epochs); nothing to do")
            self.net.load_parameters(unflatten(ck.arrays).get("params", {}))
            return None
        if ck is None:
            return (0, 0, None)
        self.restore(ck)
        result.resumed_from = (ck.epoch, ck.step)
        log(f"resuming {result.path} at epoch {ck.epoch + 1}, batch {ck.step + 1}")
        return (ck.epoch, ck.step, dict(ck.scalars))

    # ------------------------------------------------------------------ the epoch loop
    def fit(self, ds, opts: FitOptions, recorder, *, seed: int, start=(0, 0, None),
            val=None, diagnostic_x=None, log: Callable[[str], None] | None = None,
            result: TrainingResult | None = None,
            resumed: bool = False) -> TrainingResult:  # fmt: skip
        """Train epochs ``start[0] .. opts.epochs - 1`` from batch ``start[1]`` with running
        sums ``start[2]``; evaluate after each epoch; record to ``recorder`` (metrics per
        epoch, a checkpoint every epoch and every ``checkpoint_seconds``).

        Raises :class:`DivergenceError` on NaN/Inf in the states, the parameters, a step's
        metrics or an epoch's recorded metrics (energy, cost, energy_J, ...), naming the
        layer or metric and the epoch; the recorder keeps the last good checkpoint and is
        marked diverged. A metric that is NaN from the first step on (the energy of a model
        without one) is undefined for the network, not a divergence.
        """
        log = log or (lambda s: None)
        result = result or TrainingResult()
        net, opt = self.net, self.optimizer
        start_epoch, start_step, sums = start[0], start[1], dict(start[2] or {})
        init_weights = self.init_weights
        n_batches = num_batches(len(ds.train_y), opts.batch_size)
        t_start = time.perf_counter()
        # a bar on a terminal, a line every ~30 s otherwise; a resumed run does not
        # announce its time again (the bar and the lines still show the refreshed ETA)
        progress = Progress(
            n_batches, opts.epochs, (start_epoch, start_step), enabled=bool(opts.progress),
            tty=False if opts.progress == "lines" else None, log=log,
            eval_fraction=0.6 * len(ds.test_y) / len(ds.train_y), announce=not resumed,
            label="" if result.path is None else Path(result.path).stem,
        )  # fmt: skip
        undefined: set[str] | None = None  # step metrics NaN from the first step on
        warned_equilibrium = False
        try:  # the bar is closed however the loop ends (an error, Ctrl-C)
            for epoch in range(start_epoch, opts.epochs):
                if epoch != start_epoch:
                    sums = {}  # before t0: a checkpoint's time belongs to its own epoch
                # a resumed epoch continues its clock from the checkpoint
                t0 = time.perf_counter() - sums.get("seconds", 0.0)
                self.schedule.apply(opt, epoch)
                rng = derive_rng(seed, f"data/order/epoch{epoch}")
                first = start_step if epoch == start_epoch else 0
                batches = iterate_batches(
                    ds.train_x, ds.train_y, opts.batch_size, rng=rng, mean=ds.mean, std=ds.std,
                    pad_to=opts.pad_to, augmentation=opts.augmentation, dtype=opts.dtype,
                    start_batch=first,
                )  # fmt: skip
                progress.begin_epoch(epoch, first)
                for k in ("n", "steps", "train_seconds"):
                    sums.setdefault(k, 0.0)
                last_ck = time.perf_counter()
                t_train = time.perf_counter() - sums["train_seconds"]
                for step, (xb, yb) in enumerate(batches, start=first):
                    if opts.measure_memory and step == min(first + 1, n_batches - 1):
                        # the second step: the first pays one-time allocations (JIT, caches)
                        m, peak = peak_memory(functools.partial(self.step, xb, yb))
                        sums["peak_step_MB"] = max(sums.get("peak_step_MB", 0.0), peak)
                    else:
                        m = self.step(xb, yb)
                    sums["steps"] += 1
                    if undefined is None:
                        undefined = {k for k, v in m.items() if math.isnan(v)} - {"cost"}
                    bad = net.check_finite() or _bad_value(m, undefined, "the step's")
                    if bad is not None:
                        raise self._diverged(recorder, bad, epoch, step)
                    n = len(yb)
                    sums["n"] += n
                    for k, v in m.items():  # cost, error, energy, residual (+ a model's extras)
                        if f"m_{k}" not in sums and sums["n"] > n:
                            # a metric this version adds, in an epoch an older one began: the
                            # epoch's mean is unknown (NaN), not a mean over part of it
                            sums[f"m_{k}"] = math.nan
                        sums[f"m_{k}"] = sums.get(f"m_{k}", 0.0) + v * n
                    progress.step(
                        n, sums["m_error"] / sums["n"], sums["m_cost"] / sums["n"],
                        sums["m_energy"] / sums["n"],
                    )  # fmt: skip
                    if step + 1 < n_batches and time.perf_counter() - last_ck >= (
                        opts.checkpoint_seconds
                    ):
                        sums["seconds"] = time.perf_counter() - t0
                        sums["train_seconds"] = time.perf_counter() - t_train
                        recorder.write(self.checkpoint(epoch, step + 1, sums))
                        last_ck = time.perf_counter()
                progress.end_training()
                train_seconds = time.perf_counter() - t_train
                row, r = self._epoch_row(ds, opts, epoch, sums, t0, train_seconds, init_weights,
                                         val, diagnostic_x)  # fmt: skip
                if not self.updater.ideal:
                    row.update(_per_update(row, recorder.metrics))
                partial = {k[2:] for k, v in sums.items() if k.startswith("m_") and math.isnan(v)}
                nan = (undefined or set()) | partial
                nan_ok = _MAY_BE_NAN | {_ROW_NAMES.get(k, k) for k in nan}
                # a probe's cosine or norm ratio is undefined (NaN) where a gradient vanishes
                nan_ok |= {k for k in row if k.startswith("probe_")}
                bad = _bad_value(row, nan_ok, "the recorded")
                if bad is not None:
                    raise self._diverged(recorder, bad, epoch, None)
                result.epochs.append(r)
                if not warned_equilibrium:
                    warned_equilibrium = _warn_off_equilibrium(row, self.free_iterations, log)
                for k, v in row.items():
                    # a metric this version adds to a run an older one started: NaN before
                    recorder.metrics.setdefault(k, [math.nan] * epoch).append(float(v))
                if epoch + 1 == opts.epochs:
                    recorder.meta.update(complete=True, status="complete")
                recorder.write(self.checkpoint(epoch + 1, 0, {}))
                hw = ""
                if "pulses_per_update" in row:
                    hw = (
                        f"  pulses/update {row['pulses_per_update']:.3g}  J/update "
                        f"{row['train_J_per_update']:.3g} (pulses {row['update_J_per_update']:.2g})"
                        f"  J/inference {row['inference_energy_J']:.3g}"
                    )
                log(
                    f"epoch {r.epoch}/{opts.epochs}  train_error {100 * r.train_error:6.2f}%  "
                    f"cost {r.train_cost:.4f}  energy {row['energy']:.3f}  "
                    f"test_error {100 * r.test_error:6.2f}%{hw}  ({r.seconds:.1f} s)"
                )
                progress.end_epoch()
        finally:
            progress.close()
        result.seconds = time.perf_counter() - t_start
        return result

    def _epoch_row(self, ds, opts, epoch, sums, t0, train_seconds, init_weights, val,
                   diagnostic_x) -> tuple[dict[str, float], EpochResult]:  # fmt: skip
        """End of an epoch: test (and validation) error, diagnostics, the metrics row."""
        net, opt = self.net, self.optimizer
        ev = {"mean": ds.mean, "std": ds.std, "pad_to": opts.pad_to,
              "batch_size": opts.eval_batch_size, "dtype": opts.dtype}  # fmt: skip
        test_err = self.evaluate(ds.test_x, ds.test_y, **ev)
        r = EpochResult(
            epoch + 1, sums["m_error"] / sums["n"], sums["m_cost"] / sums["n"], test_err,
            time.perf_counter() - t0,
        )  # fmt: skip
        row = {
            "epoch": r.epoch, "train_error": r.train_error, "train_cost": r.train_cost,
            "test_error": r.test_error, "energy": sums["m_energy"] / sums["n"],
            "residual": sums["m_residual"] / sums["n"], "seconds": r.seconds,
            "lr": float(next(iter(opt.lrs.values()))),
            "seconds_per_step": train_seconds / max(sums["steps"], 1),
        }  # fmt: skip
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
        row.update(net.epoch_diagnostics(diagnostic_x, self.free_iterations))
        if opts.probes and hasattr(net, "backend"):
            row.update(self._probe(ds, opts, epoch))
        if val is not None:
            row["val_error"] = evaluate(net, val[0], val[1], iterations=self.free_iterations, **ev)
        if not self.updater.ideal:
            row.update(self.updater.epoch_metrics())
            self.updater.end_epoch()
        return row, r

    def _probe(self, ds, opts: FitOptions, epoch: int) -> dict[str, float]:
        """The gradient-fidelity probes (:mod:`analogebl.diagnostics.probes`) on the first
        ``opts.probes`` training images, at the weights the epoch ended with."""
        from analogebl.diagnostics.probes import gradient_fidelity

        x, y = first_batch(ds, opts.probes, opts.pad_to, opts.dtype)
        return gradient_fidelity(
            self.net, self.rule, self.updater, x, y, self.free_iterations,
            self.relax_schedule, rng=derive_rng(0, f"probe/epoch{epoch}"),
        )  # fmt: skip

    def _diverged(self, recorder, where: str, epoch: int, step: int | None) -> DivergenceError:
        at = f"epoch {epoch + 1}" + ("" if step is None else f", step {step + 1}")
        msg = (
            f"NaN/Inf in {where} at {at} (rule {self.rule.name}); "
            "the last good checkpoint is kept; lower the learning rates or beta"
        )
        recorder.mark_diverged(msg)
        return DivergenceError(msg)


def _per_update(row: dict[str, float], metrics: dict[str, list[float]]) -> dict[str, float]:
    """An epoch's hardware cost per update, from the updater's cumulative counters in
    ``row`` and the previous epoch's in ``metrics`` (0 before the first epoch): pulses,
    pulse energy and all training energy (pulses + relaxation reads + converters) [J]."""
    if metrics.get("pulses") and not metrics.get("updates"):
        # an older run resumed: its update counter restarted at the resume
        return dict.fromkeys(_PER_UPDATE, math.nan)

    n = row["updates"] - (metrics.get("updates") or [0.0])[-1]

    def per(key: str) -> float:
        return (row[key] - (metrics.get(key) or [0.0])[-1]) / n if n > 0 else math.nan

    return dict(
        zip(_PER_UPDATE, (per("pulses"), per("update_energy_J"), per("energy_J")), strict=True)
    )


#: a mean relaxation residual ``max |s - act(h)|`` above this is not an equilibrium
#: (float32 rounding leaves ~1e-6, 16-bit state converters ~1e-5)
EQUILIBRIUM_TOL = 1e-2


def _warn_off_equilibrium(row: dict[str, float], free_iterations: int, log) -> bool:
    """Log one warning when an epoch's mean free or nudged residual exceeds
    :data:`EQUILIBRIUM_TOL`; returns whether it did.

    EP and CpL estimate the gradient from two *equilibria*: when the relaxation stops far
    from one, the contrast holds the unfinished relaxation, which dominates the couplings
    far from the output and grows as beta shrinks (measured on the width-0.125 DCHN at
    gains 1.0: residual 0.13 after 60 iterations, C-EP's first-layer estimate at cosine 0.3
    to the implicit gradient; 120 iterations or gains 0.7 converge).
    """
    worst = {k: row[k] for k in ("residual", "residual_nudged") if k in row}
    bad = {k: v for k, v in worst.items() if v > EQUILIBRIUM_TOL}
    if not bad:
        return False
    what = ", ".join(f"{k} {v:.2g}" for k, v in bad.items())
    log(
        f"warning: the relaxation ends far from equilibrium (mean {what} > "
        f"{EQUILIBRIUM_TOL:g}; free phase {free_iterations} iterations): contrastive "
        "estimates (EP, CpL, CL) assume equilibria; raise relaxation.free_iterations / "
        "rule.iterations or lower circuit.gains"
    )
    return True


def _bad_value(values: dict[str, float], nan_ok, what: str) -> str | None:
    """``"<what> metric NAME (VALUE)"`` for the first value that is Inf, or NaN while its
    name is not in ``nan_ok``; else None."""
    for k, v in values.items():
        v = float(v)
        if math.isinf(v) or (math.isnan(v) and k not in nan_ok):
            return f"{what} metric {k} ({v})"
    return None
