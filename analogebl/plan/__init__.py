"""④ Plan: circuit + seed (+ hardware profile) -> named arrays, shapes, the even/odd partition
and the converters a backend runs.

Backends receive only a :class:`Plan`; they never import the circuit or hardware modules. A
hardware profile is compiled in here: its DAC/ADC become per-layer state quantizers
(``Plan.quantizers``, which every backend installs on its relaxation), and the plan keeps the
profile for the crossbars that will hold the parameters (``Plan.profile``).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from analogebl.circuit import Activation, Circuit, CouplingKind
from analogebl.spec import NUDGES, SCHEDULES

__all__ = ["NUDGES", "SCHEDULES", "CouplingPlan", "Plan", "build_plan", "derive_rng"]


def derive_rng(seed: int, path: str) -> np.random.Generator:
    """Generator seeded from ``(seed, object path)`` with :class:`numpy.random.SeedSequence`.

    Different objects (``"circuit/parameters"``, ``"data/order"``, ...) get independent
    streams from one study seed, and adding an object never changes another's stream.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(path.encode())]))


@dataclass(frozen=True)
class CouplingPlan:
    """Execution view of one coupling (pre layer ``pre`` -> post layer ``pre + 1``)."""

    name: str
    pre: int
    post: int
    kind: str  # "dense" | "conv"
    pool: str  # "max" | "avg" | "none"
    padding: int
    kernel_size: int


@dataclass(frozen=True)
class Plan:
    """Everything a backend needs to simulate a circuit.

    Attributes
    ----------
    layer_names, layer_shapes, activations
        Per layer, index 0 = input; shapes exclude the batch axis.
    couplings
        ``couplings[k-1]`` joins layer ``k-1`` and ``k``.
    bias_names
        ``bias_names[k]`` is the bias of layer ``k`` (``None`` for the input).
    parameters
        Initial parameters (float64, read-only), in circuit order.
    """

    circuit_name: str
    layer_names: tuple[str, ...]
    layer_shapes: tuple[tuple[int, ...], ...]
    activations: tuple[str, ...]
    couplings: tuple[CouplingPlan, ...]
    bias_names: tuple[str | None, ...]
    parameters: Mapping[str, np.ndarray]
    seed: int
    profile: Any = None  # the HardwareProfile compiled in (None: software)
    quantizers: tuple[Any, ...] | None = None  # per layer StateQuantizer | None

    @property
    def num_layers(self) -> int:
        return len(self.layer_shapes)

    @property
    def output(self) -> int:
        return self.num_layers - 1

    def free_layers(self, clamp_output: bool = False) -> tuple[int, ...]:
        last = self.output if clamp_output else self.output + 1
        return tuple(range(1, last))

    def groups(self, schedule: str, clamp_output: bool = False) -> tuple[tuple[int, ...], ...]:
        """Layer groups updated together, in order, in one iteration.

        ``async``: the free layers at even positions of the free list (s1, s3, ...) then
        those at odd positions (s2, s4, ...) — no two members of a group interact, so each
        half-step is an exact block update. ``async_backward``: the same two groups in the
        reverse order (s2, s4, ... first), i.e. the sequential order s4, s2, o, s3, s1 the
        paper's NeurIPS release (``ca7aa26``) used for its EP nudged phases; same fixed
        points. ``sync``: all free layers at once (Jacobi).
        """
        free = self.free_layers(clamp_output)
        if schedule == "async":
            return tuple(g for g in (free[0::2], free[1::2]) if g)
        if schedule == "async_backward":
            return tuple(g for g in (free[1::2], free[0::2]) if g)
        if schedule == "sync":
            return (free,)
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")

    def __repr__(self) -> str:
        shapes = " - ".join("x".join(map(str, s)) for s in self.layer_shapes)
        return f"Plan({self.circuit_name!r}: {shapes}, seed={self.seed})"


def build_plan(circuit: Circuit, seed: int = 0, profile=None, data_stats=None) -> Plan:
    """Turn a circuit and a seed into a :class:`Plan` (parameters drawn from ``seed``).

    ``profile``: a :class:`~analogebl.hardware.HardwareProfile` to compile in (its converters
    as state quantizers; the input DAC spans the data's pixel range, so ``data_stats`` =
    ``(mean, std)`` of the dataset's normalisation is needed when the DAC quantizes).
    """
    params = circuit.init_parameters(derive_rng(seed, "circuit/parameters"))
    for a in params.values():
        a.setflags(write=False)
    couplings = tuple(
        CouplingPlan(
            c.name,
            c.pre,
            c.post,
            c.kind.value,
            c.pool.value if c.kind is CouplingKind.CONV else "none",
            c.padding,
            c.kernel_size,
        )
        for c in circuit.couplings
    )
    bias_names = (None,) + tuple(circuit.bias_name(k) for k in range(1, len(circuit.layers)))
    acts = tuple(layer.activation.value for layer in circuit.layers)
    assert acts[0] == Activation.INPUT.value
    quantizers = None
    if profile is not None and not profile.is_ideal:
        mean, std = data_stats if data_stats is not None else (0.0, 1.0)
        qs = profile.state_quantizers(len(circuit.layers), mean, std)
        quantizers = None if qs is None else tuple(qs)
    return Plan(
        circuit.name,
        tuple(layer.name for layer in circuit.layers),
        tuple(layer.shape for layer in circuit.layers),
        acts,
        couplings,
        bias_names,
        MappingProxyType(params),
        seed,
        profile,
        quantizers,
    )
