"""The numba CPU backend: BLAS GEMM convolutions, fused pooling / layout kernels.

A 'same' convolution with at least ``shifted.MIN_CHANNELS`` input channels is a sum of one
GEMM per kernel tap on the shared-padding grid (:mod:`analogebl.backends.numba.shifted`:
no im2col, no col2im); the others (a network's first layer, hardware tile reads) use
im2col + one GEMM on the *raw* layout ``(O, N, H, W)`` (see
:mod:`analogebl.backends.numba.kernels`). Either way the forward product is followed by one
kernel that pools, records the max-pool argmax and writes the NCHW result, and the adjoint
unpools straight into the product's layout. Dense couplings
are single BLAS GEMMs on contiguous arrays. The relaxation schedule, phases, energy and
adjoints are the shared engine's (:mod:`analogebl.backends.engine`), so this backend is
exactly the reference's algorithm with faster primitives; the engine's per-relaxation cache
computes each max-pool argmax once per bottom-up pass and reuses it top-down. A circuit of
dense couplings with no hardware effect in force relaxes a whole phase in one compiled call
(:mod:`analogebl.backends.numba.phases`): the same equations and order of operations.

Kernels are compiled once and cached on disk (``cache=True``); all kernels are gathers, so
their results do not depend on the number of threads. Each GEMM and kernel runs on one thread
when it is small and on the run's thread budget otherwise (:mod:`analogebl.threads`): the
relaxation of a dense circuit is mostly tiny products, which threads only slow down.
"""

from __future__ import annotations

import numpy as np

from analogebl import threads as T
from analogebl.backends.numba import kernels as K
from analogebl.backends.numba import phases as P
from analogebl.backends.numba import shifted as S
from analogebl.backends.reference import ReferenceBackend
from analogebl.plan import CouplingPlan

__all__ = ["NumbaBackend"]


class NumbaBackend(ReferenceBackend):
    """Numba/BLAS CPU backend (``device`` must be ``None`` or ``"cpu"``).

    Inherits the reference's NumPy arrays and reductions; replaces the products, pooling and
    clamp, which carry the cost.
    """

    name = "numba"

    def __init__(self, plan, dtype: str = "float32", device: str | None = None):
        self._scratch: dict[tuple, np.ndarray] = {}
        self._tap_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        super().__init__(plan, dtype, device)

    def _buffer(self, tag: str, shape: tuple[int, ...], dtype, zeroed: bool = False):
        """Reusable scratch array (im2col columns, raw GEMM outputs). Fresh multi-MB arrays
        would be page-faulted in on every call, which costs as much as the GEMM here.
        ``zeroed``: an array on a shifted-GEMM grid, zeroed once; the kernels that fill it
        write only image positions, so its padding stays zero."""
        key = (tag, shape, np.dtype(dtype).str, zeroed)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = (np.zeros if zeroed else np.empty)(shape, dtype=dtype)
        return buf

    def _taps(self, w, dtype):
        """``w``'s per-tap matrices (:func:`~analogebl.backends.numba.shifted.taps`), made
        once per weight array: parameters and read-noise draws are replaced, never changed in
        place (the engine's relaxation cache relies on the same). At most two per coupling
        are kept."""
        key = (id(w), np.dtype(dtype).str)
        hit = self._tap_cache.get(key)
        if hit is None or hit[0] is not w:
            if len(self._tap_cache) >= 2 * len(self.plan.couplings):
                self._tap_cache.clear()
            hit = self._tap_cache[key] = (w, S.taps(w.astype(dtype, copy=False)))
        return hit[1]

    # ------------------------------------------------------------------ threads
    @staticmethod
    def _dot(a, b, out=None):
        """``a @ b`` by BLAS on a thread count chosen by the product's size."""
        T.for_macs(a.shape[0] * a.shape[1] * b.shape[-1])
        return np.dot(a, b, out=out)

    @staticmethod
    def _par(a):
        """Choose the numba thread count for a kernel over ``a`` (an array or a size)."""
        T.for_elements(a if isinstance(a, int) else a.size)

    # ------------------------------------------------------------------ arrays
    def asarray(self, a):
        return np.array(a, dtype=self._np_dtype, copy=True, order="C")

    def op_clip01(self, h):
        h = np.ascontiguousarray(h)
        out = np.empty_like(h)
        self._par(h)
        K.clip01(h.reshape(-1), out.reshape(-1))
        return out

    def _clip_quantize(self, h, c_lo, c_hi, q):
        h = np.ascontiguousarray(h)
        out = np.empty_like(h)
        t = h.dtype.type
        self._par(h)
        K.clip_quantize(
            h.reshape(-1), out.reshape(-1), t(c_lo), t(c_hi), t(q.lo), t(q.hi), t(q.step)
        )
        return out

    def op_clip(self, a, lo, hi):
        return np.clip(a, lo, hi)

    def op_quantize(self, s, q):
        return self._clip_quantize(s, -np.inf, np.inf, q)

    def op_clip01_quantize(self, h, q):
        return self._clip_quantize(h, 0.0, 1.0, q)

    def op_matmul(self, a, b):
        return self._dot(np.ascontiguousarray(a), b)

    def op_matmul_t(self, a, b):
        return self._dot(np.ascontiguousarray(a), b.T)

    def op_outer_sum(self, a, b):
        return self._dot(np.ascontiguousarray(a).T, np.ascontiguousarray(b))

    # ------------------------------------------------------------------ convolutions
    # Two paths compute the same products (to rounding): shifted GEMMs on the shared-padding
    # grid (:mod:`analogebl.backends.numba.shifted`) for 'same' convolutions with at least
    # ``S.MIN_CHANNELS`` input channels, im2col + one GEMM otherwise. A coupling always takes
    # the same path, as its choice depends only on its shapes.
    @staticmethod
    def _grid(s_shape, padding: int, k: int) -> S.Grid | None:
        """The shifted-GEMM grid of an input of NCHW shape ``s_shape``, or None (im2col)."""
        n, c, h, w = s_shape
        if not S.AVAILABLE or k != 2 * padding + 1 or c < S.MIN_CHANNELS:
            return None
        return S.Grid(n, h, w, padding)

    def _pack(self, tag: str, a, g: S.Grid):
        """NCHW ``a`` onto the padded grid ``(C, L + 2M)``."""
        a = np.ascontiguousarray(a)
        buf = self._buffer(tag, (a.shape[1], g.padded), a.dtype, zeroed=True)
        self._par(a)
        K.swap01(a, g.padded_images(buf))
        return buf

    def _cols(self, s, padding: int, k: int):
        s = np.ascontiguousarray(s)
        n, c, h, w = s.shape
        ho, wo = h + 2 * padding - k + 1, w + 2 * padding - k + 1
        cols = self._buffer("cols", (c * k * k, n * ho * wo), s.dtype)
        self._par(cols)
        K.im2col(s, padding, k, cols)
        return cols, ho, wo

    def _conv_raw(self, s, w, padding: int):
        """Raw-layout forward product ``z[o, n, i, j]`` (a strided view on the grid path)."""
        o, _, k, _ = w.shape
        g = self._grid(s.shape, padding, k)
        if g is not None:
            x = self._pack("x", s, g)
            z = self._buffer("gz", (o, g.body), s.dtype)
            T.for_macs(g.body * o * s.shape[1])
            S.conv(x, self._taps(w, s.dtype), g, z)
            return g.images(z)
        cols, ho, wo = self._cols(s, padding, k)
        z = self._buffer("z", (o, cols.shape[1]), s.dtype)
        self._dot(w.reshape(o, -1), cols, out=z)
        return z.reshape(o, s.shape[0], ho, wo)

    def _conv_t_grid(self, u, w, g: S.Grid):
        """Adjoint product of ``u`` on the padded grid, as NCHW."""
        o, c = w.shape[:2]
        gb = self._buffer("gg", (c, g.body), u.dtype)
        T.for_macs(g.body * o * c)
        S.conv_t(u, self._taps(w, u.dtype), g, gb)
        out = np.empty((g.n, c, g.h, g.w), dtype=u.dtype)
        self._par(out)
        K.swap01(g.images(gb), out)
        return out

    def _conv_t_raw(self, z_raw, w, padding: int, in_hw: tuple[int, int]):
        o, c, k, _ = w.shape
        _, n, ho, wo = z_raw.shape
        gcols = self._buffer("gcols", (c * k * k, n * ho * wo), z_raw.dtype)
        self._dot(w.reshape(o, -1).T, z_raw.reshape(o, -1), out=gcols)
        out = np.empty((n, c, *in_hw), dtype=z_raw.dtype)
        self._par(gcols)
        K.col2im(gcols, padding, k, ho, wo, out)
        return out

    def _conv_corr_raw(self, s, z_raw, padding: int, k: int):
        o = z_raw.shape[0]
        cols, _, _ = self._cols(s, padding, k)
        return self._dot(z_raw.reshape(o, -1), cols.T).reshape(o, s.shape[1], k, k)

    def _conv_corr_grid(self, s, u, g: S.Grid, k: int):
        """Correlation of NCHW ``s`` with ``u`` on the padded grid."""
        x = self._pack("x", s, g)
        T.for_macs(g.body * u.shape[0] * s.shape[1])
        return S.conv_corr(u, x, g, k)

    def _to_raw(self, z):
        z = np.ascontiguousarray(z)
        n, o, h, w = z.shape
        out = np.empty((o, n, h, w), dtype=z.dtype)
        self._par(z)
        K.swap01(z, out)
        return out

    def _in_hw(self, z_shape, padding, k):
        return z_shape[-2] - 2 * padding + k - 1, z_shape[-1] - 2 * padding + k - 1

    def op_conv(self, s, w, padding):
        return self._raw_to_nchw(self._conv_raw(s, w, padding))

    def op_conv_t(self, z, w, padding):
        k = w.shape[-1]
        in_hw = self._in_hw(z.shape, padding, k)
        g = self._grid((z.shape[0], w.shape[1], *in_hw), padding, k)
        if g is not None:
            return self._conv_t_grid(self._pack("u", z, g), w, g)
        return self._conv_t_raw(self._to_raw(z), w, padding, in_hw)

    def op_conv_corr(self, s, z, padding, kernel_size):
        g = self._grid(s.shape, padding, kernel_size)
        if g is not None:
            return self._conv_corr_grid(s, self._pack("u", z, g), g, kernel_size)
        return self._conv_corr_raw(s, self._to_raw(z), padding, kernel_size)

    # ------------------------------------------------------------------ pooling (NCHW)
    def _pool_raw(self, z_raw, mode: str):
        o, n, h, w = z_raw.shape
        out = np.empty((n, o, h // 2, w // 2), dtype=z_raw.dtype)
        self._par(z_raw)
        if mode == "max":
            idx = np.empty(out.shape, dtype=np.int8)
            K.pool_max_raw(z_raw, out, idx)
            return out, idx
        K.pool_avg_raw(z_raw, out)
        return out, None

    def _unpool_to_raw(self, p, idx, mode: str, out=None):
        """Unpool NCHW ``p`` into the raw layout ``(O, N, H, W)``: a scratch array, or ``out``
        (any array of that shape, e.g. a grid's image positions)."""
        p = np.ascontiguousarray(p)
        n, o, h2, w2 = p.shape
        if out is None:
            out = self._buffer("unpool", (o, n, 2 * h2, 2 * w2), p.dtype)
        if idx is None:
            idx = np.zeros((1, 1, 1, 1), dtype=np.int8)
        self._par(out)
        K.unpool_raw(p, idx, mode == "max", out)
        return out

    def _raw_to_nchw(self, z_raw):
        out = np.empty((z_raw.shape[1], z_raw.shape[0], *z_raw.shape[2:]), dtype=z_raw.dtype)
        self._par(z_raw)
        K.swap01(z_raw, out)
        return out

    def op_pool_max(self, z):
        return self._pool_raw(self._to_raw(z), "max")

    def op_pool_at(self, z, idx):
        out = np.empty(idx.shape, dtype=z.dtype)
        zr = self._to_raw(z)
        self._par(zr)
        K.pool_at_raw(zr, idx, out)
        return out

    def op_unpool_max(self, p, idx):
        return self._raw_to_nchw(self._unpool_to_raw(p, idx, "max"))

    def op_pool_avg(self, z):
        return self._pool_raw(self._to_raw(z), "avg")[0]

    def op_unpool_avg(self, p):
        return self._raw_to_nchw(self._unpool_to_raw(p, None, "avg"))

    # ------------------------------------------------------------------ hardware reads
    def _tile_sum(self, blocks, read, q, i_max: float):
        """The engine's ``sum_t a_t(read(block_t))`` with each tile's limit, converter noise,
        rounding and the digital add in one kernel that draws from the converter generator
        itself (the same numbers, in the same order, as the generic path)."""
        if q is None:
            return super()._tile_sum(blocks, read, q, i_max)
        out = None
        for i, blk in enumerate(blocks):
            part = np.ascontiguousarray(read(blk))
            if out is None:
                out = np.empty_like(part)
            self._adc(K.adc_accumulate, part.reshape(-1), out.reshape(-1), i == 0, q, i_max)
        return out

    def _adc(self, kernel, part, out, first: bool, q, i_max: float) -> None:
        """Run an ``adc_accumulate`` kernel on one tile output."""
        rng = self._converter_rng() if q.random else K.NO_DRAWS
        dith = self._buffer("dither", (part.size,), np.float64)
        self._par(part)
        kernel(
            part, out, first, float(i_max), rng, float(q.noise_std), bool(q.stochastic),
            float(q.lo), float(q.hi), float(q.step), dith,
        )  # fmt: skip

    def _conv_tiles(self, c: CouplingPlan):
        """The coupling's :class:`TileReads` when it is a conv read through converters."""
        t = None if self._tiles is None else self._tiles.get(c.name)
        return t if (t is not None and c.kind == "conv" and t.forward is not None) else None

    def _conv_read_raw(self, c: CouplingPlan, pre, w):
        """Raw-layout ``conv(W, pre)`` as the crossbar delivers it: one im2col for all the
        tiles (a row tile is a contiguous block of whole input channels' rows), a GEMM and a
        converter kernel per tile summing into the raw output."""
        t = self._conv_tiles(c)
        if t is None:  # (a tiled conv without converters is read by the generic path)
            return self._conv_raw(pre, w, c.padding)
        o, _, k, _ = w.shape
        cols, ho, wo = self._cols(pre, c.padding, k)
        n = pre.shape[0]
        out = np.empty((o, n, ho, wo), dtype=cols.dtype)
        z = self._buffer("ztile", (o, cols.shape[1]), cols.dtype)
        for i, r in enumerate(t.row_blocks):
            rows = slice(r.start * k * k, r.stop * k * k)  # a view: BLAS reads it in place
            self._dot(w.reshape(o, -1)[:, rows], cols[rows], out=z)
            zr = z.reshape(o, n, ho, wo)
            self._adc(K.adc_accumulate_raw, zr, out, i == 0, t.forward, t.i_max)
        return out

    # ------------------------------------------------------------------ fused couplings
    # (a tiled dense coupling, or a tiled conv without converters, is read tile by tile
    # through the generic path)
    def _tiled(self, c: CouplingPlan) -> bool:
        return self._tiles is not None and c.name in self._tiles

    def _generic(self, c: CouplingPlan) -> bool:
        return c.kind == "dense" or (self._tiled(c) and self._conv_tiles(c) is None)

    def pool_index(self, c: CouplingPlan, pre):
        if c.pool != "max":
            return None
        if self._generic(c):
            return super().pool_index(c, pre)
        return self._pool_raw(self._conv_read_raw(c, pre, self.weight(c.name)), "max")[1]

    def coupling_forward(self, c: CouplingPlan, pre):
        if self._generic(c):
            return super().coupling_forward(c, pre)
        z = self._conv_read_raw(c, pre, self.weight(c.name))
        if c.pool == "none":
            return self._raw_to_nchw(z), None
        return self._pool_raw(z, c.pool)

    def coupling_forward_at(self, c: CouplingPlan, pre, idx):
        if self._generic(c):
            return super().coupling_forward_at(c, pre, idx)
        if c.pool == "max":
            z = self._conv_read_raw(c, pre, self.weight(c.name))
            out = np.empty(idx.shape, dtype=z.dtype)
            self._par(z)
            K.pool_at_raw(z, idx, out)
            return out
        return self.coupling_forward(c, pre)[0]

    def _post_raw(self, c: CouplingPlan, post, idx):
        if c.pool in ("max", "avg"):
            return self._unpool_to_raw(post, idx, c.pool)
        return self._to_raw(post)

    def _coupling_grid(self, c: CouplingPlan, n: int) -> S.Grid | None:
        """The coupling's shifted-GEMM grid for a batch of ``n``, or None (im2col)."""
        return self._grid((n, *self.plan.layer_shapes[c.pre]), c.padding, c.kernel_size)

    def _post_grid(self, c: CouplingPlan, post, idx, g: S.Grid):
        """The output side of a conv coupling, unpooled onto the padded grid."""
        if c.pool not in ("max", "avg"):
            return self._pack("u", post, g)
        buf = self._buffer("u", (post.shape[1], g.padded), post.dtype, zeroed=True)
        self._unpool_to_raw(post, idx, c.pool, out=g.padded_images(buf))
        return buf

    def coupling_adjoint(self, c: CouplingPlan, post, idx):
        if self._generic(c):
            return super().coupling_adjoint(c, post, idx)
        w = self.weight(c.name)
        in_hw = tuple(self.plan.layer_shapes[c.pre][1:])
        t = self._conv_tiles(c)
        if t is None:
            g = self._coupling_grid(c, post.shape[0])
            if g is not None:
                return self._conv_t_grid(self._post_grid(c, post, idx, g), w, g)
            return self._conv_t_raw(self._post_raw(c, post, idx), w, c.padding, in_hw)
        u = self._post_raw(c, post, idx)
        # one column tile is a block of output channels: a contiguous slab of the raw layout
        return self._tile_sum(
            t.col_blocks,
            lambda j: self._conv_t_raw(u[j], np.ascontiguousarray(w[j]), c.padding, in_hw),
            t.adjoint,
            t.i_max,
        )

    def coupling_correlation(self, c: CouplingPlan, pre, post, idx):
        if c.kind == "dense":
            return super().coupling_correlation(c, pre, post, idx)
        g = self._coupling_grid(c, pre.shape[0])
        if g is not None:
            return self._conv_corr_grid(pre, self._post_grid(c, post, idx, g), g, c.kernel_size)
        return self._conv_corr_raw(pre, self._post_raw(c, post, idx), c.padding, c.kernel_size)

    # ------------------------------------------------------------------ compiled phases
    def relax(
        self, state, iterations, schedule="async", beta=0.0, target=None, clamp=None,
        nudge="exact",
    ):  # fmt: skip
        """The engine's :meth:`~analogebl.backends.relaxation.RelaxationMixin.relax`, run as
        one compiled call (:func:`~analogebl.backends.numba.phases.relax_dense`) on a circuit
        of dense couplings with no hardware effect in force; the engine's otherwise (which
        also validates and raises on bad arguments)."""
        out = P.relax_phase(self, state, iterations, schedule, beta, target, clamp, nudge)
        if out is not None:
            return out
        return super().relax(state, iterations, schedule, beta, target, clamp, nudge)
