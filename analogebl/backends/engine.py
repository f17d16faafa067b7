"""⑤ The relaxation engine shared by every backend.

A backend subclasses :class:`Backend` and supplies array primitives (the ``op_*`` methods:
dense and convolution products, their adjoints, 2x2 pooling, correlations). The
algorithms built from them are written once, in two mixins: the layer fields,
asynchronous and synchronous schedules, free / nudged / output-clamped phases, the energy
and the hardware-effect hooks in :mod:`analogebl.backends.relaxation`; the closed-form
parameter gradients and the adjoint (vector-Jacobian) step used by TBP, RBP and the
implicit gradient in :mod:`analogebl.backends.gradients`.

State convention: a state is a list of arrays, ``state[0]`` the input ``x`` and
``state[k]`` layer ``k`` with shape ``(N, *layer_shape)``. States are never modified in
place: an update makes new arrays for the updated layers.

Precision: every backend runs ``dtype = "float32"`` or ``"float64"`` throughout. The torch
backend also runs ``"float16"`` and ``"bfloat16"`` (:data:`analogebl.spec.HALF_DTYPES`): states
and coupling products in 16 bit, correlations, energies, dot products and the parameters in
float32 (the contract is in :mod:`analogebl.backends.torch`). A backend refuses a dtype it
does not run with a :class:`~analogebl.errors.ConfigError` naming the key ``dtype``.
"""

from __future__ import annotations

import numpy as np

from analogebl.backends.gradients import GradientsMixin
from analogebl.backends.relaxation import Array, RelaxationMixin
from analogebl.errors import ConfigError
from analogebl.plan import Plan
from analogebl.plan.effects import NodeClamp, NudgeCurrent, ReadNoise, StateQuantizer, TileReads
from analogebl.spec import check_dtype as spec_check_dtype

__all__ = ["Backend"]


class Backend(RelaxationMixin, GradientsMixin):
    """Base class of the simulation backends (see module docstring).

    Parameters
    ----------
    plan : Plan
        What to simulate.
    dtype : str
        One of the backend's :attr:`dtypes`: ``"float32"`` or ``"float64"``; the torch
        backend also takes ``"float16"`` and ``"bfloat16"`` (16-bit relaxation).
    device : str, optional
        Only meaningful for the torch backend (``"cpu"``, ``"cuda"``, ...).

    Raises
    ------
    ConfigError
        (a ``ValueError``) ``dtype`` is not one the backend runs; the message names the key
        ``dtype`` and, for a 16-bit one, says that 16-bit runs on the torch backend only.
    """

    name = "abstract"
    #: the dtypes this backend runs
    dtypes: tuple[str, ...] = ("float32", "float64")

    @classmethod
    def check_dtype(cls, dtype: str) -> None:
        """Refuse (:class:`ConfigError`, key ``dtype``) a dtype this backend does not run."""
        if dtype in cls.dtypes:
            return
        spec_check_dtype(cls.name, dtype)  # an unknown dtype, or 16-bit off torch: says which
        raise ConfigError(
            f"the {cls.name} backend runs {', '.join(cls.dtypes)}, got {dtype!r}", key="dtype"
        )

    def __init__(self, plan: Plan, dtype: str = "float32", device: str | None = None):
        self.check_dtype(dtype)
        self.plan = plan
        self.dtype = dtype
        self.device = device
        self.params: dict[str, Array] = {
            k: self._param_array(v) for k, v in plan.parameters.items()
        }
        # hardware effects (analogebl.plan.effects); all off by default
        self._quant: tuple[StateQuantizer | None, ...] | None = None
        self._noise: ReadNoise | None = None
        self._noise_rng: np.random.Generator | None = None
        self._conv_rng: np.random.Generator | None = None  # converter noise / rounding
        self._nudge_src: NudgeCurrent | None = None  # the nudging current's limits
        self._nudge_grid: StateQuantizer | None = None  # its codes (None: continuous)
        self._noise_now: dict[str, Array] | None = None  # current std * xi per parameter
        self._read: dict[str, Array] | None = None  # W + noise while a relaxation runs
        self._tiles: dict[str, TileReads] | None = None  # tiled, converted coupling reads
        self._clamps: tuple[NodeClamp | None, ...] | None = None  # soft diode clamps
        if plan.quantizers is not None:  # the profile's converters, compiled into the plan
            self.set_quantizers(plan.quantizers)

    # ------------------------------------------------------------------ primitives
    # Subclasses implement these; shapes include the batch axis N first.
    def asarray(self, a: np.ndarray) -> Array:  # numpy -> native, in self.dtype
        raise NotImplementedError

    def to_numpy(self, a: Array) -> np.ndarray:
        raise NotImplementedError

    def zeros(self, shape: tuple[int, ...]) -> Array:
        raise NotImplementedError

    def op_clip01(self, h: Array) -> Array:
        raise NotImplementedError

    def op_clip(self, a: Array, lo: float, hi: float) -> Array:
        """``clip(a, lo, hi)`` (bounds may be infinite)."""
        raise NotImplementedError

    def op_quantize(self, s: Array, q: StateQuantizer) -> Array:
        """``lo + rint((clip(s, lo, hi) - lo) / step) * step`` (see ``plan.effects``)."""
        raise NotImplementedError

    def op_clip01_quantize(self, h: Array, q: StateQuantizer) -> Array:
        """``q(clip(h, 0, 1))``; backends may fuse the two."""
        return self.op_quantize(self.op_clip01(h), q)

    def op_mask01(self, h: Array) -> Array:
        """1 where 0 <= h <= 1 (the clip's derivative, bounds included as autograd does)."""
        raise NotImplementedError

    def op_matmul(self, a: Array, b: Array) -> Array:  # (N, i) @ (i, o)
        raise NotImplementedError

    def op_matmul_t(self, a: Array, b: Array) -> Array:  # (N, o) @ (i, o).T
        raise NotImplementedError

    def op_outer_sum(self, a: Array, b: Array) -> Array:  # sum_n a[n, i] b[n, o]
        raise NotImplementedError

    def op_conv(self, s: Array, w: Array, padding: int) -> Array:
        raise NotImplementedError

    def op_conv_t(self, z: Array, w: Array, padding: int) -> Array:
        raise NotImplementedError

    def op_conv_corr(self, s: Array, z: Array, padding: int, kernel_size: int) -> Array:
        raise NotImplementedError

    def op_pool_max(self, z: Array) -> tuple[Array, Array]:
        raise NotImplementedError

    def op_pool_at(self, z: Array, idx: Array) -> Array:
        raise NotImplementedError

    def op_unpool_max(self, p: Array, idx: Array) -> Array:
        raise NotImplementedError

    def op_pool_avg(self, z: Array) -> Array:
        raise NotImplementedError

    def op_unpool_avg(self, p: Array) -> Array:
        raise NotImplementedError

    def op_channel_sum(self, s: Array) -> Array:  # sum over batch and space -> (C,)
        raise NotImplementedError

    def op_add_channel(self, h: Array, b: Array) -> Array:  # h + b broadcast on channel axis 1
        raise NotImplementedError

    def op_per_example_dot(self, a: Array, b: Array) -> Array:  # (N,)
        raise NotImplementedError

    def op_abs_max(self, a: Array) -> float:
        raise NotImplementedError

    def op_vdot(self, a: Array, b: Array) -> float:
        raise NotImplementedError

    def op_isfinite(self, a: Array) -> bool:
        raise NotImplementedError

    # ------------------------------------------------------------------ parameters
    def get_parameters(self) -> dict[str, np.ndarray]:
        return {k: self.to_numpy(v) for k, v in self.params.items()}

    def _param_array(self, v) -> Array:
        """A parameter as this backend stores it (its ``asarray``; torch's 16-bit dtypes keep
        float32 masters)."""
        return self.asarray(np.asarray(v))

    def set_parameters(self, params: dict[str, np.ndarray]) -> None:
        for k, v in params.items():  # all checked before any is replaced
            if k not in self.params:
                raise KeyError(f"unknown parameter {k!r}; known: {', '.join(self.params)}")
            if tuple(v.shape) != tuple(self.params[k].shape):
                raise ValueError(
                    f"parameter {k}: shape {tuple(v.shape)} != {tuple(self.params[k].shape)}"
                )
        for k, v in params.items():
            self.params[k] = self._param_array(v)
