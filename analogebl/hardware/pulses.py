"""From a desired conductance change to pulse counts (``analog_devices.md`` sections 3.1-3.2).

* :func:`split_pair`: a differential pair ``w = (G+ - G-)/g_unit`` realises ``dG* = dw g_unit``
  by moving both devices half way (``dG+ = +dG*/2``, ``dG- = -dG*/2``); a unidirectional
  (PCM) pair only potentiates: ``G+`` when ``dG* > 0``, ``G-`` otherwise.
* :func:`pulse_counts`: ``n* = |dG|/Delta_s`` with the nominal (blind) step, rounded
  stochastically (``n = floor(n*) + Bernoulli(frac(n*))``, unbiased: ``E[n] Delta_s = |dG|``,
  so the many tiny EP updates do not fall into a dead zone), to nearest, or truncated;
  capped at ``max_pulses`` (``None``: no cap).
"""

from __future__ import annotations

import numpy as np

__all__ = ["pulse_counts", "split_pair"]


def split_pair(dg_S: np.ndarray, unidirectional: bool) -> tuple[np.ndarray, np.ndarray]:
    """Desired changes ``(dG+, dG-)`` of the two devices for a desired ``dG* = dG+ - dG-``."""
    if unidirectional:
        return np.maximum(dg_S, 0.0), np.maximum(-dg_S, 0.0)
    return 0.5 * dg_S, -0.5 * dg_S


def pulse_counts(
    dg_S: np.ndarray,
    step_S: float | np.ndarray,
    rounding: str,
    max_pulses: int | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Integer pulse counts ``n >= 0`` for ``|dG|`` with nominal step ``step_S``."""
    x = np.abs(dg_S) / step_S
    if rounding == "stochastic":
        base = np.floor(x)
        n = base + (rng.random(x.shape) < (x - base))
    elif rounding == "nearest":
        n = np.floor(x + 0.5)
    elif rounding == "truncate":
        n = np.floor(x)
    else:
        raise ValueError(f"rounding {rounding!r} makes no pulse counts")
    if max_pulses is not None:
        n = np.minimum(n, max_pulses)
    return n.astype(np.int64)
