"""Frozen description of a layered Hopfield crossbar circuit.

A circuit is a chain of layers ``s_0 (input) - s_1 - ... - s_L (output)``. Layer ``k`` and
``k+1`` are joined by one coupling (a crossbar); every non-input layer has a per-channel bias
(a current source). The energy (the circuit's co-content, up to the constant input term) is

.. math::

    E(\\theta; s) = \\sum_{k\\ge1} \\tfrac12\\lVert s_k\\rVert^2 - \\sum_{k\\ge1} b_k\\cdot s_k
                   - \\sum_{k\\ge1} \\langle s_k, T_k(s_{k-1}; W_k)\\rangle

with ``T`` a dense product or ``pool(conv3x3(W, s))`` (max- or average-pool 2x2 inside the
energy term). Hidden layers are clamped to [0, 1] (hard-sigmoid = diode clamps); the output
layer is linear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from analogebl.errors import ConfigError
from analogebl.tomlio import dumps

__all__ = ["Activation", "Circuit", "Coupling", "CouplingKind", "Layer", "Pool"]


class Activation(StrEnum):
    """What clamps a layer's node voltages."""

    INPUT = "input"  #: held at the data
    HARD_SIGMOID = "hard_sigmoid"  #: diode clamps to [0, 1]
    LINEAR = "linear"  #: unclamped (output layer)


class CouplingKind(StrEnum):
    """How a coupling maps its pre-synaptic layer to the post-synaptic one."""

    DENSE = "dense"  #: a full matrix product
    CONV = "conv"  #: a convolution, then a 2x2 pool (:class:`Pool`)


class Pool(StrEnum):
    """The 2x2 pooling inside a conv coupling's energy term."""

    MAX = "max"  #: max-pooling (argmax taken at the current pre-synaptic state)
    AVG = "avg"  #: average pooling
    NONE = "none"  #: no pooling: the post layer keeps the conv output's size


@dataclass(frozen=True)
class Layer:
    """One layer of node voltages; ``shape`` excludes the batch axis."""

    name: str
    shape: tuple[int, ...]
    activation: Activation

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Coupling:
    """A crossbar joining layer ``pre`` to layer ``pre + 1``.

    Parameters
    ----------
    name : str
        Parameter name of its weights (``W1``, ``W2``, ...).
    pre : int
        Index of the pre-synaptic layer; the post-synaptic layer is ``pre + 1``.
    kind : CouplingKind
        ``dense`` (weights ``(in, out)``, ``in`` = the pre layer flattened in C order) or
        ``conv`` (weights ``(C_out, C_in, k, k)``, stride 1, ``padding``, then ``pool``).
    gain : float
        Initialisation gain: ``W ~ U(-gain/sqrt(fan_in), +gain/sqrt(fan_in))``.
    """

    name: str
    pre: int
    kind: CouplingKind
    gain: float = 0.5
    kernel_size: int = 3
    padding: int = 1
    pool: Pool = Pool.NONE

    @property
    def post(self) -> int:
        return self.pre + 1


@dataclass(frozen=True)
class Circuit:
    """A validated chain circuit: layers, couplings and bias initialisation.

    Examples
    --------
    >>> from analogebl.circuit import load_circuit
    >>> c = load_circuit("dchn32", in_channels=1, num_classes=10, width=0.25)
    >>> [layer.shape for layer in c.layers][:2]
    [(1, 32, 32), (32, 16, 16)]
    """

    name: str
    layers: tuple[Layer, ...]
    couplings: tuple[Coupling, ...]
    bias_gain: float = 0.5
    description: str = field(default="", compare=False)

    def to_toml(self) -> str:
        """The resolved circuit (every layer and coupling, after overrides) as TOML text,
        recorded with results."""
        couplings = []
        for c in self.couplings:
            entry: dict[str, Any] = {
                "name": c.name,
                "pre": c.pre,
                "kind": c.kind.value,
                "gain": c.gain,
            }
            if c.kind is CouplingKind.CONV:
                entry.update(kernel_size=c.kernel_size, padding=c.padding, pool=c.pool.value)
            couplings.append(entry)
        layers = [
            {"name": layer.name, "shape": list(layer.shape), "activation": layer.activation.value}
            for layer in self.layers
        ]
        return dumps(
            {"name": self.name, "bias_gain": self.bias_gain, "layer": layers, "coupling": couplings}
        )

    def __post_init__(self):
        if len(self.layers) < 2:
            raise ConfigError(f"circuit '{self.name}' needs at least an input and an output layer")
        if self.layers[0].activation is not Activation.INPUT:
            raise ConfigError(f"circuit '{self.name}': layer 0 must be the input layer")
        if len(self.couplings) != len(self.layers) - 1:
            raise ConfigError(f"circuit '{self.name}': one coupling per adjacent layer pair")
        for k, c in enumerate(self.couplings):
            if c.pre != k:
                raise ConfigError(
                    f"circuit '{self.name}': coupling {c.name} must start at layer {k}"
                )
            if c.gain <= 0:
                raise ConfigError(f"gain of {c.name} must be > 0, got {c.gain}")
            pre, post = self.layers[c.pre], self.layers[c.post]
            if c.kind is CouplingKind.CONV:
                if len(pre.shape) != 3 or len(post.shape) != 3:
                    raise ConfigError(f"conv coupling {c.name} needs (C, H, W) layers")
                h, w = pre.shape[1:]
                h = h + 2 * c.padding - c.kernel_size + 1
                w = w + 2 * c.padding - c.kernel_size + 1
                if c.pool is not Pool.NONE:
                    if h % 2 or w % 2:
                        raise ConfigError(f"{c.name}: 2x2 pooling needs even sizes, got {h}x{w}")
                    h, w = h // 2, w // 2
                if post.shape[1:] != (h, w):
                    raise ConfigError(
                        f"{c.name}: output spatial size {(h, w)} != layer {post.name} "
                        f"{post.shape[1:]}"
                    )
        for layer in self.layers[1:-1]:
            if layer.activation is not Activation.HARD_SIGMOID:
                raise ConfigError(f"hidden layer {layer.name} must be hard_sigmoid")
        if self.layers[-1].activation is not Activation.LINEAR:
            raise ConfigError("the output layer must be linear")

    # ------------------------------------------------------------------ parameters
    def bias_name(self, k: int) -> str:
        return f"b{k}"

    def fan_in(self, c: Coupling) -> int:
        pre = self.layers[c.pre]
        if c.kind is CouplingKind.DENSE:
            return pre.size
        return pre.shape[0] * c.kernel_size**2

    def weight_shape(self, c: Coupling) -> tuple[int, ...]:
        pre, post = self.layers[c.pre], self.layers[c.post]
        if c.kind is CouplingKind.DENSE:
            return (pre.size, post.size)
        return (post.shape[0], pre.shape[0], c.kernel_size, c.kernel_size)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape, in circuit order (``W1, b1, W2, b2, ...``)."""
        out: dict[str, tuple[int, ...]] = {}
        for c in self.couplings:
            out[c.name] = self.weight_shape(c)
            out[self.bias_name(c.post)] = (self.layers[c.post].shape[0],)
        return out

    def init_parameters(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw initial parameters (float64).

        ``W ~ U(-g/sqrt(fan_in), g/sqrt(fan_in))`` with the coupling's gain ``g`` and
        ``b ~ U(-a, a)``, ``a = bias_gain/sqrt(fan_in)`` of the incoming coupling.
        """
        out: dict[str, np.ndarray] = {}
        for c in self.couplings:
            bound = c.gain / math.sqrt(self.fan_in(c))
            out[c.name] = rng.uniform(-bound, bound, size=self.weight_shape(c))
            a = self.bias_gain / math.sqrt(self.fan_in(c))
            out[self.bias_name(c.post)] = rng.uniform(-a, a, size=(self.layers[c.post].shape[0],))
        return out

    @property
    def num_classes(self) -> int:
        return self.layers[-1].size

    def __repr__(self) -> str:
        shapes = " - ".join("x".join(map(str, la.shape)) for la in self.layers)
        return f"Circuit({self.name!r}: {shapes})"
