"""⑤ Gradients, the part of :class:`analogebl.backends.engine.Backend` that differentiates:
closed-form parameter gradients ``dE/dtheta``, the adjoint (vector-Jacobian) step of a
half-step, and from it TBP, RBP and the implicit gradient at a fixed point.
"""

from __future__ import annotations

from analogebl.backends.relaxation import Array

__all__ = ["GradientsMixin"]


class GradientsMixin:
    """Gradient methods of :class:`~analogebl.backends.engine.Backend`, built from its
    primitives (``op_*``) and the couplings and fields of
    :class:`~analogebl.backends.relaxation.RelaxationMixin`."""

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
                d = d * self.node_slope(k, self.field(state, k))
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
        Returns (gradient, relative residual of the linear solve). The couplings are read
        exactly (:meth:`exact_reads`).
        """
        with self.exact_reads():
            return self._implicit_gradient(state, target, tol, max_iterations)

    def _implicit_gradient(
        self, state: list[Array], target: Array, tol: float, max_iterations: int
    ) -> tuple[dict[str, Array], float]:
        plan = self.plan
        L = plan.output
        # the node slopes D_k = act'(h_k) enter symmetrically, (I - D^1/2 J D^1/2) z =
        # D^1/2 dC/ds, and the parameters see D^1/2 z = D cot (cot = D^-1/2 z); with the hard
        # clip D = M (0/1) and this is (I - M J M) w = M dC/ds, cot = w
        halves = [None] + [self.node_slope_sqrt(k, self.field(state, k)) for k in range(1, L)]
        masks = [None if h is None else h[0] for h in halves] + [None]
        idx = [self.pool_index(c, state[c.pre]) for c in plan.couplings]

        def mask(k, v):
            return v if masks[k] is None else v * masks[k]

        def matvec(v0):
            v = v0  # the 0/1 mask needs to act on one side only; D^1/2 on both
            if self._clamps is not None:
                v = [mask(k, x) for k, x in enumerate(v0, start=1)]
            out = []
            for k in range(1, L + 1):
                jv = None
                if k - 1 >= 1:
                    jv = self.coupling_forward_at(plan.couplings[k - 1], v[k - 2], idx[k - 1])
                if k < L:
                    t = self.coupling_adjoint(plan.couplings[k], v[k], idx[k])
                    jv = t if jv is None else jv + t
                out.append(v0[k - 1] - mask(k, jv))
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
        cot: list[Array | None] = [None] + [
            x if k == L or halves[k][1] is None else x * halves[k][1]
            for k, x in enumerate(w, start=1)
        ]
        (group,) = plan.groups("sync")
        _, pc = self.vjp_step(state, group, cot)
        return self._complete(pc), rr**0.5 / norm0
