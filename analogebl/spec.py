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
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from analogebl.errors import ConfigError

__all__ = [
    "DTYPES",
    "HALF_DTYPES",
    "NUDGES",
    "OPTIMIZERS",
    "SCHEDULES",
    "CircuitSpec",
    "DataSpec",
    "HardwareSpec",
    "OptimizerSpec",
    "RecurrentModelSpec",
    "RelaxationSpec",
    "RuleSpec",
    "INT64_MAX",
    "Range",
    "RunSpec",
    "check_device",
    "check_dtype",
    "layer_learning_rates",
    "section_defaults",
]

#: Relaxation schedules (``analogebl.plan.Plan.groups``): asynchronous even/odd groups, the
#: same groups in backward order, synchronous (Jacobi).
SCHEDULES = ("async", "async_backward", "sync")
#: How a nudged output moves in one update (``RelaxationMixin.relax``): its exact
#: minimiser, or one gradient step as the paper's published code.
NUDGES = ("exact", "step")

#: The relaxation's floating-point formats (a backend's ``dtype``). The 16-bit ones run on the
#: torch backend only: states and coupling products in 16 bit, sums (correlations, energies,
#: dot products) and the parameters in float32 (:mod:`analogebl.backends.torch`).
DTYPES = ("float32", "float64", "float16", "bfloat16")
#: The 16-bit formats of :data:`DTYPES`.
HALF_DTYPES = ("float16", "bfloat16")

#: every optimizer ``learning.make_optimizer`` builds (the one list; learning re-exports it)
OPTIMIZERS = ("sgd", "adam", "adamw", "muon", "smep", "local_ep", "natural_ep", "sdmep")


INT64_MAX = 2**63 - 1  #: the largest integer a run file (HDF5, int64) can record


@dataclass(frozen=True)
class Range:
    """The accepted values of one numeric field: the one check every schema uses.

    A value must be a number (``bool`` is not), NaN never passes, ``inf`` only with
    ``infinite`` (a bound that means "off", such as ``g_max_S = inf``), an integer field takes
    only integers (at most :data:`INT64_MAX`, what a run file records), and the value must
    lie between ``lo`` and ``hi`` (open ends where ``lo_open`` / ``hi_open``).
    """

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    infinite: bool = False

    def describe(self) -> str:
        """What is accepted, in words (``a finite number > 0``, ``an integer in 0..9``)."""
        if self.integer:
            # integer ranges are closed: lo..hi
            hi = min(self.hi, INT64_MAX)
            if self.lo == -math.inf:
                return f"an integer <= {hi:.0f}"
            if hi == INT64_MAX:
                return f"an integer in {self.lo:.0f}..2**63-1"
            return f"an integer in {self.lo:.0f}..{hi:.0f}"
        kind = "a number (inf allowed)" if self.infinite else "a finite number"
        lo, hi = self.lo != -math.inf, self.hi != math.inf
        if lo and hi:
            return (f"{kind} in {'(' if self.lo_open else '['}{self.lo:g}, "
                    f"{self.hi:g}{')' if self.hi_open else ']'}")  # fmt: skip
        if lo:
            return f"{kind} {'>' if self.lo_open else '>='} {self.lo:g}"
        if hi:
            return f"{kind} {'<' if self.hi_open else '<='} {self.hi:g}"
        return kind

    def accepts(self, v: Any) -> bool:
        """Whether ``v`` is a value of this range (see the class docstring)."""
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        if self.integer:
            if not isinstance(v, int) or not -INT64_MAX - 1 <= v <= INT64_MAX:
                return False
        else:
            try:
                v = float(v)
            except OverflowError:  # an integer beyond float range
                return False
            if math.isnan(v) or (math.isinf(v) and not self.infinite):
                return False
        if v < self.lo or (self.lo_open and v == self.lo):
            return False
        return not (v > self.hi or (self.hi_open and v == self.hi))

    def check(self, key: str, v: Any, path=None, allow_none: bool = False, hint: str = ""):
        """``v`` itself (a float field's int as float); else :class:`ConfigError` naming
        ``path``, ``key`` and the accepted range (followed by ``hint``)."""
        if v is None and allow_none:
            return None
        if not self.accepts(v):
            shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:30] + f"... ({len(repr(v))} chars)"
            raise ConfigError(f"must be {self.describe()}{hint}, got {shown}", path=path, key=key)
        return v if self.integer else float(v)


POSITIVE = Range(0.0, lo_open=True)  #: a finite number > 0
NONNEG = Range(0.0)  #: a finite number >= 0
FRACTION = Range(0.0, 1.0)  #: in [0, 1]
COUNT = Range(1, integer=True)  #: an integer >= 1
SEED = Range(0, integer=True)  #: an integer in 0..INT64_MAX


def _check(key: str, v, rng: Range, allow_none: bool = False):
    return rng.check(key, v, allow_none=allow_none)


def _bad(key: str, message: str):
    return ConfigError(message, key=key)


def _positive(key: str, v, integer: bool = False, allow_none: bool = False):
    return _check(key, v, COUNT if integer else POSITIVE, allow_none)


def _text(key: str, v, allow_none: bool = False) -> None:
    if not (isinstance(v, str) or (v is None and allow_none)):
        raise _bad(key, f"must be a string, got {v!r}")


def _one_of(key: str, v, allowed) -> None:
    if not isinstance(v, str) or v not in allowed:
        raise _bad(key, f"must be one of {', '.join(map(str, allowed))}, got {v!r}")


def _rates(key: str, v) -> float | tuple[float, ...]:
    vals = list(v) if isinstance(v, list | tuple) else [v]
    if not vals:
        raise _bad(key, "needs at least one learning rate")
    for x in vals:
        _positive(key, x)
    return tuple(float(x) for x in vals) if isinstance(v, list | tuple) else float(v)


_DEVICE = re.compile(r"cpu|cuda(:[0-9]{1,4})?")


def check_device(backend: str, device: str | None, key: str = "device") -> None:
    """``device`` names a device the ``backend`` runs on: ``None`` (the backend's default),
    ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; numba and the reference backend run on the CPU
    only. (Whether the machine has that GPU is checked by ``backends.check_device``.)"""
    if device is None:
        return
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise _bad(key, f"must be cpu, cuda or cuda:N, got {device!r}")
    if backend in ("numba", "reference") and device != "cpu":
        raise _bad(key, f"the {backend} backend runs on the CPU only, got device={device!r} "
                   "(use backend = \"torch\" for a GPU)")  # fmt: skip


def check_dtype(backend: str, dtype, key: str = "dtype") -> None:
    """``dtype`` is one of :data:`DTYPES` and ``backend`` runs it: a 16-bit dtype needs
    ``backend = "torch"`` named (``"auto"`` may pick numba, which has no 16-bit arithmetic)."""
    _one_of(key, dtype, DTYPES)
    if dtype in HALF_DTYPES and backend != "torch":
        raise _bad(
            key,
            f"{dtype} (16-bit relaxation) runs on the torch backend only, got backend "
            f'{backend!r}; set backend = "torch" or use float32/float64',
        )


def _validate(obj, prefix: str) -> None:
    """Check every field of a spec record that declares a :class:`Range` in its metadata
    (``field(metadata={"range": R, "none": True})``), naming ``prefix + field``."""
    for f in fields(obj):
        rng = f.metadata.get("range")
        if rng is not None:
            value = rng.check(prefix + f.name, getattr(obj, f.name),
                              allow_none=f.metadata.get("none", False))  # fmt: skip
            object.__setattr__(obj, f.name, value)


def _r(default, rng: Range, none: bool = False):
    """A dataclass field with its accepted range (and ``None`` allowed where ``none``);
    ``default`` ``MISSING``: a required field."""
    return field(default=default, metadata={"range": rng, "none": none})


def layer_learning_rates(param_names: list[str], lr: float | list[float]) -> dict[str, float]:
    """Per-parameter learning rates from one rate or one rate per layer.

    Parameter ``W_k`` and ``b_k`` both get ``lr[k-1]`` (the paper's per-layer rates).
    """
    if not isinstance(lr, list | tuple):
        lr = POSITIVE.check("optimizer.lr", lr)
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
    for v in lr:
        POSITIVE.check("optimizer.lr", v)
    return {n: float(lr[layers.index(int(n[1:]))]) for n in param_names}


@dataclass(frozen=True)
class DataSpec:
    """Dataset, subsets (``None``: all) and batching."""

    dataset: str
    train_subset: int | None = _r(None, COUNT, none=True)
    test_subset: int | None = _r(None, COUNT, none=True)
    validation_subset: int | None = _r(None, COUNT, none=True)
    augment: bool = True
    pad_to: int | None = _r(None, COUNT, none=True)
    batch_size: int = _r(128, COUNT)
    eval_batch_size: int = _r(1000, COUNT)

    def __post_init__(self):
        _text("dataset", self.dataset)
        _validate(self, "")


@dataclass(frozen=True)
class CircuitSpec:
    """A catalog circuit and its overrides (``None``: the file's value)."""

    name: str
    width: float = _r(1.0, POSITIVE)
    gains: tuple[float, ...] | None = None
    pool: str | None = None
    depth: int | None = _r(None, COUNT, none=True)

    def __post_init__(self):
        _text("circuit.name", self.name)
        _validate(self, "circuit.")
        if self.gains is not None:
            if not isinstance(self.gains, tuple | list) or not self.gains:
                raise _bad("circuit.gains", f"must be a list of numbers > 0, got {self.gains!r}")
            object.__setattr__(self, "gains", tuple(_positive("circuit.gains", g)
                                                    for g in self.gains))  # fmt: skip
        if self.pool is not None:
            _one_of("circuit.pool", self.pool, ("max", "avg", "none"))


@dataclass(frozen=True)
class RecurrentModelSpec:
    """A recurrent fixed-point model of the earlier EqProp projects (``model.*``)."""

    name: str
    hidden: int = _r(256, COUNT)
    alpha: float = _r(0.5, Range(0.0, 1.0, lo_open=True))
    symmetric: bool = True
    spectral_cap: float | None = _r(None, POSITIVE, none=True)
    cost: str = "ce"
    tol: float = _r(1e-4, POSITIVE)

    def __post_init__(self):
        _text("model.name", self.name)
        _validate(self, "model.")
        _one_of("model.cost", self.cost, ("ce", "mse"))


@dataclass(frozen=True)
class RuleSpec:
    """The learning rule (``beta is None``: the rule's default; the rule checks the rest)."""

    name: str
    beta: float | None = _r(None, POSITIVE, none=True)
    iterations: int = _r(15, COUNT)
    points: int = _r(4, COUNT)
    homeostasis: float = _r(0.0, NONNEG)
    temperature: float = _r(0.0, NONNEG)
    #: schedule of the rule's phases (None: the free phase's); the paper's Table-1 release
    #: ran EP phases "async_backward" and CL/CpL phases "sync"
    schedule: str | None = None
    #: how an EP-nudged output moves: "exact" minimiser or the published code's "step"
    nudge: str = "exact"

    def __post_init__(self):
        _text("rule.name", self.name)
        _validate(self, "rule.")
        if self.schedule is not None:
            _one_of("rule.schedule", self.schedule, SCHEDULES)
        _one_of("rule.nudge", self.nudge, NUDGES)


@dataclass(frozen=True)
class RelaxationSpec:
    """The free phase: iterations and schedule (asynchronous even/odd, the same groups in
    backward order, or synchronous; ``analogebl.plan.SCHEDULES``)."""

    free_iterations: int = _r(60, COUNT)
    schedule: str = "async"

    def __post_init__(self):
        _validate(self, "relaxation.")
        _one_of("relaxation.schedule", self.schedule, SCHEDULES)


@dataclass(frozen=True)
class OptimizerSpec:
    """The optimizer and its learning-rate schedule (see ``learning.make_optimizer``).

    ``lr`` / ``adam_lr``: one rate, or one per layer (tuple); both are multiplied by
    ``lr_scale``.
    """

    name: str
    lr: float | tuple[float, ...]
    momentum: float = _r(0.9, Range(0.0, 1.0, hi_open=True))
    weight_decay: float = _r(0.0, NONNEG)
    schedule: str = "cosine"
    eta_min: float = _r(2e-6, POSITIVE)
    adam_lr: float | tuple[float, ...] = 1e-3
    nesterov: bool = True
    ns_steps: int = _r(5, COUNT)
    spectral_cap: float | None = _r(None, NONNEG, none=True)
    rank_frac: float = _r(0.25, Range(0.0, 1.0, lo_open=True))
    dion_threshold: int = _r(50_000, COUNT)
    damping: float = _r(1e-2, POSITIVE)
    kfac_decay: float = _r(0.95, Range(0.0, 1.0, hi_open=True))
    lr_scale: float = _r(1.0, POSITIVE)

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise _bad("optimizer.name", f"unknown optimizer {self.name!r}; known: "
                       f"{', '.join(OPTIMIZERS)}")  # fmt: skip
        object.__setattr__(self, "lr", _rates("optimizer.lr", self.lr))
        object.__setattr__(self, "adam_lr", _rates("optimizer.adam_lr", self.adam_lr))
        _validate(self, "optimizer.")
        _one_of("optimizer.schedule", self.schedule, ("cosine", "constant"))

    def rates(self, names: list[str], adam: bool = False) -> dict[str, float]:
        """Per-parameter rates (``layer_learning_rates``) times ``lr_scale``."""
        value = self.adam_lr if adam else self.lr
        value = list(value) if isinstance(value, tuple) else value
        return {k: v * self.lr_scale for k, v in layer_learning_rates(names, value).items()}


@dataclass(frozen=True)
class HardwareSpec:
    """The hardware profile (``None``: software, the ideal simulator)."""

    profile: str | None = None

    def __post_init__(self):
        _text("profile", self.profile, allow_none=True)


@dataclass(frozen=True)
class RunSpec:
    """One training run, whole (see module docstring)."""

    study: str
    tier: str
    run_id: str
    seed: int = _r(MISSING, SEED)
    epochs: int = _r(MISSING, COUNT)
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
    threads: int | None = _r(None, COUNT, none=True)
    checkpoint_minutes: float = _r(10.0, POSITIVE)
    measure_memory: bool = False
    #: probe-batch size of the per-epoch gradient-fidelity probes (0: off)
    probes: int = _r(64, Range(0, integer=True))
    variant: str | None = None

    def __post_init__(self):
        _validate(self, "")
        _one_of("backend", self.backend, ("auto", "reference", "torch", "numba"))
        check_dtype(self.backend, self.dtype)
        check_device(self.backend, self.device)
        if (self.circuit is None) == (self.model is None):
            raise _bad("circuit.name", "set exactly one of circuit.name and model.name")
        if self.model is not None and self.dtype in HALF_DTYPES:
            raise _bad("dtype", f"{self.dtype}: 16-bit relaxation applies to crossbar circuits, "
                       "not to recurrent models (float32 or float64)")  # fmt: skip
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
                circuit = CircuitSpec(**pick(CircuitSpec, "circuit."))
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
                probes=v.get("probes", 64),
                variant=v.get("variant"),
            )
        except ConfigError as exc:
            raise ConfigError(exc.message,
                              path=path, key=exc.key) from None  # fmt: skip
        except TypeError as exc:  # a missing required field
            raise ConfigError(f"incomplete run configuration: {exc}", path=path) from None


def section_defaults() -> dict[str, Any]:
    """Dotted study key -> default, for every field of the rule, relaxation, optimizer,
    circuit, model and data sections that has one (``rule.nudge`` -> ``"exact"``).

    Used to compare a run file written before a key existed with today's configuration:
    a key added with the earlier behaviour as its default changes nothing.
    """
    out: dict[str, Any] = {}
    sections = (("rule.", RuleSpec), ("relaxation.", RelaxationSpec),
                ("optimizer.", OptimizerSpec), ("circuit.", CircuitSpec),
                ("model.", RecurrentModelSpec), ("", DataSpec))  # fmt: skip
    for prefix, cls in sections:
        for f in fields(cls):
            if f.default is not MISSING:
                out[prefix + f.name] = f.default
    return out
