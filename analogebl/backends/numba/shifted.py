"""Shifted-GEMM convolutions: 'same' k x k convolutions without the im2col round trip.

A 'same' convolution (stride 1, ``k = 2p + 1``) is a sum of ``k*k`` products of a tap's
weights with the input shifted by that tap (the *kn2row* decomposition)::

    z[o, n, i, j] = sum_{di, dj} sum_c W[o, c, di, dj] * s[n, c, i + di - p, j + dj - p]

Stored on the **shared-padding grid** below, every shift is a constant offset in one flat
index, so each tap is one BLAS GEMM that reads the input in place (a strided matrix, no
copy) and accumulates into the output (``beta = 1``). Nothing of size ``k*k*C x N*H*W``
is ever written: im2col and col2im, memory-bound passes that cost a third of a DCHN step,
are gone, at the price of computing the output on the few pad positions too.

The grid of an ``(N, H, W)`` batch with padding ``p`` lays each channel out as one flat
row: a margin of ``M = p*R + p`` zeros, then the images one after another, each ``H + p``
rows of ``R = W + p`` entries whose last ``p`` columns and last ``p`` rows are zeros, then
another margin. The ``p`` zero columns at the end of a row are also the left padding of
the next row, and the ``p`` zero rows at the end of an image are also the top padding of
the next image, so position ``(n, i, j)`` is ``M + n*S + i*R + j`` (``S = (H + p)*R``) and
tap ``(di, dj)`` reads at the constant offset ``(di - p)*R + (dj - p)``. The products are
(``q`` over the ``L = N*S`` body positions, ``X`` and ``U`` zero off the image)::

    Z[:, q]  = sum_t W_t X[:, M + q + off_t]                (forward, W_t = W[:, :, di, dj])
    G[:, q]  = sum_t W_t^T U[:, M + q - off_t]              (adjoint)
    dW_t     = U[:, M : M + L] X[:, M + off_t : M + off_t + L]^T     (correlation)

The BLAS routine is NumPy's own OpenBLAS ``?gemm`` (the library ``np.dot`` calls), called
through ctypes with the leading dimensions and pointer offsets that make the shifted views;
where it cannot be found (another NumPy build) the backend keeps im2col. Its sums run in
another order than im2col's single GEMM, so the two paths agree to rounding (tests: 1e-10
in float64), not bit for bit.

Measured (``benchmarks/bench_conv_paths.py``, 2 cores, dchn32 x0.25 batch 32, ms per
forward / adjoint / correlation): layer 2 1.95/2.42/2.27 (im2col) -> 1.74/2.10/2.33, layer 3
1.89/2.13/2.10 -> 1.81/2.13/2.20, layer 4 1.61/1.62/1.70 -> 1.21/1.32/1.39; at batch 128
the shifted GEMMs are 15-37 % faster on every product.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

import numpy as np

__all__ = ["AVAILABLE", "MIN_CHANNELS", "Grid", "conv", "conv_corr", "conv_t", "taps"]

#: below this many input channels (a network's first layer: 1 or 3) each tap's GEMM has too
#: short an inner dimension to pay for the extra passes over the output; im2col wins there.
MIN_CHANNELS = 16

_P = ctypes.c_void_p
_GEMM_TYPE = ctypes.CFUNCTYPE(None, *([_P] * 13))
_SCALAR = {np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}


def _numpy_blas():
    """NumPy's own OpenBLAS ``?gemm`` (``(sgemm, dgemm, int type)``) or None.

    The wheels' OpenBLAS (``scipy-openblas64``, ILP64 symbols ``scipy_?gemm_64_``) is the
    library ``np.dot`` calls; SciPy's wheels carry an older, separately built copy whose
    SGEMM measured 1.2-2x slower on the DCHN's shapes. Found through threadpoolctl's list
    of loaded BLAS libraries (the one inside NumPy's folder); an LP64 or non-OpenBLAS build
    is not used."""
    from threadpoolctl import threadpool_info

    root = os.path.dirname(os.path.dirname(np.__file__))
    for info in threadpool_info():
        path = info.get("filepath", "")
        if info.get("internal_api") != "openblas" or not path.startswith(root + os.sep + "numpy"):
            continue
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_", ""):  # ILP64 builds: 64-bit integer arguments
            names = [f"{prefix}{t}gemm_64_" for t in "sd"]
            if all(hasattr(lib, n) for n in names):
                s, d = (ctypes.cast(getattr(lib, n), _GEMM_TYPE) for n in names)
                return s, d, ctypes.c_int64
    return None


#: NumPy's BLAS ``{dtype: ?gemm}`` and its integer type; None where it is not found (then
#: every convolution takes the im2col path: SciPy's bundled OpenBLAS, the other BLAS at
#: hand, measured slower than im2col with NumPy's, ``benchmarks/bench_conv_paths.py``)
_FOUND = _numpy_blas()
_GEMM = (
    None if _FOUND is None else {np.dtype(np.float32): _FOUND[0], np.dtype(np.float64): _FOUND[1]}
)
_INT = None if _FOUND is None else _FOUND[2]
#: whether the shifted-GEMM path can run here
AVAILABLE = _GEMM is not None


@dataclass(frozen=True)
class Grid:
    """The shared-padding grid of ``n`` images of ``h x w`` for padding ``p`` (see module)."""

    n: int
    h: int
    w: int
    p: int

    @property
    def row(self) -> int:
        """``R = W + p``: entries per grid row."""
        return self.w + self.p

    @property
    def image(self) -> int:
        """``S = (H + p) R``: entries per image."""
        return (self.h + self.p) * self.row

    @property
    def margin(self) -> int:
        """``M = p R + p``: zeros before the first and after the last image."""
        return self.p * self.row + self.p

    @property
    def body(self) -> int:
        """``L = N S``: the positions an output is computed on."""
        return self.n * self.image

    @property
    def padded(self) -> int:
        """``L + 2 M``: the length of an input row."""
        return self.body + 2 * self.margin

    def offset(self, di: int, dj: int) -> int:
        """Flat offset of tap ``(di, dj)``: ``(di - p) R + (dj - p)``."""
        return (di - self.p) * self.row + (dj - self.p)

    def images(self, body):
        """The ``(C, N, H, W)`` view of a ``(C, L)`` body array's image positions."""
        c = body.shape[0]
        return body.reshape(c, self.n, self.h + self.p, self.row)[:, :, : self.h, : self.w]

    def padded_images(self, a):
        """The ``(C, N, H, W)`` view of a ``(C, L + 2M)`` padded array's image positions."""
        return self.images(a[:, self.margin : self.margin + self.body])


def _gemm(ta: bytes, tb: bytes, m: int, n: int, k: int, lda: int, ldb: int, ldc: int, dtype):
    """BLAS ``?gemm`` with its shape fixed: returns ``run(a, a_off, b, b_off, c, accumulate)``,
    the column-major ``C = op(A) op(B) (+ C)`` on C-ordered buffers ``a``/``b``/``c``
    seen as column-major from element offsets ``a_off``/``b_off``. The constant arguments
    are built once for all the taps of one product."""
    dt = np.dtype(dtype)
    size, scalar, fn, ref = dt.itemsize, _SCALAR[dt], _GEMM[dt], ctypes.byref
    fixed = [ref(_INT(v)) for v in (m, n, k, lda, ldb, ldc)]
    flags = ctypes.c_char_p(ta), ctypes.c_char_p(tb)
    one, zero = ref(scalar(1.0)), ref(scalar(0.0))

    def run(a, a_off: int, b, b_off: int, c, accumulate: bool) -> None:
        fn(
            *flags, *fixed[:3], one, _P(a.ctypes.data + a_off * size), fixed[3],
            _P(b.ctypes.data + b_off * size), fixed[4], one if accumulate else zero,
            _P(c.ctypes.data), fixed[5],
        )  # fmt: skip

    return run


def taps(w):
    """``(k*k, O, C)`` C-ordered per-tap weight matrices ``W_t = W[:, :, di, dj]`` (what
    :func:`conv` and :func:`conv_t` take; compute once per weight array)."""
    o, c, k, _ = w.shape
    return np.ascontiguousarray(np.moveaxis(w.reshape(o, c, k * k), 2, 0))


def _size(tap_count: int) -> int:
    k = int(round(tap_count**0.5))
    assert k * k == tap_count, tap_count
    return k


def conv(x, w_taps, grid: Grid, out) -> None:
    """Forward product on the grid: ``out[:, q] = sum_t W_t x[:, M + q + off_t]``.

    Parameters
    ----------
    x : ndarray, shape (C, L + 2M)
        Input on the padded grid, zero off the image positions.
    w_taps : ndarray, shape (k*k, O, C)
        The weights' per-tap matrices (:func:`taps`), ``k = 2p + 1``, in ``out``'s dtype.
    grid : Grid
    out : ndarray, shape (O, L), C-ordered
        Receives the product on every body position (pad positions hold junk).
    """
    kk, o, c = w_taps.shape
    k, body = _size(kk), grid.body
    # column-major: out^T (L x O) = x_shift^T (L x C, ld Lp) @ W_t^T (C x O, ld C)
    run = _gemm(b"N", b"N", body, o, c, grid.padded, c, body, out.dtype)
    for t in range(kk):
        run(x, grid.margin + grid.offset(t // k, t % k), w_taps[t], 0, out, t > 0)


def conv_t(u, w_taps, grid: Grid, out) -> None:
    """Adjoint product on the grid: ``out[:, q] = sum_t W_t^T u[:, M + q - off_t]``.

    Parameters
    ----------
    u : ndarray, shape (O, L + 2M)
        The output-side array on the padded grid, zero off the image positions.
    w_taps : ndarray, shape (k*k, O, C)
        The weights' per-tap matrices (:func:`taps`), in ``out``'s dtype.
    grid : Grid
    out : ndarray, shape (C, L), C-ordered
    """
    kk, o, c = w_taps.shape
    k, body = _size(kk), grid.body
    # column-major: out^T (L x C) = u_shift^T (L x O, ld Lp) @ W_t (O x C: op 'T' of C x O)
    run = _gemm(b"N", b"T", body, c, o, grid.padded, c, body, out.dtype)
    for t in range(kk):
        run(u, grid.margin - grid.offset(t // k, t % k), w_taps[t], 0, out, t > 0)


def conv_corr(u, x, grid: Grid, k: int):
    """Correlation ``dW[o, c, di, dj] = sum_q u[o, M + q] x[c, M + q + off_t]``.

    Parameters
    ----------
    u : ndarray, shape (O, L + 2M)
        Output-side array on the padded grid, zero off the image positions.
    x : ndarray, shape (C, L + 2M)
        Input on the padded grid, zero off the image positions.
    grid : Grid
    k : int
        Kernel size (``2p + 1``).

    Returns
    -------
    ndarray, shape (O, C, k, k)
    """
    o, c = u.shape[0], x.shape[0]
    d = np.empty((k * k, o, c), dtype=u.dtype)
    # column-major: d_t^T (C x O, ld C) = x_shift (C x L: op 'T' of L x C, ld Lp) @ u^T
    run = _gemm(b"T", b"N", c, o, grid.body, grid.padded, grid.padded, c, u.dtype)
    for t in range(k * k):
        run(x, grid.margin + grid.offset(t // k, t % k), u, grid.margin, d[t], False)
    return np.ascontiguousarray(np.moveaxis(d, 0, 2)).reshape(o, c, k, k)
