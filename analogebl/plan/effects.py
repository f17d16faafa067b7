"""Hardware effects a backend applies during relaxation (the hooks a hardware profile fills).

Two effects touch the relaxation itself; everything else a profile models (conductance
levels, pulse responses, programming noise, faults, drift) acts on the parameters between
relaxations (``analogebl/training/updaters.py``).

* **State quantization** (DAC on the input, ADC on every other node): after each update of a
  layer, ``s <- q(s)`` with
  ``q(s) = lo + rint((clip(s, lo, hi) - lo) / step) * step``, ``step = (hi - lo)/(levels - 1)``
  (``rint`` rounds half to even). The input is quantized once per relaxation.
* **Read noise**: each read of a crossbar sees ``W + std * xi`` with ``xi ~ N(0, 1)``
  drawn from an explicit generator, per parameter (``std`` has the parameter's shape, in
  weight units; biases may have one too). ``resample`` says when ``xi`` is redrawn:
  ``"per_step"`` every relaxation iteration, ``"per_phase"`` once per relaxation call,
  ``"per_update"`` only when the caller asks (one draw shared by all phases of an update).
  One draw is shared by the examples of a batch (they relax as one array).

With neither set a backend computes nothing for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["READ_NOISE_RESAMPLE", "ReadNoise", "StateQuantizer"]

READ_NOISE_RESAMPLE = ("per_step", "per_phase", "per_update")


@dataclass(frozen=True)
class StateQuantizer:
    """Uniform quantizer of node states (an ADC/DAC of ``levels`` codes over ``[lo, hi]``).

    Parameters
    ----------
    levels : int
        Number of codes (``2**bits``), at least 2.
    lo, hi : float
        Range in state units (node voltage / read voltage); values outside saturate.
    """

    levels: int
    lo: float = 0.0
    hi: float = 1.0

    def __post_init__(self):
        if int(self.levels) != self.levels or self.levels < 2:
            raise ValueError(f"levels must be an integer >= 2, got {self.levels!r}")
        if not self.lo < self.hi:
            raise ValueError(f"need lo < hi, got [{self.lo}, {self.hi}]")

    @classmethod
    def from_bits(cls, bits: int, lo: float = 0.0, hi: float = 1.0) -> StateQuantizer:
        return cls(2 ** int(bits), lo, hi)

    @property
    def step(self) -> float:
        return (self.hi - self.lo) / (self.levels - 1)

    def __call__(self, s: np.ndarray) -> np.ndarray:
        """Reference NumPy quantizer (the equation in the module docstring)."""
        step = np.asarray(self.step, dtype=s.dtype)
        lo = np.asarray(self.lo, dtype=s.dtype)
        return lo + np.rint((np.clip(s, self.lo, self.hi) - lo) / step) * step


@dataclass(frozen=True)
class ReadNoise:
    """Read-noise description: per-parameter std arrays and when draws are renewed."""

    std: dict
    resample: str = "per_step"

    def __post_init__(self):
        if self.resample not in READ_NOISE_RESAMPLE:
            raise ValueError(
                f"resample must be one of {READ_NOISE_RESAMPLE}, got {self.resample!r}"
            )
        for k, v in self.std.items():
            if np.any(np.asarray(v) < 0):
                raise ValueError(f"read-noise std of {k} must be >= 0")
