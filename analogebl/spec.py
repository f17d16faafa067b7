"""Typed, frozen run configuration: what one training run is, validated in one place.

A study file (``studies/NAME.toml``) is parsed into flat dotted keys by
:mod:`analogebl.study.config` (types only); :meth:`RunSpec.from_flat` turns one resolved
run into these nested records and checks every value's meaning, naming the file and the
dotted key in each message. The builders (:mod:`analogebl.training.build`) read the records,
never string keys. ``None`` means "not set" everywhere (no sentinels: ``hardware.profile is
None`` is software; ``threads is None`` is auto).

This module imports nothing else from analogebl but its errors, so every package may use it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from analogebl.errors import ConfigError

__all__ = [
    "OPTIMIZERS",
    "CircuitSpec",
    "DataSpec",
    "HardwareSpec",
    "OptimizerSpec",
    "RecurrentModelSpec",
    "RelaxationSpec",
    "RuleSpec",
    "RunSpec",
    "layer_learning_rates",
]

#: every optimizer ``learning.make_optimizer`` builds (the one list; learning re-exports it)
OPTIMIZERS = ("sgd", "adam", "adamw", "muon", "smep", "local_ep", "natural_ep", "sdmep")


def _bad(key: str, message: str):
    return ConfigError(message, key=key)


def _positive(key: str, v, integer: bool = False, allow_none: bool = False):
    if v is None and allow_none:
        return
    ok = isinstance(v, int) if integer else isinstance(v, int | float)
    if isinstance(v, bool) or not ok or not math.isfinite(v) or v <= 0:
        kind = "a positive integer" if integer else "a finite number > 0"
        raise _bad(key, f"must be {kind}, got {v!r}")


def _nonneg(key: str, v, upper: float | None = None):
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise _bad(key, f"must be a finite number >= 0, got {v!r}")
    if upper is not None and v >= upper:
        raise _bad(key, f"must be < {upper:g}, got {v!r}")


def _one_of(key: str, v, allowed) -> None:
    if v not in allowed:
        raise _bad(key, f"must be one of {', '.join(map(str, allowed))}, got {v!r}")


def _rates(key: str, v) -> float | tuple[float, ...]:
    vals = list(v) if isinstance(v, list | tuple) else [v]
    if not vals:
        raise _bad(key, "needs at least one learning rate")
    for x in vals:
        _positive(key, x)
    return tuple(float(x) for x in vals) if isinstance(v, list | tuple) else float(v)


def layer_learning_rates(param_names: list[str], lr: float | list[float]) -> dict[str, float]:
    """Per-parameter learning rates from one rate or one rate per layer.

    Parameter ``W_k`` and ``b_k`` both get ``lr[k-1]`` (the paper's per-layer rates).
    """
    if isinstance(lr, int | float):
        if lr <= 0:
            raise ConfigError(f"learning rate must be > 0, got {lr}", key="optimizer.lr")
        return {n: float(lr) for n in param_names}
    if not all(n[:1] in "Wb" and n[1:].isdigit() for n in param_names):
        raise ConfigError(
            "per-layer learning rates need circuit parameters (W1, b1, ...); give one rate",
            key="optimizer.lr",
        )
    layers = sorted({int(n[1:]) for n in param_names})
    lr = list(lr)
    if len(lr) != len(layers):
        raise ConfigError(
            f"needs one learning rate per layer ({len(layers)}), got {len(lr)}", key="optimizer.lr"
        )
    if any(v <= 0 for v in lr):
        raise ConfigError("learning rates must be > 0", key="optimizer.lr")
    return {n: float(lr[layers.index(int(n[1:]))]) for n in param_names}


@dataclass(frozen=True)
class DataSpec:
    """Dataset, subsets (``None``: all) and batching."""

    dataset: str
    train_subset: int | None = None
    test_subset: int | None = None
    validation_subset: int | None = None
    augment: bool = True
    pad_to: int | None = None
    batch_size: int = 128
    eval_batch_size: int = 1000

    def __post_init__(self):
        for k in ("train_subset", "test_subset", "validation_subset", "pad_to"):
            _positive(k, getattr(self, k), integer=True, allow_none=True)
        _positive("batch_size", self.batch_size, integer=True)
        _positive("eval_batch_size", self.eval_batch_size, integer=True)


@dataclass(frozen=True)
class CircuitSpec:
    """A catalog circuit and its overrides (``None``: the file's value)."""

    name: str
    width: float = 1.0
    gains: tuple[float, ...] | None = None
    pool: str | None = None
    depth: int | None = None

    def __post_init__(self):
        _positive("circuit.width", self.width)
        if self.gains is not None:
            for g in self.gains:
                _positive("circuit.gains", g)
        if self.pool is not None:
            _one_of("circuit.pool", self.pool, ("max", "avg", "none"))
        _positive("circuit.depth", self.depth, integer=True, allow_none=True)


@dataclass(frozen=True)
class RecurrentModelSpec:
    """A recurrent fixed-point model of the earlier EqProp projects (``model.*``)."""

    name: str
    hidden: int = 256
    alpha: float = 0.5
    symmetric: bool = True
    spectral_cap: float | None = None
    cost: str = "ce"
    tol: float = 1e-4

    def __post_init__(self):
        _positive("model.hidden", self.hidden, integer=True)
        _positive("model.alpha", self.alpha)
        _positive("model.spectral_cap", self.spectral_cap, allow_none=True)
        _one_of("model.cost", self.cost, ("ce", "mse"))
        _positive("model.tol", self.tol)


@dataclass(frozen=True)
class RuleSpec:
    """The learning rule (``beta is None``: the rule's default; the rule checks the rest)."""

    name: str
    beta: float | None = None
    iterations: int = 15
    points: int = 4
    homeostasis: float = 0.0
    temperature: float = 0.0

    def __post_init__(self):
        _positive("rule.beta", self.beta, allow_none=True)
        _positive("rule.iterations", self.iterations, integer=True)
        _positive("rule.points", self.points, integer=True)
        _nonneg("rule.homeostasis", self.homeostasis)
        _nonneg("rule.temperature", self.temperature)


@dataclass(frozen=True)
class RelaxationSpec:
    """The free phase: iterations and schedule (asynchronous even/odd or synchronous)."""

    free_iterations: int = 60
    schedule: str = "async"

    def __post_init__(self):
        _positive("relaxation.free_iterations", self.free_iterations, integer=True)
        _one_of("relaxation.schedule", self.schedule, ("async", "sync"))


@dataclass(frozen=True)
class OptimizerSpec:
    """The optimizer and its learning-rate schedule (see ``learning.make_optimizer``).

    ``lr`` / ``adam_lr``: one rate, or one per layer (tuple); both are multiplied by
    ``lr_scale``.
    """

    name: str
    lr: float | tuple[float, ...]
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    eta_min: float = 2e-6
    adam_lr: float | tuple[float, ...] = 1e-3
    nesterov: bool = True
    ns_steps: int = 5
    spectral_cap: float | None = None
    rank_frac: float = 0.25
    dion_threshold: int = 50_000
    damping: float = 1e-2
    kfac_decay: float = 0.95
    lr_scale: float = 1.0

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise _bad("optimizer.name", f"unknown optimizer {self.name!r}; known: "
                       f"{', '.join(OPTIMIZERS)}")  # fmt: skip
        object.__setattr__(self, "lr", _rates("optimizer.lr", self.lr))
        object.__setattr__(self, "adam_lr", _rates("optimizer.adam_lr", self.adam_lr))
        _nonneg("optimizer.momentum", self.momentum, upper=1.0)
        _nonneg("optimizer.weight_decay", self.weight_decay)
        _one_of("optimizer.schedule", self.schedule, ("cosine", "constant"))
        _positive("optimizer.eta_min", self.eta_min)
        _positive("optimizer.ns_steps", self.ns_steps, integer=True)
        if self.spectral_cap is not None:
            _nonneg("optimizer.spectral_cap", self.spectral_cap)
        _positive("optimizer.rank_frac", self.rank_frac)
        _positive("optimizer.dion_threshold", self.dion_threshold, integer=True)
        _positive("optimizer.damping", self.damping)
        _nonneg("optimizer.kfac_decay", self.kfac_decay, upper=1.0)
        _positive("optimizer.lr_scale", self.lr_scale)

    def rates(self, names: list[str], adam: bool = False) -> dict[str, float]:
        """Per-parameter rates (``layer_learning_rates``) times ``lr_scale``."""
        value = self.adam_lr if adam else self.lr
        value = list(value) if isinstance(value, tuple) else value
        return {k: v * self.lr_scale for k, v in layer_learning_rates(names, value).items()}


@dataclass(frozen=True)
class HardwareSpec:
    """The hardware profile (``None``: software, the ideal simulator)."""

    profile: str | None = None


@dataclass(frozen=True)
class RunSpec:
    """One training run, whole (see module docstring)."""

    study: str
    tier: str
    run_id: str
    seed: int
    epochs: int
    data: DataSpec
    rule: RuleSpec
    relaxation: RelaxationSpec
    optimizer: OptimizerSpec
    hardware: HardwareSpec
    circuit: CircuitSpec | None = None
    model: RecurrentModelSpec | None = None
    dtype: str = "float32"
    backend: str = "auto"
    device: str | None = None
    threads: int | None = None
    checkpoint_minutes: float = 10.0
    measure_memory: bool = False
    variant: str | None = None

    def __post_init__(self):
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise _bad("seed", f"must be an integer >= 0, got {self.seed!r}")
        _positive("epochs", self.epochs, integer=True)
        _one_of("dtype", self.dtype, ("float32", "float64"))
        _one_of("backend", self.backend, ("auto", "reference", "torch", "numba"))
        _positive("threads", self.threads, integer=True, allow_none=True)
        _positive("checkpoint_minutes", self.checkpoint_minutes)
        if (self.circuit is None) == (self.model is None):
            raise _bad("circuit.name", "set exactly one of circuit.name and model.name")
        if self.model is not None and self.hardware.profile is not None:
            raise _bad("profile", "hardware profiles apply to crossbar circuits, not to "
                       "recurrent models")  # fmt: skip

    @classmethod
    def from_flat(cls, values: Mapping[str, Any], *, path=None, study: str = "",
                  tier: str = "", run_id: str | None = None) -> RunSpec:  # fmt: skip
        """Build from resolved flat dotted keys (a study run's ``as_dict()``); a bad value
        raises :class:`ConfigError` naming ``path`` and the key."""
        v = dict(values)

        def pick(spec, prefix: str, **renames):
            out = {}
            for f in fields(spec):
                key = renames.get(f.name, prefix + f.name)
                if key in v:
                    out[f.name] = v[key]
            return out

        try:
            circuit = model = None
            if v.get("model.name") is not None:
                model = RecurrentModelSpec(**pick(RecurrentModelSpec, "model."))
            elif v.get("circuit.name") is not None:
                c = pick(CircuitSpec, "circuit.")
                if c.get("gains") is not None:
                    c["gains"] = tuple(c["gains"])
                circuit = CircuitSpec(**c)
            profile = v.get("profile")
            threads = v.get("threads")
            return cls(
                study=study,
                tier=tier,
                run_id=run_id or "run",
                seed=v.get("seed", 0),
                epochs=v.get("epochs", 1),
                data=DataSpec(**pick(DataSpec, "")),
                rule=RuleSpec(**pick(RuleSpec, "rule.")),
                relaxation=RelaxationSpec(**pick(RelaxationSpec, "relaxation.")),
                optimizer=OptimizerSpec(**pick(OptimizerSpec, "optimizer.")),
                hardware=HardwareSpec(None if profile in (None, "none") else profile),
                circuit=circuit,
                model=model,
                dtype=v.get("dtype", "float32"),
                backend=v.get("backend", "auto"),
                device=v.get("device"),
                threads=None if threads in (None, "auto") else threads,
                checkpoint_minutes=v.get("checkpoint_minutes", 10.0),
                measure_memory=v.get("measure_memory", False),
                variant=v.get("variant"),
            )
        except ConfigError as exc:
            raise ConfigError(exc.message,
                              path=path, key=exc.key) from None  # fmt: skip
        except TypeError as exc:  # a missing required field
            raise ConfigError(f"incomplete run configuration: {exc}", path=path) from None
