"""Numba kernels of the device side of a crossbar: the line recursions of the decoupled IR-drop
model and the closed-form pulse update. Each is the same equation as a readable NumPy
function (:mod:`analogebl.hardware.parasitics`, :mod:`analogebl.hardware.devices`), which the
tests compare it with on random inputs; float64 throughout (conductances are ~1e-6 S with
steps of ~1e-9 S, and the IR model is calibrated to a few 1e-4).

The NumPy versions loop in Python over a line's positions and run one array operation per
step for all lines; here each step is one compiled loop over the lines (contiguous, so the
compiler vectorises it), and a pulse update is one pass over the devices with its Gaussian
draws taken from the caller's generator in the same order as NumPy's.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["column_ladders", "ladder_pair", "pulse_affine", "row_ladders"]

# error_model="numpy": 1/0 = inf (a line with nothing beyond it), as the NumPy reference.
_opts = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}


_CHUNK = 256  # lines per parallel task (each line's recursion is sequential)


@nb.njit(parallel=True, **_opts)
def ladder_pair(s, r_w, y_end, u_end):
    """``Y`` (2, L, N) of :func:`analogebl.hardware.parasitics._ladder_pair`:
    ``Y[0, 0] = y_end``, ``Y[0, k+1] = 1 / (r_w + 1 / (Y[0, k] + s_k))`` and, from the other
    end, ``Y[1, L-1] = u_end``, ``Y[1, k-1] = 1 / (r_w + 1 / (Y[1, k] + s_k))``. Parallel
    over blocks of lines; each value is computed by one thread, so the result does not
    depend on the thread count."""
    L, N = s.shape
    both = np.empty((2, L, N))
    for c in nb.prange((N + _CHUNK - 1) // _CHUNK):
        a = c * _CHUNK
        b = min(N, a + _CHUNK)
        y0 = np.full(b - a, y_end)
        y1 = np.full(b - a, u_end)
        for k in range(L):
            m = L - 1 - k
            both[0, k, a:b] = y0
            both[1, m, a:b] = y1
            if k + 1 < L:
                for n in range(a, b):
                    y0[n - a] = 1.0 / (1.0 / (y0[n - a] + s[k, n]) + r_w)
                    y1[n - a] = 1.0 / (1.0 / (y1[n - a] + s[m, n]) + r_w)
    return both


@nb.njit(parallel=True, **_opts)
def _running_fraction(s, Y, Z, forward):
    """``F[j] = run_j / (1 + Z_j / Y_j)`` with ``run`` the running product of
    ``1 / (s_m / Y_m + 1)`` over the positions before ``j`` (``forward``: from position 0;
    else from ``L - 1``)."""
    L, N = s.shape
    F = np.empty((L, N))
    for c in nb.prange((N + _CHUNK - 1) // _CHUNK):
        a = c * _CHUNK
        b = min(N, a + _CHUNK)
        run = np.ones(b - a)
        for step in range(L):
            j = step if forward else L - 1 - step
            for n in range(a, b):
                F[j, n] = run[n - a] / (1.0 + Z[j, n] / Y[j, n])
                run[n - a] = run[n - a] * (1.0 / (s[j, n] / Y[j, n] + 1.0))
    return F


@nb.njit(**_opts)
def row_ladders(s, r_w, g_rt):
    """``(E, Yr)`` of :func:`analogebl.hardware.parasitics._row_ladders`:
    ``E_0' = 1``, ``E_{j+1}' = E_j' / (1 + s_j / YL_j)``, ``E = E' / (1 + YR / YL)``,
    ``Yr = YL + YR``."""
    both = ladder_pair(s, r_w, g_rt, 0.0)
    YL, YR = both[0], both[1]
    return _running_fraction(s, YL, YR, True), YL + YR


@nb.njit(**_opts)
def column_ladders(q, r_w, g_ct):
    """``(t, Yc)`` of :func:`analogebl.hardware.parasitics._column_ladders`:
    ``t_{R-1}' = 1``, ``t_{i-1}' = t_i' / (1 + q_i / D_i)``, ``t = t' / (1 + U / D)``,
    ``Yc = U + D``."""
    both = ladder_pair(q, r_w, 0.0, g_ct)
    U, D = both[0], both[1]
    return _running_fraction(q, D, U, False), U + D


@nb.njit(**_opts)
def pulse_affine(
    G, n, hit, q, b, c2c_std, multiplicative, step_S, g_lo, g_hi, rng, out,
    write_std_S, noise, noise_out, age, age_out, drift, drift_out,
):  # fmt: skip
    """``n`` pulses of the affine device model in closed form (flat arrays; ``q``, ``b``,
    ``g_lo``, ``g_hi`` per device), as :meth:`analogebl.hardware.devices.DeviceArray.pulse`::

        mean = q^n G + b (1 - q^n) / (1 - q)            (G + n b when |1 - q| < 1e-12)
        std  = c2c sqrt(n) |(q - 1) q^(n-1) G + b q^(n-1)|              (multiplicative)
             = c2c step_S sqrt((1 - q^2n) / (1 - q^2))   (n when |1 - q^2| < 1e-12; additive)
        out  = clip(mean + std xi, g_lo, g_hi) where hit, else G

    with one ``xi ~ N(0, 1)`` per device (hit or not, in C order) when ``c2c_std > 0``; then,
    when ``write_std_S > 0``, a second pass of draws for the write noise,
    ``noise_out = write_std_S xi'`` where hit (else ``noise``); a pulsed device restarts its
    drift clock (``age_out = 0``, ``drift_out = 1`` where hit).
    """
    draw = c2c_std > 0.0
    for i in range(G.size):
        xi = rng.standard_normal() if draw else 0.0
        if not hit[i]:
            out[i] = G[i]
            continue
        qi, bi, g0, nf = q[i], b[i], G[i], float(n[i])
        qn = qi**nf
        if abs(1.0 - qi) < 1e-12:
            mean = g0 + nf * bi
        else:
            mean = qn * g0 + bi * (1.0 - qn) / (1.0 - qi)
        if draw:
            if multiplicative:
                qm = qi ** max(nf - 1.0, 0.0)
                std = c2c_std * np.sqrt(nf) * abs((qi - 1.0) * qm * g0 + bi * qm)
            else:
                q2 = qi * qi
                v = nf if abs(1.0 - q2) < 1e-12 else (1.0 - qn * qn) / (1.0 - q2)
                std = c2c_std * step_S * np.sqrt(v)
            mean = mean + std * xi
        lo, hi = g_lo[i], g_hi[i]
        out[i] = lo if mean < lo else (hi if mean > hi else mean)
    for i in range(G.size):
        fresh = write_std_S * rng.standard_normal() if write_std_S > 0.0 else 0.0
        h = hit[i]
        noise_out[i] = fresh if (h and write_std_S > 0.0) else noise[i]
        age_out[i] = 0.0 if h else age[i]
        drift_out[i] = 1.0 if h else drift[i]
