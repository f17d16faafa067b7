"""② Circuit descriptions: layers, couplings (dense, conv + pool), biases, catalog loading."""

from analogebl.circuit.description import (
    Activation,
    Circuit,
    Coupling,
    CouplingKind,
    Layer,
    Pool,
)
from analogebl.circuit.loader import circuit_from_dict, load_circuit

__all__ = [
    "Activation",
    "Circuit",
    "Coupling",
    "CouplingKind",
    "Layer",
    "Pool",
    "circuit_from_dict",
    "load_circuit",
]
