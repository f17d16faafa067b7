"""Hardware effects a backend applies during relaxation (the hooks a hardware profile fills).

Two effects touch the relaxation itself; everything else a profile models (conductance
levels, pulse responses, programming noise, faults, drift) acts on the parameters between
relaxations (``analogebl/training/updaters.py``).

* **State quantization** (DAC on the input, ADC on every other node): after each update of a
  layer, ``s <- q(s)`` with
  ``q(s) = lo + rint((clip(s, lo, hi) - lo) / step) * step``, ``step = (hi - lo)/(levels - 1)``
  (``rint`` rounds half to even). The input is quantized once per relaxation. A converter
  with input-referred noise ``sigma`` and/or stochastic rounding converts
  ``q(s + sigma xi + (u - 1/2) step)`` instead, ``xi ~ N(0, 1)``, ``u ~ U[0, 1)`` (``u = 1/2``
  without stochastic rounding): the dither makes ``q`` round up with probability equal to the
  fractional code, ``E[q(s)] = s`` inside the range. The draws come from the converter
  generator the caller installs (NumPy, float64, so every backend sees the same numbers);
  a hidden node is clamped by its diodes before the ADC sees it.
* **Nudge current** (EP's nudged phases): the nudge enters the output node as a current
  ``I = beta (y - o)`` (state units: the current ``g_unit v_read`` per unit of field) from a
  source that saturates at ``+-i_max`` and has ``levels`` codes over ``[-i_max, i_max]``:
  ``o <- h + c(I)`` with ``c(I) = rint((clip(I, -i_max, i_max) + i_max) / step) step - i_max``
  (only the clip without levels). ``I`` is the current the exact minimiser
  ``o* = (h + beta y)/(1 + beta)`` draws, ``beta (y - o*)``, or, for the one-step nudge,
  ``beta (y - o)`` at the output's present value; with neither limit ``o`` is unchanged.
* **Read noise**: each read of a crossbar sees ``W + std * xi`` with ``xi ~ N(0, 1)``
  drawn from an explicit generator, per parameter (``std`` has the parameter's shape, in
  weight units; biases may have one too). ``resample`` says when ``xi`` is redrawn:
  ``"per_step"`` every relaxation iteration, ``"per_phase"`` once per relaxation call,
  ``"per_update"`` only when the caller asks (one draw shared by all phases of an update).
  One draw is shared by the examples of a batch (they relax as one array).

With neither set a backend computes nothing for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["READ_NOISE_RESAMPLE", "NudgeCurrent", "ReadNoise", "StateQuantizer"]

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
    noise_std : float
        Input-referred converter noise std, in state units (0: none).
    stochastic : bool
        Stochastic rounding (round up with probability equal to the fractional code).
    """

    levels: int
    lo: float = 0.0
    hi: float = 1.0
    noise_std: float = 0.0
    stochastic: bool = False

    def __post_init__(self):
        if int(self.levels) != self.levels or self.levels < 2:
            raise ValueError(f"levels must be an integer >= 2, got {self.levels!r}")
        if not self.lo < self.hi:
            raise ValueError(f"need lo < hi, got [{self.lo}, {self.hi}]")
        if not (self.noise_std >= 0 and np.isfinite(self.noise_std)):
            raise ValueError(f"noise_std must be finite and >= 0, got {self.noise_std!r}")

    @classmethod
    def from_bits(
        cls, bits: int, lo: float = 0.0, hi: float = 1.0, noise_std: float = 0.0,
        stochastic: bool = False,
    ) -> StateQuantizer:  # fmt: skip
        return cls(2 ** int(bits), lo, hi, float(noise_std), bool(stochastic))

    @property
    def random(self) -> bool:
        """True when a conversion draws random numbers (noise or stochastic rounding)."""
        return self.noise_std > 0 or self.stochastic

    def dither(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """``sigma xi + (u - 1/2) step`` of one conversion of an array of ``shape`` (float64;
        the normal draw first, then the uniform one, each only when used)."""
        d = np.zeros(shape)
        if self.noise_std > 0:
            d += self.noise_std * rng.standard_normal(shape)
        if self.stochastic:
            d += (rng.random(shape) - 0.5) * self.step
        return d

    @property
    def step(self) -> float:
        return (self.hi - self.lo) / (self.levels - 1)

    def __call__(self, s: np.ndarray) -> np.ndarray:
        """Reference NumPy quantizer (the equation in the module docstring)."""
        step = np.asarray(self.step, dtype=s.dtype)
        lo = np.asarray(self.lo, dtype=s.dtype)
        return lo + np.rint((np.clip(s, self.lo, self.hi) - lo) / step) * step


@dataclass(frozen=True)
class NudgeCurrent:
    """The nudging current source: saturation ``i_max`` and ``levels`` codes (module
    docstring), both in state units (``inf`` / ``None``: no limit).

    Parameters
    ----------
    i_max : float
        Saturation current, ``i_max_A / (g_unit v_read_V)``; positive, ``inf`` = none.
    levels : int or None
        Number of codes over ``[-i_max, i_max]`` (``2**bits``, at least 2; needs a finite
        ``i_max``); ``None``: continuous.
    """

    i_max: float = math.inf
    levels: int | None = None

    def __post_init__(self):
        if not self.i_max > 0:
            raise ValueError(f"i_max must be > 0, got {self.i_max!r}")
        if self.levels is not None:
            if int(self.levels) != self.levels or self.levels < 2:
                raise ValueError(f"levels must be an integer >= 2, got {self.levels!r}")
            if not math.isfinite(self.i_max):
                raise ValueError("a quantized nudge current needs a finite i_max")

    @property
    def grid(self) -> StateQuantizer | None:
        """The source's codes as a quantizer over ``[-i_max, i_max]`` (``None``: continuous);
        it saturates as it rounds."""
        return None if self.levels is None else StateQuantizer(self.levels, -self.i_max, self.i_max)

    def __call__(self, i: np.ndarray) -> np.ndarray:
        """Reference NumPy source ``c(I)`` (the equation in the module docstring)."""
        grid = self.grid
        return np.clip(i, -self.i_max, self.i_max) if grid is None else grid(i)


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
