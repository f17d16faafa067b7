"""The torch backend: the same primitives on torch tensors (CPU now; ``device="cuda"`` works).

Convolutions, their adjoints and weight correlations use ``torch.nn.functional`` /
``torch.nn.grad``; max-pool argmaxes are torch's flat indices (first maximum, row-major, the
same tie rule as the reference backend).

Precision
---------
``dtype = "float32"`` or ``"float64"``: every primitive runs in that dtype.

``dtype = "float16"`` or ``"bfloat16"`` (16-bit relaxation; torch only). Write ``r(.)`` for
rounding to nearest in the 16-bit format and ``u`` for its unit roundoff: ``2^-8`` for
bfloat16 (8 significant bits, float32's exponent range), ``2^-11`` for float16 (11
significant bits, largest finite 65504). Then:

* **16 bit** (arguments and result in the format): the states ``s_k`` (:meth:`asarray`,
  :meth:`zeros`, inputs and one-hot targets included), the parameters as the relaxation
  reads them ``r(W_k)``, ``r(b_k)`` (:meth:`weight`, with read noise added in float32
  first), the coupling products ``op_matmul``, ``op_matmul_t``, ``op_conv``, ``op_conv_t``
  (torch's CPU kernels sum each product in float32 and round once; float16's
  ``conv_transpose2d`` adds its ``k*k`` kernel offsets in float16), the pooling and
  unpooling ops, the field's sums ``op_add_channel`` and ``h + T^*(s)``, the clamps
  ``op_clip01``, ``op_clip``, ``op_mask01`` (0/1, exact) and the output nudge. One hidden
  update is therefore

  .. math::

      s_k \\leftarrow \\mathrm{clip}\\Big(r\\big(r(r(b_k) + r(T_k(s_{k-1})))
                     + r(T_{k+1}^*(s_{k+1}))\\big), 0, 1\\Big),

  each product within about ``u`` (relative) of its exact value for the 16-bit operands.
  The relaxation is a map on a grid of spacing ``~u |s|``; its fixed point lies within
  ``~u |h| / (1 - rho)`` of the exact one (``rho``: the map's contraction factor) and the
  iteration may end in a cycle of a few ulps instead of a fixed point.

* **float32** (16-bit arguments upcast exactly first, result float32): the correlations
  ``op_outer_sum`` and ``op_conv_corr`` and the sum ``op_channel_sum``. So
  :meth:`param_grads`, ``dE/dtheta = -(1/N) sum_n s_{k-1} s_k``, is a float32 array, and an
  EP estimate ``[dE/dtheta(s^2) - dE/dtheta(s^1)] / (beta_2 - beta_1)`` is a contrast of
  two float32 correlations of 16-bit states (the states carry the 16-bit error, the
  contrast adds no 16-bit rounding of its own). Likewise the energies' and residuals'
  reductions ``op_per_example_dot``, ``op_vdot`` and ``op_abs_max`` (exact in any format).
  The energy's products ``T_k(s_{k-1})`` are the 16-bit ones (its bias term reads the
  float32 masters). The backprop baselines (TBP, RBP, the implicit gradient) run their
  adjoint products in 16 bit and their correlations and conjugate-gradient dot products in
  float32.

* **Converters**: ``op_quantize`` computes ``lo + rint((clip(s, lo, hi) - lo) / step) *
  step`` in float32 and rounds the result back to 16 bit: a 16-bit format cannot hold the
  grid (bfloat16's spacing ``2^-8`` on [0.5, 1) equals an 8-bit converter's step 1/255 near
  1, so neighbouring codes can land on the same 16-bit number). A converter's dither is
  drawn in float64 and added in 16 bit (:meth:`RelaxationMixin.quantize`).

* **Parameters**: :attr:`params` holds float32 masters. The optimizers step
  ``backend.params`` in place (:class:`~analogebl.training.IdealUpdater`), so parameter
  updates are float32 arithmetic on float32 masters with float32 gradients; the relaxation
  reads ``r(W)``, cast once per master array (cached by identity: parameters are replaced,
  never modified in place). :meth:`get_parameters` returns the float32 masters;
  :meth:`set_parameters` takes float32 or float64 arrays (float64 rounded to float32).

* **To NumPy**: :meth:`to_numpy` returns a 16-bit tensor as float32 (exact; NumPy has no
  bfloat16), anything else in its own dtype.

Speed on the CPU: bfloat16 products run on oneDNN's kernels (fast where the CPU has
AVX512-BF16 or AMX); float16 convolutions fall back to slow generic kernels on CPUs without
AVX512-FP16 (``benchmarks/bench_half_precision.py``: ~20x slower than float32 on dchn32).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from analogebl.backends.engine import Backend
from analogebl.spec import DTYPES, HALF_DTYPES

__all__ = ["TorchBackend"]

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
_HALF = (torch.float16, torch.bfloat16)


class TorchBackend(Backend):
    """Torch backend; ``device`` defaults to ``"cpu"``. ``dtype``: float32, float64, or the
    16-bit float16 / bfloat16 (see the module docstring for what runs in 16 bit)."""

    name = "torch"
    dtypes = DTYPES

    def __init__(self, plan, dtype: str = "float32", device: str | None = None):
        from analogebl.threads import torch_budget

        torch_budget()  # the run's thread budget (analogebl.threads)
        self.check_dtype(dtype)
        self._tdtype = _DTYPES[dtype]  # states and relaxation products
        self._half = dtype in HALF_DTYPES
        # sums, correlations and parameter masters: float32 under 16-bit, else the dtype
        self._acc = torch.float32 if self._half else self._tdtype
        self._device = torch.device(device or "cpu")
        self._casts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # name -> (src, r(src))
        self._qconsts: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # (step, lo) tensors
        super().__init__(plan, dtype, str(self._device))

    def _master(self, a) -> torch.Tensor:
        return torch.tensor(np.array(a), dtype=self._acc, device=self._device)

    def _param_array(self, v) -> torch.Tensor:
        """Under a 16-bit dtype a parameter is a float32 master (the module docstring)."""
        return self._master(v) if self._half else super()._param_array(v)

    @staticmethod
    def _up(a: torch.Tensor) -> torch.Tensor:
        """A 16-bit ``a`` as float32 (exact); any other array unchanged."""
        return a.to(torch.float32) if a.dtype in _HALF else a

    # ------------------------------------------------------------------ parameters
    def weight(self, name):
        """The parameter as the crossbar reads it (:meth:`RelaxationMixin.weight`), in 16 bit
        under a 16-bit dtype: the float32 master (plus read noise) rounded once and cached."""
        w = super().weight(name)
        if not self._half or w.dtype == self._tdtype:
            return w
        hit = self._casts.get(name)
        if hit is not None and hit[0] is w:
            return hit[1]
        r = w.to(self._tdtype)
        self._casts[name] = (w, r)
        return r

    # ------------------------------------------------------------------ arrays
    def asarray(self, a):
        if not (isinstance(a, np.ndarray) and a.flags.c_contiguous):
            a = np.array(a)  # lists, scalars, views with odd strides
        return torch.tensor(a, dtype=self._tdtype, device=self._device)

    def to_numpy(self, a):
        a = a.detach()
        if a.dtype in _HALF:
            a = a.to(torch.float32)
        return a.cpu().numpy().copy()

    def zeros(self, shape):
        return torch.zeros(shape, dtype=self._tdtype, device=self._device)

    # ------------------------------------------------------------------ 16 bit under 16-bit
    def op_clip01(self, h):
        return h.clamp(0.0, 1.0)

    def op_clip(self, a, lo, hi):
        return a.clamp(lo, hi)

    def op_quantize(self, s, q):
        """``lo + round((clamp(s, lo, hi) - lo) / step) * step`` (round half to even),
        computed in float32 under a 16-bit dtype and rounded back to it."""
        x = self._up(s)
        key = (q.step, q.lo, x.dtype, x.device)
        consts = self._qconsts.get(key)
        if consts is None:  # made once per converter, not per conversion
            consts = self._qconsts[key] = (
                torch.tensor(q.step, dtype=x.dtype, device=x.device),
                torch.tensor(q.lo, dtype=x.dtype, device=x.device),
            )
        step, lo = consts
        return (lo + torch.round((x.clamp(q.lo, q.hi) - lo) / step) * step).to(s.dtype)

    def op_mask01(self, h):
        return ((h >= 0.0) & (h <= 1.0)).to(h.dtype)

    def op_matmul(self, a, b):
        return a @ b

    def op_matmul_t(self, a, b):
        return a @ b.T

    def op_conv(self, s, w, padding):
        return F.conv2d(s, w, padding=padding)

    def op_conv_t(self, z, w, padding):
        return F.conv_transpose2d(z, w, padding=padding)

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

    def op_add_channel(self, h, b):
        return h + b.reshape((1, -1) + (1,) * (h.ndim - 2))

    # ------------------------------------------------------------------ float32 under 16-bit
    def op_outer_sum(self, a, b):
        return self._up(a).T @ self._up(b)

    def op_conv_corr(self, s, z, padding, kernel_size):
        shape = (z.shape[1], s.shape[1], kernel_size, kernel_size)
        return torch.nn.grad.conv2d_weight(self._up(s), shape, self._up(z), padding=padding)

    def op_channel_sum(self, s):
        return self._up(s).reshape(s.shape[0], s.shape[1], -1).sum(dim=(0, 2))

    def op_per_example_dot(self, a, b):
        a, b = self._up(a), self._up(b)
        return (a.reshape(a.shape[0], -1) * b.reshape(b.shape[0], -1)).sum(dim=1)

    def op_abs_max(self, a):
        return float(a.abs().max()) if a.numel() else 0.0

    def op_vdot(self, a, b):
        return float((self._up(a) * self._up(b)).sum())

    def op_isfinite(self, a):
        return bool(torch.isfinite(a).all())
