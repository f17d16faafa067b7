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
* **Tiled reads** (a profile's ``array`` table): a coupling's crossbar is cut into tiles of
  at most ``tile_rows x tile_cols`` devices; a read of the coupling is the digital sum of
  its tiles' converted column outputs,
  ``T(s) = sum_t a_t(T_t(s))``, ``a_t(x) = q(clip(x, -i_max, i_max))``,
  where ``T_t`` reads only the rows of tile ``t`` (dense: a block of pre nodes; conv: a block
  of whole input channels, each ``k x k`` kernel kept in one tile), ``i_max`` is the column
  current limit in field units and ``q`` the ADC (with its noise and rounding, as above).
  The adjoint read ``T^*`` drives the columns and senses the rows, tile column block by
  column block (a conv's ``k x k`` products of one row are summed before conversion
  [assumed]). The bias is added digitally.
* **Node clamps** (diodes and amplifier, hidden layers): a hidden node settles at the
  minimiser of ``e(s) - h s`` with the piecewise-quadratic node co-content
  ``e(s) = s^2/(2A) + kappa_off/2 ((s - lo)^2 + (s - hi)^2)
  + (kappa_on - kappa_off)/2 (min(s - a, 0)^2 + max(s - b, 0)^2)``,
  ``a = lo - v_th``, ``b = hi + v_th``: the amplifier's gain ``A`` sets the linear slope,
  the two diodes' reverse leak ``kappa_off`` pulls toward their rails, and past a knee a
  diode conducts with ``kappa_on`` (conductances in units of the layer's unit weight). The
  minimiser is a soft clip: with ``c = 1/A + 2 kappa_off``, ``s0 = (h + kappa_off (lo +
  hi))/c``, ``s = clip(s0, a, b) + rho (s0 - clip(s0, a, b))``, ``rho = c/(c + kappa_on -
  kappa_off)``; ``A = 1``, no leak, no threshold and ``kappa_on = inf`` give ``clip(h, 0, 1)``.
  The energy uses ``e(s)`` in place of ``s^2/2``, so EP's theory is unchanged. (A hidden
  state may now dip below 0 past a soft lower knee; under a max-pool, whose block update
  descends the energy only for non-negative post states, the energy may then rise slightly
  in a step.)
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

import numba as nb
import numpy as np

__all__ = [
    "READ_NOISE_RESAMPLE",
    "fill_dither",
    "scaled_normal",
    "NodeClamp",
    "NudgeCurrent",
    "ReadNoise",
    "StateQuantizer",
    "TileReads",
]

READ_NOISE_RESAMPLE = ("per_step", "per_phase", "per_update")


@nb.njit(cache=True, nogil=True)
def fill_dither(dith, rng, noise, stochastic, step):
    """``dith = 0 + noise xi (+ (u - 1/2) step)`` over a flat float64 array: every normal,
    then every uniform, from ``rng`` in order. numba's generator methods are NumPy's
    algorithms on the same bit generator, so these are NumPy's numbers (at ~2.3 instead of
    ~8 ns per normal)."""
    if noise > 0.0:
        for i in range(dith.size):
            dith[i] = 0.0 + noise * rng.standard_normal()
    else:
        dith[:] = 0.0
    if stochastic:
        for i in range(dith.size):
            dith[i] += (rng.random() - 0.5) * step


@nb.njit(cache=True, nogil=True)
def _fill_scaled_normal(std, rng, out):
    for i in range(std.size):
        out[i] = std[i] * rng.standard_normal()


def scaled_normal(std, rng: np.random.Generator) -> np.ndarray:
    """``std * xi``, ``xi ~ N(0, 1)`` from ``rng`` in C order (float64): NumPy's numbers for
    ``std * rng.standard_normal(std.shape)``, drawn by a compiled loop (a read-noise draw)."""
    std = np.ascontiguousarray(std, dtype=np.float64)
    out = np.empty(std.shape)
    _fill_scaled_normal(std.reshape(-1), rng, out.reshape(-1))
    return out


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
        every normal first, then every uniform, each only when used: NumPy's numbers for
        ``0 + sigma rng.standard_normal(shape) + (rng.random(shape) - 1/2) step``, drawn by
        :func:`fill_dither`)."""
        d = np.empty(shape)
        fill_dither(d.reshape(-1), rng, float(self.noise_std), bool(self.stochastic), self.step)
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
class TileReads:
    """How one coupling's crossbar is read as tiles (module docstring).

    Parameters
    ----------
    row_splits : tuple of int
        Boundaries ``0 = r_0 < r_1 < ... = n`` of the tiles' row blocks over the pre axis
        (dense: flattened pre nodes; conv: input channels).
    col_splits : tuple of int
        Boundaries of the column blocks over the post axis (dense: post nodes; conv: output
        channels).
    forward, adjoint : StateQuantizer or None
        The ADC converting a tile's forward (post-layer field units) and adjoint
        (pre-layer field units) outputs; ``None``: exact.
    i_max : float
        Column-current limit in field units (``inf``: none).
    """

    row_splits: tuple[int, ...]
    col_splits: tuple[int, ...]
    forward: StateQuantizer | None = None
    adjoint: StateQuantizer | None = None
    i_max: float = math.inf

    def __post_init__(self):
        for name in ("row_splits", "col_splits"):
            b = tuple(int(x) for x in getattr(self, name))
            if len(b) < 2 or b[0] != 0 or any(y <= x for x, y in zip(b, b[1:], strict=False)):
                raise ValueError(f"{name} must rise strictly from 0, got {b}")
            object.__setattr__(self, name, b)
        if not self.i_max > 0:
            raise ValueError(f"i_max must be > 0, got {self.i_max!r}")

    @property
    def row_blocks(self) -> list[slice]:
        return [slice(a, b) for a, b in zip(self.row_splits, self.row_splits[1:], strict=False)]

    @property
    def col_blocks(self) -> list[slice]:
        return [slice(a, b) for a, b in zip(self.col_splits, self.col_splits[1:], strict=False)]


@dataclass(frozen=True)
class NodeClamp:
    """A hidden node's diode pair and amplifier (module docstring), state units.

    Parameters
    ----------
    gain : float
        Amplifier gain ``A`` (> 0): the slope of the linear region.
    kappa_off, kappa_on : float
        Diode conductance reverse-biased / conducting, in units of the layer's unit weight
        (``kappa_on = inf``: an ideal clamp).
    lo, hi : float
        The rails (clamp voltages / read voltage).
    v_th : float
        Diode threshold (volts / read voltage): the knees sit at ``lo - v_th``, ``hi + v_th``.
    """

    gain: float = 1.0
    kappa_off: float = 0.0
    kappa_on: float = math.inf
    lo: float = 0.0
    hi: float = 1.0
    v_th: float = 0.0

    def __post_init__(self):
        if not (self.gain > 0 and math.isfinite(self.gain)):
            raise ValueError(f"gain must be finite and > 0, got {self.gain!r}")
        if not (0 <= self.kappa_off < math.inf and self.kappa_on >= self.kappa_off):
            raise ValueError(
                f"need 0 <= kappa_off (finite) <= kappa_on, got {self.kappa_off!r}, "
                f"{self.kappa_on!r}"
            )
        if not self.lo - self.v_th < self.hi + self.v_th:
            raise ValueError("the clamp's knees must satisfy lo - v_th < hi + v_th")

    @property
    def hard(self) -> bool:
        """True when this is ``clip(h, 0, 1)`` exactly."""
        return (self.gain, self.kappa_off, self.kappa_on, self.lo, self.hi, self.v_th) == (
            1.0, 0.0, math.inf, 0.0, 1.0, 0.0,
        )  # fmt: skip

    @property
    def knees(self) -> tuple[float, float]:
        return self.lo - self.v_th, self.hi + self.v_th

    @property
    def c(self) -> float:
        """Curvature of the linear region, ``1/A + 2 kappa_off``."""
        return 1.0 / self.gain + 2.0 * self.kappa_off

    @property
    def rho(self) -> float:
        """Slope ratio past a knee, ``c / (c + kappa_on - kappa_off)`` (0: hard clip)."""
        extra = self.kappa_on - self.kappa_off
        return 0.0 if math.isinf(extra) else self.c / (self.c + extra)

    @property
    def shift(self) -> float:
        """``kappa_off (lo + hi)``: the leak's pull toward the rails' midpoint."""
        return self.kappa_off * (self.lo + self.hi)

    def __call__(self, h: np.ndarray) -> np.ndarray:
        """Reference NumPy minimiser (the soft clip of the module docstring)."""
        a, b = self.knees
        s0 = (h + self.shift) / self.c
        cl = np.clip(s0, a, b)
        return cl + self.rho * (s0 - cl)

    def co_content(self, s: np.ndarray) -> np.ndarray:
        """``e(s)`` elementwise (module docstring); ``inf`` beyond a knee of an ideal diode
        is taken as 0, because the minimiser never goes there."""
        a, b = self.knees
        e = s * s / (2 * self.gain)
        if self.kappa_off:
            e = e + 0.5 * self.kappa_off * ((s - self.lo) ** 2 + (s - self.hi) ** 2)
        extra = self.kappa_on - self.kappa_off
        if math.isfinite(extra) and extra:
            e = e + 0.5 * extra * (np.minimum(s - a, 0) ** 2 + np.maximum(s - b, 0) ** 2)
        return e


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
