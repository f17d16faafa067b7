"""⑤ Relaxation, the part of :class:`analogebl.backends.engine.Backend` that runs the circuit:
hardware-effect hooks (quantizers, read noise), couplings, layer fields, asynchronous and
synchronous schedules, free / nudged / output-clamped phases, residual and energy.

Equations (per example, ``T_k`` the coupling into layer ``k``, ``T_k^*`` its adjoint with a
max-pool's argmax taken at the current pre-synaptic state):

* field   ``h_k = b_k + T_k(s_{k-1}) + T_{k+1}^*(s_{k+1})``  (``= -dE/ds_k + s_k``)
* hidden  ``s_k <- clip(h_k, 0, 1)``
* output  free: ``o <- h_o``; EP nudge with ``F = E + beta/2 ||o - y||^2``:
  ``o <- (h_o + beta*y) / (1 + beta)`` (exact block minimiser, needs ``beta > -1``);
  clamped (CL/CpL): ``o`` held fixed and excluded from the free layers.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any

import numpy as np

from analogebl.plan import NUDGES, CouplingPlan
from analogebl.plan.effects import NodeClamp, NudgeCurrent, ReadNoise, TileReads, scaled_normal

__all__ = ["RelaxationMixin"]

Array = Any


class RelaxationMixin:
    """Relaxation methods of :class:`~analogebl.backends.engine.Backend`, built from its
    primitives (``op_*``), parameters and hardware-effect state."""

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

    def set_converter_rng(self, rng: np.random.Generator | None) -> None:
        """The generator of the converters' noise and stochastic rounding (``plan.effects``);
        needed only when a quantizer draws (:attr:`StateQuantizer.random`)."""
        self._conv_rng = rng

    def _converter_rng(self) -> np.random.Generator:
        if self._conv_rng is None:
            raise ValueError(
                "a converter with noise or stochastic rounding needs an explicit numpy "
                "Generator (set_converter_rng)"
            )
        return self._conv_rng

    def quantize(self, s: Array, q, clamp01: bool = False) -> Array:
        """One conversion ``q(s)`` (``clamp01``: of the diode-clamped node ``clip(s, 0, 1)``),
        with the converter's noise and stochastic rounding when it has them."""
        if not q.random:
            return self.op_clip01_quantize(s, q) if clamp01 else self.op_quantize(s, q)
        rng = self._converter_rng()
        if clamp01:
            s = self.op_clip01(s)
        return self.op_quantize(s + self.asarray(q.dither(tuple(s.shape), rng)), q)

    def set_nudge_current(self, source: NudgeCurrent | None) -> None:
        """The nudging current source's limits (``plan.effects``); ``None``: ideal."""
        if source is not None and source.levels is None and math.isinf(source.i_max):
            source = None
        self._nudge_src = source
        self._nudge_grid = None if source is None else source.grid  # built once, not per update

    def _nudge_current(self, i: Array) -> Array:
        """``c(I)``: saturate, or (with levels) round to the source's codes, which saturates."""
        if self._nudge_grid is None:
            return self.op_clip(i, -self._nudge_src.i_max, self._nudge_src.i_max)
        return self.op_quantize(i, self._nudge_grid)

    def set_tile_reads(self, tiles: dict[str, TileReads] | None) -> None:
        """Read the named couplings as tiles whose outputs are converted and summed
        digitally (``plan.effects``); ``None`` (or an empty dict): one exact read each."""
        if tiles:
            unknown = set(tiles) - {c.name for c in self.plan.couplings}
            if unknown:
                raise KeyError(f"tile reads for unknown couplings {sorted(unknown)}")
        self._tiles = dict(tiles) if tiles else None

    @contextmanager
    def exact_reads(self):
        """Within the block, couplings are read exactly (no tiles, converters or current
        limits): the linear maps a backward pass differentiates (straight through the
        periphery)."""
        saved, self._tiles = self._tiles, None
        try:
            yield
        finally:
            self._tiles = saved

    def set_node_clamps(self, clamps) -> None:
        """The diode/amplifier nonlinearity of each hidden layer (``plan.effects``):
        ``clamps[k]`` for layer ``k`` (entries for the input and output are ignored;
        ``None`` or an ideal clamp: ``clip(h, 0, 1)``); ``None`` switches them all off."""
        if clamps is not None:
            clamps = tuple(clamps)
            if len(clamps) != self.plan.num_layers:
                raise ValueError(
                    f"need one clamp (or None) per layer ({self.plan.num_layers}), "
                    f"got {len(clamps)}"
                )
            clamps = tuple(
                None if (c is None or c.hard or not 0 < k < self.plan.output) else c
                for k, c in enumerate(clamps)
            )
            if all(c is None for c in clamps):
                clamps = None
        self._clamps = clamps

    def _node(self, k: int, h: Array) -> Array:
        """The hidden node's response: ``clip(h, 0, 1)`` or its soft clamp."""
        c: NodeClamp | None = None if self._clamps is None else self._clamps[k]
        if c is None:
            return self.op_clip01(h)
        a, b = c.knees
        s0 = (h + c.shift) * (1.0 / c.c) if (c.shift or c.c != 1.0) else h
        cl = self.op_clip(s0, a, b)
        return cl if c.rho == 0.0 else cl + c.rho * (s0 - cl)

    def node_slope(self, k: int, h: Array) -> Array:
        """``d act(h)/dh`` of hidden layer ``k``: the clip's 0/1 mask, or the soft clamp's
        ``1/c`` inside its knees and ``rho/c`` beyond them."""
        c: NodeClamp | None = None if self._clamps is None else self._clamps[k]
        if c is None:
            return self.op_mask01(h)
        return self._soft_slope(h, c, 1.0 / c.c, c.rho / c.c)

    def node_slope_sqrt(self, k: int, h: Array) -> tuple[Array, Array | None]:
        """``(D^1/2, D^-1/2)`` of the node slope ``D`` (the inverse taken as 0 where
        ``D = 0``; ``None`` for the clip, whose ``D`` is its own square root)."""
        c: NodeClamp | None = None if self._clamps is None else self._clamps[k]
        if c is None:
            return self.op_mask01(h), None
        inv_out = math.sqrt(c.c / c.rho) if c.rho > 0 else 0.0
        return (
            self._soft_slope(h, c, math.sqrt(1.0 / c.c), math.sqrt(c.rho / c.c)),
            self._soft_slope(h, c, math.sqrt(c.c), inv_out),
        )

    def _soft_slope(self, h: Array, c: NodeClamp, inside: float, outside: float) -> Array:
        """``inside`` where the soft clamp's ``s0`` lies within its knees, else ``outside``."""
        a, b = c.knees
        m = self.op_mask01(((h + c.shift) * (1.0 / c.c) - a) * (1.0 / (b - a)))
        return m * (inside - outside) + outside

    def _tile_read(self, x: Array, q, i_max: float) -> Array:
        """One tile output as the periphery delivers it: ``q(clip(x, -i_max, i_max))``."""
        if i_max != math.inf:
            x = self.op_clip(x, -i_max, i_max)
        return x if q is None else self.quantize(x, q)

    def _tile_sum(self, blocks, read, q, i_max: float) -> Array:
        """``sum_t a_t(read(block_t))``: the digital sum of the tiles' converted outputs."""
        out = None
        for blk in blocks:
            part = self._tile_read(read(blk), q, i_max)
            out = part if out is None else out + part
        return out

    def _conv_read(self, c: CouplingPlan, pre: Array, w: Array) -> Array:
        """``conv(W, pre)`` as the crossbar delivers it (tiled: a sum of converted parts)."""
        t = None if self._tiles is None else self._tiles.get(c.name)
        if t is None:
            return self.op_conv(pre, w, c.padding)
        return self._tile_sum(
            t.row_blocks, lambda r: self.op_conv(pre[:, r], w[:, r], c.padding), t.forward, t.i_max
        )

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
        every backend sees the same numbers; :func:`~analogebl.plan.effects.scaled_normal`)."""
        if self._noise is None:
            return
        self._noise_now = {
            k: self.asarray(scaled_normal(std, self._noise_rng))
            for k, std in self._noise.std.items()
        }

    @property
    def read_noise(self) -> ReadNoise | None:
        """The read-noise model in force (``None``: off)."""
        return self._noise

    def read_noise_draw(self) -> dict[str, Array] | None:
        """The current draw ``std * xi`` per noisy parameter (``None``: none drawn yet)."""
        return self._noise_now

    def set_read_noise_draw(self, draw: dict[str, Array] | None) -> None:
        """Install a draw (a checkpoint's, or the one an update keeps across a weight
        reload under ``per_update`` resampling)."""
        self._noise_now = draw

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
        return self.op_pool_max(self._conv_read(c, pre, self.weight(c.name)))[1]

    def coupling_forward(self, c: CouplingPlan, pre: Array) -> tuple[Array, Array | None]:
        """``T(pre) = pool(conv(W, pre))`` or ``pre @ W``; returns (value, argmax or None)."""
        w = self.weight(c.name)
        if c.kind == "dense":
            n = pre.shape[0]
            a = pre.reshape(n, -1)
            t = None if self._tiles is None else self._tiles.get(c.name)
            if t is None:
                out = self.op_matmul(a, w)
            else:
                out = self._tile_sum(
                    t.row_blocks, lambda r: self.op_matmul(a[:, r], w[r]), t.forward, t.i_max
                )
            return out.reshape((n, *self.plan.layer_shapes[c.post])), None
        z = self._conv_read(c, pre, w)
        if c.pool == "max":
            return self.op_pool_max(z)
        if c.pool == "avg":
            return self.op_pool_avg(z), None
        return z, None

    def coupling_forward_at(self, c: CouplingPlan, pre: Array, idx: Array | None) -> Array:
        """``T`` with the max-pool argmax held at ``idx`` (a linear map of ``pre``)."""
        if c.kind == "conv" and c.pool == "max":
            return self.op_pool_at(self._conv_read(c, pre, self.weight(c.name)), idx)
        return self.coupling_forward(c, pre)[0]

    def coupling_adjoint(self, c: CouplingPlan, post: Array, idx: Array | None) -> Array:
        """``T^*(post)``: ``conv_T(unpool(post), W)`` or ``post @ W.T``, shaped as the pre layer."""
        w = self.weight(c.name)
        n = post.shape[0]
        t = None if self._tiles is None else self._tiles.get(c.name)
        if c.kind == "dense":
            b = post.reshape(n, -1)
            if t is None:
                out = self.op_matmul_t(b, w)
            else:
                out = self._tile_sum(
                    t.col_blocks, lambda j: self.op_matmul_t(b[:, j], w[:, j]), t.adjoint, t.i_max
                )
            return out.reshape((n, *self.plan.layer_shapes[c.pre]))
        u = self._unpool(c, post, idx)
        if t is None:
            return self.op_conv_t(u, w, c.padding)
        return self._tile_sum(
            t.col_blocks, lambda j: self.op_conv_t(u[:, j], w[j], c.padding), t.adjoint, t.i_max
        )

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
                x = self.quantize(x, self._quant[0])
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

    def _activate(
        self, k: int, h: Array, beta: float, target: Array | None, current: Array | None = None
    ) -> Array:
        """The new state of layer ``k`` from its field ``h``: the diode clamp for hidden
        layers; for the output under a nudge ``beta``, the exact minimiser of
        ``1/2 o^2 - h o + beta/2 ||o - y||^2``, ``(h + beta y) / (1 + beta)``, or, given
        the output's ``current`` value, the published code's one gradient step
        ``h - beta (o - y)`` (same fixed point; a contraction for ``|beta| < 1``)."""
        q = None if self._quant is None else self._quant[k]
        if k < self.plan.output:
            if self._clamps is not None and self._clamps[k] is not None:
                s = self._node(k, h)
                return s if q is None else self.quantize(s, q)
            return self.op_clip01(h) if q is None else self.quantize(h, q, clamp01=True)
        if beta != 0.0:
            if self._nudge_src is not None:  # a real current source: o = h + c(I)
                o = (h + beta * target) * (1.0 / (1.0 + beta)) if current is None else current
                h = h + self._nudge_current(beta * (target - o))
            elif current is None:
                h = (h + beta * target) * (1.0 / (1.0 + beta))
            else:
                h = h - beta * (current - target)
        return h if q is None else self.quantize(h, q)

    def half_step(
        self,
        state: list[Array],
        group: tuple[int, ...],
        beta: float = 0.0,
        target: Array | None = None,
        cache: dict | None = None,
        nudge: str = "exact",
    ) -> list[Array]:
        """Update every layer of ``group`` at once from the current state (``nudge``: how
        a nudged output moves, see :meth:`_activate`)."""
        step = nudge == "step" and beta != 0.0
        new = [
            self._activate(k, self.field(state, k, cache), beta, target,
                           state[k] if step and k == self.plan.output else None)
            for k in group
        ]  # fmt: skip
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
        nudge: str = "exact",
    ) -> list[Array]:
        """Run ``iterations`` iterations of the schedule from ``state`` (not modified).

        ``beta`` != 0 nudges the output toward ``target`` (EP); ``clamp`` holds the output at
        the given value (CL/CpL) and relaxes only the hidden layers. ``nudge``: the nudged
        output's update, ``"exact"`` (its minimiser) or ``"step"`` (one gradient step, as
        the paper's published code).
        """
        if nudge not in NUDGES:
            raise ValueError(f"nudge must be one of {NUDGES}, got {nudge!r}")
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
                    state = self.half_step(state, g, beta, target, cache, nudge)
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
                    state = self.half_step(state, g, beta, target, cache, nudge)
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
        """``max_k max |s_k - act(h_k)|`` over the free layers: 0 at a fixed point.

        Under read noise the fields are those of the last relaxation's draw, the weights the
        state settled under (the noise-free weights would report the noise itself as
        distance from equilibrium: 0.015 for a state at an exact fixed point of its draw).
        """
        free = self.plan.free_layers(clamp_output)
        noisy = self._read is None and self._noise_now is not None
        if noisy:
            self._apply_read_noise()
        try:
            return max(
                self.op_abs_max(state[k] - self._activate(k, self.field(state, k), beta, target))
                for k in free
            )
        finally:
            if noisy:
                self._read = None

    def energy(self, state: list[Array], beta: float = 0.0, target: Array | None = None) -> Array:
        """Per-example ``E(s) (+ beta/2 ||o - y||^2)``, shape ``(N,)``.

        ``E = sum_k 1/2||s_k||^2 - b_k.s_k - <s_k, T_k(s_{k-1})>`` (true max for max-pool);
        a hidden layer with a soft node clamp contributes its co-content ``sum e(s_k)``
        (``plan.effects``) in place of ``1/2||s_k||^2``.
        """
        plan = self.plan
        e = None
        for k in range(1, plan.num_layers):
            s = state[k]
            t, _ = self.coupling_forward(plan.couplings[k - 1], state[k - 1])
            b = self.op_add_channel(self.zeros_like(s), self.params[plan.bias_names[k]])
            clamp = None if self._clamps is None else self._clamps[k]
            if clamp is None:
                term = self.op_per_example_dot(s, 0.5 * s - b - t)
            else:
                term = self.op_per_example_dot(s, (0.5 / clamp.gain) * s - b - t)
                term = term + self._clamp_co_content(s, clamp)
            e = term if e is None else e + term
        if beta != 0.0:
            d = state[-1] - target
            e = e + 0.5 * beta * self.op_per_example_dot(d, d)
        return e

    def _clamp_co_content(self, s: Array, c: NodeClamp) -> Array:
        """Per-example sum of the diodes' part of ``e(s)`` (all but ``s^2/(2A)``)."""
        e = None
        if c.kappa_off:
            d1, d2 = s - c.lo, s - c.hi
            e = (0.5 * c.kappa_off) * (
                self.op_per_example_dot(d1, d1) + self.op_per_example_dot(d2, d2)
            )
        extra = c.kappa_on - c.kappa_off
        if math.isfinite(extra) and extra:
            a, b = c.knees
            lo, hi = self.op_clip(s - a, -math.inf, 0.0), self.op_clip(s - b, 0.0, math.inf)
            t = (0.5 * extra) * (self.op_per_example_dot(lo, lo) + self.op_per_example_dot(hi, hi))
            e = t if e is None else e + t
        return e if e is not None else self.op_per_example_dot(s, self.zeros_like(s))

    def zeros_like(self, a: Array) -> Array:
        return self.zeros(tuple(a.shape))

    def check_finite(self, state: list[Array]) -> str | None:
        """Name of the first layer or parameter holding NaN/Inf, else ``None``."""
        for k in range(1, self.plan.num_layers):
            if not self.op_isfinite(state[k]):
                return f"layer {self.plan.layer_names[k]}"
        for name, v in self.params.items():
            if not self.op_isfinite(v):
                return f"parameter {name}"
        return None
