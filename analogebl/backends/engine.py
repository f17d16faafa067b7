"""⑤ The relaxation engine shared by every backend.

A backend subclasses :class:`Backend` and supplies array primitives (the ``op_*`` methods:
dense and convolution products, their adjoints, 2x2 pooling, correlations). This module
holds, once, the algorithms built from them: the layer fields, asynchronous and
synchronous schedules, free / nudged / output-clamped phases, the energy, the closed-form
parameter gradients, and the adjoint (vector-Jacobian) step used by TBP, RBP and the
implicit gradient.

State convention: a state is a list of arrays, ``state[0]`` the input ``x`` and
``state[k]`` layer ``k`` with shape ``(N, *layer_shape)``. States are never modified in
place: an update makes new arrays for the updated layers.

Equations (per example, ``T_k`` the coupling into layer ``k``, ``T_k^*`` its adjoint with a
max-pool's argmax taken at the current pre-synaptic state):

* field   ``h_k = b_k + T_k(s_{k-1}) + T_{k+1}^*(s_{k+1})``  (``= -dE/ds_k + s_k``)
* hidden  ``s_k <- clip(h_k, 0, 1)``
* output  free: ``o <- h_o``; EP nudge with ``F = E + beta/2 ||o - y||^2``:
  ``o <- (h_o + beta*y) / (1 + beta)`` (exact block minimiser, needs ``beta > -1``);
  clamped (CL/CpL): ``o`` held fixed and excluded from the free layers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analogebl.plan import CouplingPlan, Plan
from analogebl.plan.effects import ReadNoise, StateQuantizer

__all__ = ["Backend"]

Array = Any


class Backend:
    """Base class of the simulation backends (see module docstring).

    Parameters
    ----------
    plan : Plan
        What to simulate.
    dtype : {"float32", "float64"}
    device : str, optional
        Only meaningful for the torch backend (``"cpu"``, ``"cuda"``, ...).
    """

    name = "abstract"

    def __init__(self, plan: Plan, dtype: str = "float32", device: str | None = None):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.plan = plan
        self.dtype = dtype
        self.device = device
        self.params: dict[str, Array] = {k: self.asarray(v) for k, v in plan.parameters.items()}
        # hardware effects (analogebl.plan.effects); all off by default
        self._quant: tuple[StateQuantizer | None, ...] | None = None
        self._noise: ReadNoise | None = None
        self._noise_rng: np.random.Generator | None = None
        self._noise_now: dict[str, Array] | None = None  # current std * xi per parameter
        self._read: dict[str, Array] | None = None  # W + noise while a relaxation runs

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

    def set_parameters(self, params: dict[str, np.ndarray]) -> None:
        for k, v in params.items():
            if k not in self.params:
                raise KeyError(f"unknown parameter {k!r}; known: {', '.join(self.params)}")
            if tuple(v.shape) != tuple(self.params[k].shape):
                raise ValueError(
                    f"parameter {k}: shape {tuple(v.shape)} != {tuple(self.params[k].shape)}"
                )
            self.params[k] = self.asarray(np.asarray(v))

    # ------------------------------------------------------------------ hardware effects
    def set_quantizers(self, quantizers) -> None:
        """Quantize layer ``k`` with ``quantizers[k]`` after every update (``None``: exact).

        ``quantizers[0]`` is the input DAC (applied to ``x`` as it enters); pass ``None``
        instead of a sequence to switch quantization off.
        """
        if quantizers is None or all(q is None for q in quantizers):
            self._quant = None
            return
        quantizers = tuple(quantizers)
        if len(quantizers) != self.plan.num_layers:
            raise ValueError(
                f"need one quantizer (or None) per layer "
                f"({self.plan.num_layers}), got {len(quantizers)}"
            )
        self._quant = quantizers

    def set_read_noise(
        self, noise: ReadNoise | None, rng: np.random.Generator | None = None
    ) -> None:
        """Read noise on the parameters during relaxation, drawn from ``rng`` (see
        ``plan.effects``); ``None`` switches it off."""
        if noise is not None:
            unknown = set(noise.std) - set(self.params)
            if unknown:
                raise KeyError(f"read noise for unknown parameters {sorted(unknown)}")
            if rng is None:
                raise ValueError("read noise needs an explicit numpy Generator")
        self._noise, self._noise_rng, self._noise_now = noise, rng, None

    def redraw_read_noise(self) -> None:
        """New draws ``std * xi`` for every noisy parameter (NumPy ``rng``, float64, so
        every backend sees the same numbers)."""
        if self._noise is None:
            return
        self._noise_now = {
            k: self.asarray(np.asarray(std) * self._noise_rng.standard_normal(np.shape(std)))
            for k, std in self._noise.std.items()
        }

    def _apply_read_noise(self) -> None:
        self._read = {k: self.params[k] + n for k, n in self._noise_now.items()}

    def weight(self, name: str) -> Array:
        """Parameter ``name`` as the crossbar reads it now (with read noise inside a
        relaxation when that is on)."""
        if self._read is not None:
            w = self._read.get(name)
            if w is not None:
                return w
        return self.params[name]

    # ------------------------------------------------------------------ couplings
    def _unpool(self, c: CouplingPlan, p: Array, idx: Array | None) -> Array:
        if c.pool == "max":
            return self.op_unpool_max(p, idx)
        if c.pool == "avg":
            return self.op_unpool_avg(p)
        return p

    def pool_index(self, c: CouplingPlan, pre: Array) -> Array | None:
        """Argmax of the 2x2 max-pool of ``conv(W, pre)`` (``None`` unless max-pool)."""
        if c.pool != "max":
            return None
        return self.op_pool_max(self.op_conv(pre, self.weight(c.name), c.padding))[1]

    def coupling_forward(self, c: CouplingPlan, pre: Array) -> tuple[Array, Array | None]:
        """``T(pre) = pool(conv(W, pre))`` or ``pre @ W``; returns (value, argmax or None)."""
        w = self.weight(c.name)
        if c.kind == "dense":
            n = pre.shape[0]
            out = self.op_matmul(pre.reshape(n, -1), w)
            return out.reshape((n, *self.plan.layer_shapes[c.post])), None
        z = self.op_conv(pre, w, c.padding)
        if c.pool == "max":
            return self.op_pool_max(z)
        if c.pool == "avg":
            return self.op_pool_avg(z), None
        return z, None

    def coupling_forward_at(self, c: CouplingPlan, pre: Array, idx: Array | None) -> Array:
        """``T`` with the max-pool argmax held at ``idx`` (a linear map of ``pre``)."""
        if c.kind == "conv" and c.pool == "max":
            return self.op_pool_at(self.op_conv(pre, self.weight(c.name), c.padding), idx)
        return self.coupling_forward(c, pre)[0]

    def coupling_adjoint(self, c: CouplingPlan, post: Array, idx: Array | None) -> Array:
        """``T^*(post)``: ``conv_T(unpool(post), W)`` or ``post @ W.T``, shaped as the pre layer."""
        w = self.weight(c.name)
        n = post.shape[0]
        if c.kind == "dense":
            out = self.op_matmul_t(post.reshape(n, -1), w)
            return out.reshape((n, *self.plan.layer_shapes[c.pre]))
        return self.op_conv_t(self._unpool(c, post, idx), w, c.padding)

    def coupling_correlation(
        self, c: CouplingPlan, pre: Array, post: Array, idx: Array | None
    ) -> Array:
        """``sum_n d<post, T(pre; W)>/dW`` at fixed argmax: the crossbar's local correlation."""
        n = pre.shape[0]
        if c.kind == "dense":
            return self.op_outer_sum(pre.reshape(n, -1), post.reshape(n, -1))
        return self.op_conv_corr(pre, self._unpool(c, post, idx), c.padding, c.kernel_size)

    # ------------------------------------------------------------------ states
    def input_array(self, x: np.ndarray | Array) -> Array:
        shape0 = self.plan.layer_shapes[0]
        if isinstance(x, np.ndarray):
            n = x.shape[0]
            if int(np.prod(x.shape[1:])) != int(np.prod(shape0)):
                raise ValueError(
                    f"input of shape {x.shape[1:]} does not fit the circuit's input layer {shape0}"
                )
            x = self.asarray(np.ascontiguousarray(x).reshape((n, *shape0)))
            if self._quant is not None and self._quant[0] is not None:
                x = self.op_quantize(x, self._quant[0])
        return x

    def zero_state(self, x: np.ndarray | Array) -> list[Array]:
        """``[x, 0, ..., 0]``: the input clamped, every other layer at zero volts."""
        xa = self.input_array(x)
        n = xa.shape[0]
        return [xa] + [self.zeros((n, *s)) for s in self.plan.layer_shapes[1:]]

    def one_hot(self, y: np.ndarray) -> Array:
        k = self.plan.layer_shapes[-1][0]
        y = np.asarray(y)
        if y.ndim != 1 or y.min() < 0 or y.max() >= k:
            raise ValueError(f"labels must be integers in [0, {k})")
        out = np.zeros((y.shape[0], k))
        out[np.arange(y.shape[0]), y] = 1.0
        return self.asarray(out)

    # ------------------------------------------------------------------ relaxation
    def field(self, state: list[Array], k: int, cache: dict | None = None) -> Array:
        """``h_k = b_k + T_k(s_{k-1}) + T_{k+1}^*(s_{k+1})``.

        ``cache`` (optional, one per relaxation) memoises each coupling's forward value and
        argmax for the exact (pre-state, weight) objects it was computed from: the input
        drive ``T_1(x)`` is computed once per phase, and a max-pool argmax computed for the
        bottom-up pass is reused by the next top-down pass. States are never modified in
        place, so object identity is a valid key.
        """
        plan = self.plan
        h, _ = self._forward_cached(plan.couplings[k - 1], state[k - 1], cache)
        h = self.op_add_channel(h, self.weight(plan.bias_names[k]))
        if k < plan.output:
            c_out = plan.couplings[k]
            if c_out.pool == "max":
                _, idx_out = self._forward_cached(c_out, state[k], cache)
            else:
                idx_out = None
            h = h + self.coupling_adjoint(c_out, state[k + 1], idx_out)
        return h

    def _forward_cached(
        self, c: CouplingPlan, pre: Array, cache: dict | None
    ) -> tuple[Array, Array | None]:
        if cache is None:
            return self.coupling_forward(c, pre)
        w = self.weight(c.name)
        hit = cache.get(c.name)
        if hit is not None and hit[0] is pre and hit[1] is w:
            return hit[2], hit[3]
        value, idx = self.coupling_forward(c, pre)
        cache[c.name] = (pre, w, value, idx)
        return value, idx

    def _activate(self, k: int, h: Array, beta: float, target: Array | None) -> Array:
        q = None if self._quant is None else self._quant[k]
        if k < self.plan.output:
            return self.op_clip01(h) if q is None else self.op_clip01_quantize(h, q)
        if beta != 0.0:
            h = (h + beta * target) * (1.0 / (1.0 + beta))
        return h if q is None else self.op_quantize(h, q)

    def half_step(
        self,
        state: list[Array],
        group: tuple[int, ...],
        beta: float = 0.0,
        target: Array | None = None,
        cache: dict | None = None,
    ) -> list[Array]:
        """Update every layer of ``group`` at once from the current state."""
        new = [self._activate(k, self.field(state, k, cache), beta, target) for k in group]
        out = list(state)
        for k, s in zip(group, new, strict=True):
            out[k] = s
        return out

    def relax(
        self,
        state: list[Array],
        iterations: int,
        schedule: str = "async",
        beta: float = 0.0,
        target: Array | None = None,
        clamp: Array | None = None,
    ) -> list[Array]:
        """Run ``iterations`` iterations of the schedule from ``state`` (not modified).

        ``beta`` != 0 nudges the output toward ``target`` (EP); ``clamp`` holds the output at
        the given value (CL/CpL) and relaxes only the hidden layers.
        """
        if beta != 0.0:
            if target is None:
                raise ValueError("a nudged phase needs a target")
            if beta <= -1.0:
                raise ValueError(f"beta must be > -1 for the nudged output update, got {beta}")
        state = list(state)
        if clamp is not None:
            state[-1] = clamp
        groups = self.plan.groups(schedule, clamp_output=clamp is not None)
        cache: dict = {}
        if self._noise is None:
            for _ in range(iterations):
                for g in groups:
                    state = self.half_step(state, g, beta, target, cache)
            return state
        mode = self._noise.resample
        try:
            for it in range(iterations):
                if (
                    mode == "per_step"
                    or (mode == "per_phase" and it == 0)
                    or self._noise_now is None
                ):
                    self.redraw_read_noise()
                if it == 0 or mode == "per_step":
                    self._apply_read_noise()
                for g in groups:
                    state = self.half_step(state, g, beta, target, cache)
        finally:
            self._read = None
        return state

    def residual(
        self,
        state: list[Array],
        beta: float = 0.0,
        target: Array | None = None,
        clamp_output: bool = False,
    ) -> float:
        """``max_k max |s_k - act(h_k)|`` over the free layers: 0 at a fixed point."""
        free = self.plan.free_layers(clamp_output)
        return max(
            self.op_abs_max(state[k] - self._activate(k, self.field(state, k), beta, target))
            for k in free
        )

    def energy(self, state: list[Array], beta: float = 0.0, target: Array | None = None) -> Array:
        """Per-example ``E(s) (+ beta/2 ||o - y||^2)``, shape ``(N,)``.

        ``E = sum_k 1/2||s_k||^2 - b_k.s_k - <s_k, T_k(s_{k-1})>`` (true max for max-pool).
        """
        plan = self.plan
        e = None
        for k in range(1, plan.num_layers):
            s = state[k]
            t, _ = self.coupling_forward(plan.couplings[k - 1], state[k - 1])
            b = self.op_add_channel(self.zeros_like(s), self.params[plan.bias_names[k]])
            term = self.op_per_example_dot(s, 0.5 * s - b - t)
            e = term if e is None else e + term
        if beta != 0.0:
            d = state[-1] - target
            e = e + 0.5 * beta * self.op_per_example_dot(d, d)
        return e

    def zeros_like(self, a: Array) -> Array:
        return self.zeros(tuple(a.shape))

    # ------------------------------------------------------------------ gradients
    def param_grads(self, state: list[Array]) -> dict[str, Array]:
        """Batch-mean ``dE/dtheta`` at ``state``, in closed form.

        ``dE/dW_k = -(1/N) sum_n corr(s_{k-1}, unpool(s_k))`` and
        ``dE/db_k = -(1/N) sum_n sum_space s_k``. Each coupling's entry reads only the two
        layers the coupling joins (and the argmax at its pre layer).
        """
        plan = self.plan
        n = state[0].shape[0]
        out: dict[str, Array] = {}
        for c in plan.couplings:
            pre, post = state[c.pre], state[c.post]
            idx = self.pool_index(c, pre)
            out[c.name] = self.coupling_correlation(c, pre, post, idx) * (-1.0 / n)
            out[plan.bias_names[c.post]] = self.op_channel_sum(post) * (-1.0 / n)
        return {k: out[k] for k in self.params}

    def vjp_step(
        self, state: list[Array], group: tuple[int, ...], cot: list[Array | None]
    ) -> tuple[list[Array | None], dict[str, Array]]:
        """Vector-Jacobian product of one free half-step ``s' = step(s, theta)``.

        Given the cotangent ``cot`` of ``s'``, returns the cotangent of ``s`` and the
        (batch-summed) cotangent of the parameters. For ``k`` in the group
        ``s'_k = act(h_k(s))``: ``delta_k = cot_k * act'(h_k)`` flows to ``b_k``, to the
        neighbours through ``T_k^*`` / ``T_{k+1}`` and to the weights through the
        correlations; layers outside the group pass their cotangent through.
        """
        plan = self.plan
        new: list[Array | None] = list(cot)
        for k in group:
            new[k] = None
        pc: dict[str, Array] = {}

        def acc(lst_or_dict, key, val):
            cur = (
                lst_or_dict[key] if (isinstance(lst_or_dict, list) or key in lst_or_dict) else None
            )
            lst_or_dict[key] = val if cur is None else cur + val

        for k in group:
            if cot[k] is None:
                continue
            d = cot[k]
            if k < plan.output:
                d = d * self.op_mask01(self.field(state, k))
            acc(pc, plan.bias_names[k], self.op_channel_sum(d))
            c_in = plan.couplings[k - 1]
            idx = self.pool_index(c_in, state[k - 1])
            if k - 1 >= 1:
                acc(new, k - 1, self.coupling_adjoint(c_in, d, idx))
            acc(pc, c_in.name, self.coupling_correlation(c_in, state[k - 1], d, idx))
            if k < plan.output:
                c_out = plan.couplings[k]
                idx_out = self.pool_index(c_out, state[k])
                acc(new, k + 1, self.coupling_forward_at(c_out, d, idx_out))
                acc(pc, c_out.name, self.coupling_correlation(c_out, d, state[k + 1], idx_out))
        return new, pc

    def _output_cotangent(self, state: list[Array], target: Array) -> list[Array | None]:
        """Cotangent of the batch-mean cost ``(1/N) sum_n 1/2||o - y||^2``."""
        cot: list[Array | None] = [None] * self.plan.num_layers
        cot[-1] = (state[-1] - target) * (1.0 / state[0].shape[0])
        return cot

    def _complete(self, pc: dict[str, Array]) -> dict[str, Array]:
        return {k: pc[k] if k in pc else self.zeros_like(v) for k, v in self.params.items()}

    def tbp_gradient(
        self, state: list[Array], target: Array, iterations: int, schedule: str = "async"
    ) -> tuple[dict[str, Array], list[Array]]:
        """Truncated backprop: exact gradient of the cost after ``iterations`` free
        iterations from ``state``, by reverse accumulation through the stored half-steps.

        Returns (gradient, final state).
        """
        tape = []
        groups = self.plan.groups(schedule)
        for _ in range(iterations):
            for g in groups:
                tape.append((state, g))
                state = self.half_step(state, g)
        cot = self._output_cotangent(state, target)
        grads: dict[str, Array] = {}
        for st, g in reversed(tape):
            cot, pc = self.vjp_step(st, g, cot)
            for k, v in pc.items():
                grads[k] = v if k not in grads else grads[k] + v
        return self._complete(grads), state

    def rbp_gradient(self, state: list[Array], target: Array, iterations: int) -> dict[str, Array]:
        """Recurrent backprop (Almeida-Pineda) on the synchronous map ``Phi`` at ``state``.

        ``lambda_0 = dC/ds``; ``g = sum_{t<T} (dPhi/dtheta)^T lambda_t``,
        ``lambda_{t+1} = (dPhi/ds)^T lambda_t``. As ``T`` grows this tends to the implicit
        gradient when ``Phi`` contracts.
        """
        (group,) = self.plan.groups("sync")
        cot = self._output_cotangent(state, target)
        grads: dict[str, Array] = {}
        for _ in range(iterations):
            cot, pc = self.vjp_step(state, group, cot)
            for k, v in pc.items():
                grads[k] = v if k not in grads else grads[k] + v
        return self._complete(grads)

    def implicit_gradient(
        self, state: list[Array], target: Array, tol: float = 1e-12, max_iterations: int = 1000
    ) -> tuple[dict[str, Array], float]:
        """Exact gradient of the cost at the fixed point ``state`` by implicit differentiation.

        On the free units ``F`` (hidden units strictly inside their clamp, and the output)
        the fixed point satisfies ``s_F = h_F(s, theta)``, so
        ``dL/dtheta = (dh/dtheta)^T w`` with ``(I - M J M) w = M dC/ds``; ``J`` is the
        (symmetric) coupling Jacobian with max-pool argmaxes at ``state`` and ``M`` the
        free-unit mask. Solved by conjugate gradients (block-diagonal over the batch).
        Returns (gradient, relative residual of the linear solve).
        """
        plan = self.plan
        L = plan.output
        masks = [None] + [self.op_mask01(self.field(state, k)) for k in range(1, L)] + [None]
        idx = [self.pool_index(c, state[c.pre]) for c in plan.couplings]

        def mask(k, v):
            return v if masks[k] is None else v * masks[k]

        def matvec(v):
            out = []
            for k in range(1, L + 1):
                jv = None
                if k - 1 >= 1:
                    jv = self.coupling_forward_at(plan.couplings[k - 1], v[k - 2], idx[k - 1])
                if k < L:
                    t = self.coupling_adjoint(plan.couplings[k], v[k], idx[k])
                    jv = t if jv is None else jv + t
                out.append(v[k - 1] - mask(k, jv))
            return out

        def dot(a, b):
            return sum(self.op_vdot(x, y) for x, y in zip(a, b, strict=True))

        c = self._output_cotangent(state, target)
        rhs = [
            mask(k, c[k]) if c[k] is not None else self.zeros_like(state[k])
            for k in range(1, L + 1)
        ]
        w = [self.zeros_like(r) for r in rhs]
        r = list(rhs)
        p = list(r)
        rr = dot(r, r)
        norm0 = max(rr, 1e-300) ** 0.5
        for _ in range(max_iterations):
            if rr**0.5 <= tol * norm0:
                break
            ap = matvec(p)
            alpha = rr / dot(p, ap)
            w = [a + alpha * b for a, b in zip(w, p, strict=True)]
            r = [a - alpha * b for a, b in zip(r, ap, strict=True)]
            rr_new = dot(r, r)
            p = [a + (rr_new / rr) * b for a, b in zip(r, p, strict=True)]
            rr = rr_new
        cot: list[Array | None] = [None] + w
        (group,) = plan.groups("sync")
        _, pc = self.vjp_step(state, group, cot)
        return self._complete(pc), rr**0.5 / norm0

    def check_finite(self, state: list[Array]) -> str | None:
        """Name of the first layer or parameter holding NaN/Inf, else ``None``."""
        for k in range(1, self.plan.num_layers):
            if not self.op_isfinite(state[k]):
                return f"layer {self.plan.layer_names[k]}"
        for name, v in self.params.items():
            if not self.op_isfinite(v):
                return f"parameter {name}"
        return None
