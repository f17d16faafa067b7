"""The torch backend: the same primitives on torch tensors (CPU now; ``device="cuda"`` works).

Convolutions, their adjoints and weight correlations use ``torch.nn.functional`` /
``torch.nn.grad``; max-pool argmaxes are torch's flat indices (first maximum, row-major, the
same tie rule as the reference backend).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from analogebl.backends.engine import Backend

__all__ = ["TorchBackend"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class TorchBackend(Backend):
    """Torch backend; ``device`` defaults to ``"cpu"``."""

    name = "torch"

    def __init__(self, plan, dtype: str = "float32", device: str | None = None):
        from analogebl.threads import torch_budget

        torch_budget()  # the run's thread budget (analogebl.threads)
        self._tdtype = _DTYPES.get(dtype)
        self._device = torch.device(device or "cpu")
        super().__init__(plan, dtype, str(self._device))

    def asarray(self, a):
        return torch.tensor(np.array(a), dtype=self._tdtype, device=self._device)

    def to_numpy(self, a):
        return a.detach().cpu().numpy().copy()

    def zeros(self, shape):
        return torch.zeros(shape, dtype=self._tdtype, device=self._device)

    def op_clip01(self, h):
        return h.clamp(0.0, 1.0)

    def op_clip(self, a, lo, hi):
        return a.clamp(lo, hi)

    def op_quantize(self, s, q):
        """``lo + round((clamp(s, lo, hi) - lo) / step) * step`` (round half to even)."""
        step = torch.tensor(q.step, dtype=s.dtype, device=s.device)
        lo = torch.tensor(q.lo, dtype=s.dtype, device=s.device)
        return lo + torch.round((s.clamp(q.lo, q.hi) - lo) / step) * step

    def op_mask01(self, h):
        return ((h >= 0.0) & (h <= 1.0)).to(h.dtype)

    def op_matmul(self, a, b):
        return a @ b

    def op_matmul_t(self, a, b):
        return a @ b.T

    def op_outer_sum(self, a, b):
        return a.T @ b

    def op_conv(self, s, w, padding):
        return F.conv2d(s, w, padding=padding)

    def op_conv_t(self, z, w, padding):
        return F.conv_transpose2d(z, w, padding=padding)

    def op_conv_corr(self, s, z, padding, kernel_size):
        shape = (z.shape[1], s.shape[1], kernel_size, kernel_size)
        return torch.nn.grad.conv2d_weight(s, shape, z, padding=padding)

    def op_pool_max(self, z):
        return F.max_pool2d(z, 2, return_indices=True)

    def op_pool_at(self, z, idx):
        return z.flatten(2).gather(2, idx.flatten(2)).view_as(idx)

    def op_unpool_max(self, p, idx):
        h, w = p.shape[2] * 2, p.shape[3] * 2
        return F.max_unpool2d(p, idx, 2, output_size=(h, w))

    def op_pool_avg(self, z):
        return F.avg_pool2d(z, 2)

    def op_unpool_avg(self, p):
        return p.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) * 0.25

    def op_channel_sum(self, s):
        return s.reshape(s.shape[0], s.shape[1], -1).sum(dim=(0, 2))

    def op_add_channel(self, h, b):
        return h + b.reshape((1, -1) + (1,) * (h.ndim - 2))

    def op_per_example_dot(self, a, b):
        return (a.reshape(a.shape[0], -1) * b.reshape(b.shape[0], -1)).sum(dim=1)

    def op_abs_max(self, a):
        return float(a.abs().max()) if a.numel() else 0.0

    def op_vdot(self, a, b):
        return float((a * b).sum())

    def op_isfinite(self, a):
        return bool(torch.isfinite(a).all())
