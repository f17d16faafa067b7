"""How much memory a run needs, estimated from its description before any array exists.

A width or a hidden size that needs terabytes must be refused when the run is checked (one
clear line with the estimate), not end in ``MemoryError`` after allocating. The estimate
counts, from the circuit description (or the recurrent model's sizes) and the run's spec:

* parameters: the float64 initial values, the backend's copy in the run's dtype, one
  update of the same size, and the optimizer's state (momentum, Adam moments, K-FAC factors);
* node states: every layer's state (and a pooled convolution's 2x2 pre-pool map) for a
  batch, times the phases a rule keeps at once (free and nudged equilibria plus a work
  copy), or for an evaluation batch, whichever is larger;
* hardware: with a non-ideal profile, two devices per weight (a differential pair), each with
  its conductance and about fifteen per-device arrays (steps, bounds, non-linearity, stuck
  level, drift state) in float64.

It is an estimate (Python objects, BLAS workspace and the dataset are not counted) meant to
catch sizes that cannot run, not to budget ones that can. The memory available is
``MemAvailable`` of ``/proc/meminfo`` (capped by a cgroup v2 limit and ``RLIMIT_AS`` where
set; ``os.sysconf`` elsewhere); ``psutil`` is not needed.
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

from analogebl.errors import ConfigError

__all__ = [
    "MemoryEstimate",
    "available_bytes",
    "check_fits",
    "check_run_memory",
    "estimate_run",
    "format_bytes",
]

# optimizer state per parameter element (buffers of the parameter's size)
_OPTIMIZER_SLOTS = {
    "sgd": 1,
    "adam": 2,
    "adamw": 2,
    "muon": 1,
    "smep": 2,
    "local_ep": 2,
    "natural_ep": 1,
    "sdmep": 2,
}
_PHASES = 4  # free + nudged (+ a second nudge or a copy) + a work buffer, per batch
_DEVICE_ARRAYS = 16  # float64 arrays per device of a crossbar (hardware/devices.py)


def format_bytes(n: float) -> str:
    """``n`` bytes in words (``512 B``, ``3.2 GB``, ``4.1 TB``; powers of 1000)."""
    if n >= 10**21:  # beyond exabytes (and beyond float range, for a width of 1e300)
        return f"10^{len(str(int(n))) - 1} B"
    for unit in ("B", "kB", "MB", "GB", "TB", "PB", "EB"):
        if abs(n) < 1000 or unit == "EB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} EB"  # pragma: no cover - the loop returns


def _meminfo_available(path: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((root / "memory.current").read_text().strip())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def available_bytes() -> int | None:
    """Memory a new allocation can use now, in bytes (``None``: unknown).

    ``MemAvailable`` from ``/proc/meminfo`` (else free pages from ``os.sysconf``), capped by
    the cgroup v2 limit (``memory.max - memory.current``) and by ``RLIMIT_AS`` where set.
    """
    found = [_meminfo_available()]
    if found[0] is None:
        try:
            found = [os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
        except (OSError, ValueError, AttributeError):
            found = []
    found.append(_cgroup_available())
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            found.append(soft)
    except (OSError, ValueError):
        pass
    found = [v for v in found if v is not None and v > 0]
    return min(found) if found else None


def check_fits(
    needed: int,
    what: str,
    *,
    path=None,
    key: str | None = None,
    available: int | None = None,
    detail: str = "",
) -> None:
    """Refuse (:class:`ConfigError` naming ``path`` and ``key``) when ``needed`` bytes exceed
    the memory available (``available``, default :func:`available_bytes`; unknown: pass)."""
    available = available_bytes() if available is None else available
    if available is not None and needed > available:
        raise ConfigError(
            f"{what} needs about {format_bytes(needed)} of memory{detail}, but "
            f"{format_bytes(available)} is available; make it smaller",
            path=path,
            key=key,
        )


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs, by part (see module docstring); ``key``: the setting that drives
    the largest part (what to lower)."""

    parts: dict[str, int] = field(default_factory=dict)
    key: str | None = None

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        """``parameters 1.2 TB, states 3.0 GB, ...`` (largest first)."""
        items = sorted(self.parts.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{k} {format_bytes(v)}" for k, v in items if v)


def _circuit_sizes(circuit) -> tuple[list[tuple[str, int]], list[int], list[tuple[int, int]]]:
    """(parameter name, elements), per-layer state elements (a pooled conv layer with its
    pre-pool map), and per weight its K-FAC factor sides (fan in, fan out)."""
    params = [(k, math.prod(s)) for k, s in circuit.parameter_shapes().items()]
    states = [layer.size for layer in circuit.layers]
    factors = []
    for c in circuit.couplings:
        post = circuit.layers[c.post]
        if getattr(c.pool, "value", c.pool) != "none":
            states[c.post] += 4 * post.size
        factors.append((circuit.fan_in(c), post.shape[0]))
    return params, states, factors


def _model_sizes(name: str, n_in: int, hidden: int, n_out: int, ffn_mult: int = 4):
    """The recurrent models' parameters (``models/recurrent.py``) and states."""
    h = hidden
    params = [("Wx", n_in * h), ("b", h), ("Wo", h * n_out), ("bo", n_out)]
    if name == "modern_eqprop":
        f = ffn_mult * h
        params += [("W1", h * f), ("b1", f), ("W2", f * h), ("ln", 2 * h)]
        states = [n_in, h, f, n_out]
    else:
        params += [("W", h * h), ("b2", h)]
        states = [n_in, h, h * (4 if name == "toroidal_mlp" else 1), n_out]
    return params, states, [(n_in, h), (h, h), (h, n_out)]


def estimate_run(
    spec,
    circuit=None,
    *,
    n_in: int | None = None,
    num_classes: int | None = None,
    profile=None,
    n_train: int | None = None,
    n_eval: int | None = None,
) -> MemoryEstimate:
    """Estimate the bytes of run ``spec`` (a :class:`analogebl.spec.RunSpec`).

    Parameters
    ----------
    spec : RunSpec
        The run (batch sizes, dtype, optimizer, the circuit or model).
    circuit : Circuit, optional
        The loaded circuit description (no arrays); needed when ``spec.circuit`` is set.
    n_in, num_classes : int, optional
        Input features and classes of the dataset (a recurrent model's sizes).
    profile : HardwareProfile, optional
        The loaded profile; a non-ideal one adds the devices' state.
    n_train, n_eval : int, optional
        Training and evaluation images: a batch holds at most that many.
    """
    item = 8 if spec.dtype == "float64" else 4
    if spec.model is not None:
        if n_in is None or num_classes is None:
            raise TypeError("a recurrent model's estimate needs n_in and num_classes")
        params, states, factors = _model_sizes(
            spec.model.name, n_in, spec.model.hidden, num_classes
        )
        key = "model.hidden"
    else:
        if circuit is None:
            raise TypeError("a circuit run's estimate needs the loaded circuit")
        params, states, factors = _circuit_sizes(circuit)
        key = "circuit.width"
    n_par = sum(n for _, n in params)
    weights = sum(n for k, n in params if not k.startswith("b"))
    opt = spec.optimizer.name
    parts = {
        "parameters": n_par * (8 + item * 2),  # float64 init + working copy + one update
        "optimizer state": n_par * item * _OPTIMIZER_SLOTS.get(opt, 2),
    }
    if opt == "natural_ep":
        parts["optimizer state"] += sum(a * a + b * b for a, b in factors) * item
    train = min(spec.data.batch_size, n_train or spec.data.batch_size) * _PHASES
    evaluate = min(spec.data.eval_batch_size, n_eval or spec.data.eval_batch_size)
    parts["node states"] = sum(states) * max(train, evaluate) * item
    if profile is not None and not profile.is_ideal:
        parts["hardware devices"] = weights * 2 * _DEVICE_ARRAYS * 8
    if parts["node states"] > parts["parameters"] + parts["optimizer state"]:
        key = "batch_size" if train >= evaluate else "eval_batch_size"
    return MemoryEstimate(parts, key)


def check_run_memory(
    spec,
    circuit=None,
    *,
    n_in: int | None = None,
    num_classes: int | None = None,
    profile=None,
    n_train: int | None = None,
    n_eval: int | None = None,
    path=None,
    available: int | None = None,
) -> MemoryEstimate:
    """:func:`estimate_run`, refused with the estimate (needed vs available, by part) when it
    exceeds :func:`available_bytes`; returns the estimate otherwise."""
    est = estimate_run(
        spec,
        circuit,
        n_in=n_in,
        num_classes=num_classes,
        profile=profile,
        n_train=n_train,
        n_eval=n_eval,
    )
    check_fits(
        est.total,
        f"run {spec.run_id!r}",
        path=path,
        key=est.key,
        available=available,
        detail=f" ({est.describe()})",
    )
    return est
