"""The reference backend: plain NumPy primitives written for reading, float64 capable.

Every faster backend is tested against this one on random inputs. Convolutions are written
as explicit sums over the kernel offsets; 2x2 pooling as reshapes; nothing is fused or cached.
"""

from __future__ import annotations

import numpy as np

from analogebl.backends.engine import Backend

__all__ = ["ReferenceBackend"]


def _windows(z: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, C, H/2, W/2, 4): the 2x2 pooling windows, row-major inside."""
    n, c, h, w = z.shape
    return (
        z.reshape(n, c, h // 2, 2, w // 2, 2)
        .transpose(0, 1, 2, 4, 3, 5)
        .reshape(n, c, h // 2, w // 2, 4)
    )


def _from_windows(win: np.ndarray) -> np.ndarray:
    n, c, h2, w2, _ = win.shape
    return win.reshape(n, c, h2, w2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, 2 * h2, 2 * w2)


class ReferenceBackend(Backend):
    """NumPy oracle backend (``device`` must be ``None`` or ``"cpu"``)."""

    name = "reference"

    def __init__(self, plan, dtype: str = "float64", device: str | None = None):
        if device not in (None, "cpu"):
            raise ValueError(f"the {self.name} backend runs on the CPU only, got device={device!r}")
        self.check_dtype(dtype)  # before NumPy reads the name: no 16-bit here (torch only)
        self._np_dtype = np.dtype(dtype)
        super().__init__(plan, dtype, "cpu")

    def asarray(self, a):
        return np.array(a, dtype=self._np_dtype, copy=True)

    def to_numpy(self, a):
        return np.array(a, copy=True)

    def zeros(self, shape):
        return np.zeros(shape, dtype=self._np_dtype)

    def op_clip01(self, h):
        return np.clip(h, 0.0, 1.0)

    def op_clip(self, a, lo, hi):
        return np.clip(a, lo, hi)

    def op_quantize(self, s, q):
        return q(s)

    def op_mask01(self, h):
        return ((h >= 0.0) & (h <= 1.0)).astype(self._np_dtype)

    def op_matmul(self, a, b):
        return a @ b

    def op_matmul_t(self, a, b):
        return a @ b.T

    def op_outer_sum(self, a, b):
        return a.T @ b

    def op_conv(self, s, w, padding):
        """``z[n,o,i,j] = sum_{c,di,dj} w[o,c,di,dj] * s_pad[n,c,i+di,j+dj]`` (stride 1)."""
        k = w.shape[-1]
        sp = np.pad(s, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        h_out = sp.shape[2] - k + 1
        w_out = sp.shape[3] - k + 1
        z = np.zeros((s.shape[0], w.shape[0], h_out, w_out), dtype=s.dtype)
        for di in range(k):
            for dj in range(k):
                patch = sp[:, :, di : di + h_out, dj : dj + w_out]
                z += np.einsum("nchw,oc->nohw", patch, w[:, :, di, dj])
        return z

    def op_conv_t(self, z, w, padding):
        """Adjoint of :meth:`op_conv`: ``g_pad[n,c,i+di,j+dj] += w[o,c,di,dj] * z[n,o,i,j]``."""
        k = w.shape[-1]
        n, _, h_out, w_out = z.shape
        gp = np.zeros((n, w.shape[1], h_out + k - 1, w_out + k - 1), dtype=z.dtype)
        for di in range(k):
            for dj in range(k):
                gp[:, :, di : di + h_out, dj : dj + w_out] += np.einsum(
                    "nohw,oc->nchw", z, w[:, :, di, dj]
                )
        h_in = h_out + k - 1 - 2 * padding
        w_in = w_out + k - 1 - 2 * padding
        return gp[:, :, padding : padding + h_in, padding : padding + w_in]

    def op_conv_corr(self, s, z, padding, kernel_size):
        """``dw[o,c,di,dj] = sum_{n,i,j} z[n,o,i,j] * s_pad[n,c,i+di,j+dj]``."""
        k = kernel_size
        sp = np.pad(s, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        h_out, w_out = z.shape[2], z.shape[3]
        dw = np.zeros((z.shape[1], s.shape[1], k, k), dtype=s.dtype)
        for di in range(k):
            for dj in range(k):
                dw[:, :, di, dj] = np.einsum(
                    "nohw,nchw->oc", z, sp[:, :, di : di + h_out, dj : dj + w_out]
                )
        return dw

    def op_pool_max(self, z):
        """2x2 max-pool; the argmax is the first maximum in row-major window order."""
        win = _windows(z)
        idx = np.argmax(win, axis=-1)
        return np.take_along_axis(win, idx[..., None], axis=-1)[..., 0], idx

    def op_pool_at(self, z, idx):
        return np.take_along_axis(_windows(z), idx[..., None], axis=-1)[..., 0]

    def op_unpool_max(self, p, idx):
        win = np.zeros((*p.shape, 4), dtype=p.dtype)
        np.put_along_axis(win, idx[..., None], p[..., None], axis=-1)
        return _from_windows(win)

    def op_pool_avg(self, z):
        return _windows(z).mean(axis=-1)

    def op_unpool_avg(self, p):
        return _from_windows(np.repeat(p[..., None], 4, axis=-1) / 4.0)

    def op_channel_sum(self, s):
        return s.reshape(s.shape[0], s.shape[1], -1).sum(axis=(0, 2))

    def op_add_channel(self, h, b):
        return h + b.reshape((1, -1) + (1,) * (h.ndim - 2))

    def op_per_example_dot(self, a, b):
        return (a.reshape(a.shape[0], -1) * b.reshape(b.shape[0], -1)).sum(axis=1)

    def op_abs_max(self, a):
        return float(np.max(np.abs(a))) if a.size else 0.0

    def op_vdot(self, a, b):
        return float(np.vdot(a, b))

    def op_isfinite(self, a):
        return bool(np.isfinite(a).all())
