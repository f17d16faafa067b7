"""Numba kernels of the CPU backend: im2col / col2im for 3x3 'same' convolutions and 2x2
pooling fused with the layout change around the GEMMs.

Layouts: states are NCHW (the public layout). A convolution is one GEMM on the *raw* layout
``(O, N, H, W)``::

    cols[(c, di, dj), (n, i, j)] = s[n, c, i + di - p, j + dj - p]     (0 outside)
    z_raw = W.reshape(O, C*k*k) @ cols                                   (forward)
    gcols = W.reshape(O, C*k*k).T @ z_raw                                (adjoint)
    g[n, c, i, j] = sum_{di,dj} gcols[(c, di, dj), (n, i + p - di, j + p - dj)]
    dW = z_raw @ cols.T                                                  (correlation)

Every kernel is a gather (each output element written by exactly one thread, no atomic or
cross-thread reductions), parallel over its outer loop, so results do not depend on the
number of threads. Max-pool ties resolve to the first maximum in row-major window order,
as in the reference backend.
"""

from __future__ import annotations

import os

import numba as nb
import numpy as np

from analogebl.plan.effects import fill_dither

#: the generator argument of a kernel call that draws nothing (converter without noise)
NO_DRAWS = np.random.default_rng(0)

# The kernels alternate with multi-threaded BLAS calls. OpenMP worker threads spin after each
# parallel region and fight BLAS's own spinning threads for the cores (measured: a GEMM
# followed by a 0.02 ms kernel took 9 ms instead of 2.8 ms on 2 cores). Numba's workqueue
# layer parks its threads instead; an explicit NUMBA_THREADING_LAYER still wins.
if "NUMBA_THREADING_LAYER" not in os.environ:
    nb.config.THREADING_LAYER = "workqueue"

_opts = {"cache": True, "nogil": True, "fastmath": False}


@nb.njit(parallel=True, **_opts)
def im2col(s, pad, k, cols):
    """``cols[(c*k + di)*k + dj, (n*Ho + i)*Wo + j] = s[n, c, i + di - pad, j + dj - pad]``.

    For 'same' convolutions (``k = 2*pad + 1``) each (tap, example) row segment is the input
    plane shifted by ``(di - pad)*W + (dj - pad)``: one contiguous copy, then the wrapped
    border column zeroed.
    """
    n_, c_, h_, w_ = s.shape
    ho = h_ + 2 * pad - k + 1
    wo = w_ + 2 * pad - k + 1
    zero = s.dtype.type(0)
    same = ho == h_ and wo == w_
    hw = h_ * w_
    for r in nb.prange(c_ * k * k):
        c = r // (k * k)
        di = (r // k) % k
        dj = r % k
        j0 = max(0, pad - dj)
        j1 = min(wo, w_ + pad - dj)
        i0 = max(0, pad - di)
        i1 = min(ho, h_ + pad - di)
        for n in range(n_):
            base = n * ho * wo
            if same:
                src = s[n, c].ravel()
                shift = (di - pad) * w_ + (dj - pad)
                lo = i0 * w_
                hi = i1 * w_
                a = min(max(lo, -shift), hw)
                b = max(min(hi, hw - shift), a)
                cols[r, base : base + a] = zero
                cols[r, base + a : base + b] = src[a + shift : b + shift]
                cols[r, base + b : base + hw] = zero
                for i in range(i0, i1):
                    for j in range(0, j0):
                        cols[r, base + i * w_ + j] = zero
                    for j in range(j1, w_):
                        cols[r, base + i * w_ + j] = zero
                continue
            for i in range(ho):
                si = i + di - pad
                row = base + i * wo
                if si < 0 or si >= h_:
                    cols[r, row : row + wo] = zero
                    continue
                cols[r, row : row + j0] = zero
                cols[r, row + j1 : row + wo] = zero
                off = dj - pad
                for j in range(j0, j1):
                    cols[r, row + j] = s[n, c, si, j + off]


@nb.njit(parallel=True, **_opts)
def col2im(gcols, pad, k, ho, wo, out):
    """``out[n, c, i, j] = sum_{di,dj} gcols[(c*k + di)*k + dj, (n*Ho + i + pad - di)*Wo
    + j + pad - dj]`` over the in-range terms (the adjoint of :func:`im2col`).

    For 'same' convolutions each tap adds one shifted contiguous run of ``gcols`` to the
    output plane, after zeroing (in the scratch ``gcols``) the border column whose shift
    wraps into the neighbouring row; those entries belong to structurally-zero columns.
    """
    n_, c_, h_, w_ = out.shape
    same = ho == h_ and wo == w_
    hw = h_ * w_
    planes = out.reshape((n_ * c_, hw))
    for t in nb.prange(n_ * c_):
        n = t // c_
        c = t % c_
        base = n * ho * wo
        plane = planes[t]
        plane[:] = 0
        for di in range(k):
            i0 = max(0, di - pad)
            i1 = min(h_, ho + di - pad)
            for dj in range(k):
                r = (c * k + di) * k + dj
                if same:
                    shift = (di - pad) * w_ + (dj - pad)
                    q0 = max(0, pad - di)  # valid output rows of this tap
                    q1 = min(ho, h_ + pad - di)
                    for oi in range(q0, q1):
                        row = base + oi * wo
                        for oj in range(0, pad - dj):
                            gcols[r, row + oj] = 0
                        for oj in range(w_ + pad - dj, wo):
                            gcols[r, row + oj] = 0
                    a = max(q0 * wo, -shift)
                    b = min(q1 * wo, hw - shift)
                    if b > a:
                        plane[a + shift : b + shift] += gcols[r, base + a : base + b]
                    continue
                j0 = max(0, dj - pad)
                j1 = min(w_, wo + dj - pad)
                off = pad - dj
                for i in range(i0, i1):
                    row = base + (i + pad - di) * wo + off
                    for j in range(j0, j1):
                        out[n, c, i, j] += gcols[r, row + j]


@nb.njit(parallel=True, **_opts)
def swap01(z, out):
    """``out[b, a, i, j] = z[a, b, i, j]``: raw (O, N, H, W) <-> NCHW, either way."""
    a_, b_, h_, w_ = z.shape
    for t in nb.prange(a_ * b_):
        a = t // b_
        b = t % b_
        for i in range(h_):
            for j in range(w_):
                out[b, a, i, j] = z[a, b, i, j]


@nb.njit(parallel=True, **_opts)
def pool_max_raw(z, out, idx):
    """2x2 max-pool of raw ``z[o, n, 2i + a, 2j + b]`` into NCHW ``out``; ``idx = 2a + b``."""
    o_, n_, _, _ = z.shape
    h2, w2 = out.shape[2], out.shape[3]
    for t in nb.prange(n_ * o_):
        n = t // o_
        o = t % o_
        for i in range(h2):
            for j in range(w2):
                best = z[o, n, 2 * i, 2 * j]
                arg = 0
                v = z[o, n, 2 * i, 2 * j + 1]
                if v > best:
                    best = v
                    arg = 1
                v = z[o, n, 2 * i + 1, 2 * j]
                if v > best:
                    best = v
                    arg = 2
                v = z[o, n, 2 * i + 1, 2 * j + 1]
                if v > best:
                    best = v
                    arg = 3
                out[n, o, i, j] = best
                idx[n, o, i, j] = arg


@nb.njit(parallel=True, **_opts)
def pool_at_raw(z, idx, out):
    """``out[n, o, i, j] = z[o, n, 2i + a, 2j + b]`` at ``idx[n, o, i, j] = 2a + b``."""
    n_, o_, h2, w2 = out.shape
    for t in nb.prange(n_ * o_):
        n = t // o_
        o = t % o_
        for i in range(h2):
            for j in range(w2):
                a = idx[n, o, i, j]
                out[n, o, i, j] = z[o, n, 2 * i + a // 2, 2 * j + a % 2]


@nb.njit(parallel=True, **_opts)
def pool_avg_raw(z, out):
    """``out[n, o, i, j] = mean of the 2x2 window of raw z``."""
    n_, o_, h2, w2 = out.shape
    for t in nb.prange(n_ * o_):
        n = t // o_
        o = t % o_
        for i in range(h2):
            for j in range(w2):
                out[n, o, i, j] = 0.25 * (
                    z[o, n, 2 * i, 2 * j]
                    + z[o, n, 2 * i, 2 * j + 1]
                    + z[o, n, 2 * i + 1, 2 * j]
                    + z[o, n, 2 * i + 1, 2 * j + 1]
                )


@nb.njit(parallel=True, **_opts)
def unpool_raw(p, idx, mode_max, out):
    """Adjoint of the pooling into raw layout: max puts ``p`` at the argmax, avg spreads /4."""
    n_, o_, h2, w2 = p.shape
    for t in nb.prange(n_ * o_):
        n = t // o_
        o = t % o_
        for i in range(h2):
            for j in range(w2):
                v = p[n, o, i, j]
                if mode_max:
                    a = idx[n, o, i, j]
                    for q in range(4):
                        out[o, n, 2 * i + q // 2, 2 * j + q % 2] = v if q == a else 0.0
                else:
                    for q in range(4):
                        out[o, n, 2 * i + q // 2, 2 * j + q % 2] = 0.25 * v


@nb.njit(parallel=True, **_opts)
def clip01(h, out):
    """``out = min(max(h, 0), 1)`` elementwise (flat arrays)."""
    for i in nb.prange(h.size):
        v = h[i]
        out[i] = 0.0 if v < 0.0 else (1.0 if v > 1.0 else v)


@nb.njit(parallel=True, **_opts)
def clip_quantize(h, out, c_lo, c_hi, q_lo, q_hi, step):
    """``out = q_lo + rint((clip(clip(h, c_lo, c_hi), q_lo, q_hi) - q_lo) / step) * step``.

    The diode clamp ``[c_lo, c_hi]`` (``[0, 1]`` for hidden layers, ``[-inf, inf]`` for the
    linear output) and the ADC of :class:`analogebl.plan.effects.StateQuantizer` in one pass;
    the same operations in the same order as the reference's ``q(clip01(h))``.
    """
    for i in nb.prange(h.size):
        v = h[i]
        v = c_lo if v < c_lo else (c_hi if v > c_hi else v)
        v = q_lo if v < q_lo else (q_hi if v > q_hi else v)
        out[i] = q_lo + np.rint((v - q_lo) / step) * step


@nb.njit(inline="always")
def _adc(v, d, lo, hi, ql, qh, st):
    v = lo if v < lo else (hi if v > hi else v)
    v = v + d
    v = ql if v < ql else (qh if v > qh else v)
    return ql + np.rint((v - ql) / st) * st


@nb.njit(parallel=True, **_opts)
def adc_accumulate(part, out, first, i_max, rng, noise, stochastic, q_lo, q_hi, step, dith):
    """One tile output through its converter, added to the digital sum (flat arrays)::

        out (+)= q(clip(part, -i_max, i_max) + d),   d = noise xi + (u - 1/2) step

    with ``q`` the quantizer of :class:`analogebl.plan.effects.StateQuantizer` (range
    ``[q_lo, q_hi]``, ``step``), ``xi ~ N(0, 1)`` and ``u ~ U[0, 1)`` drawn from ``rng`` in
    the order of :meth:`StateQuantizer.dither` (:func:`fill_dither`, float64), ``d`` rounded to
    the array's dtype before the add. ``first``: ``out`` is overwritten. ``dith`` is
    float64 scratch of ``part``'s size. The same operations in the same order as the
    reference's ``quantize(clip(x) + asarray(d))``.
    """
    fill_dither(dith, rng, noise, stochastic, step)
    t = part.dtype.type
    hi = t(i_max)
    lo = -hi
    ql, qh, st = t(q_lo), t(q_hi), t(step)
    for i in nb.prange(part.size):
        v = _adc(part[i], t(dith[i]), lo, hi, ql, qh, st)
        out[i] = v if first else out[i] + v


@nb.njit(parallel=True, **_opts)
def adc_accumulate_raw(part, out, first, i_max, rng, noise, stochastic, q_lo, q_hi, step, dith):
    """:func:`adc_accumulate` of a conv tile's output in the raw GEMM layout ``(O, N, H, W)``
    (``part``, ``out``), with the dither drawn in the NCHW order of the public layout, so
    the numbers are those of converting the NCHW array."""
    fill_dither(dith, rng, noise, stochastic, step)
    t = part.dtype.type
    hi = t(i_max)
    lo = -hi
    ql, qh, st = t(q_lo), t(q_hi), t(step)
    o_, n_, h_, w_ = part.shape
    for o in nb.prange(o_):
        for n in range(n_):
            base = (n * o_ + o) * h_
            for i in range(h_):
                for j in range(w_):
                    v = _adc(part[o, n, i, j], t(dith[(base + i) * w_ + j]), lo, hi, ql, qh, st)
                    out[o, n, i, j] = v if first else out[o, n, i, j] + v
