"""⑥ The orthogonalizing optimizers (Muon family): ``muon``, ``smep``, ``local_ep``,
``natural_ep`` and ``sdmep`` are all :class:`OrthogonalOptimizer` with different routes and
stages (built by :func:`analogebl.learning.optimizers.make_optimizer`). Matrix primitives
(Newton-Schulz, QR, power iteration) are in :mod:`analogebl.learning.orthogonalize`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analogebl.errors import ConfigError
from analogebl.learning.orthogonalize import (
    asarray_like,
    column_normalize,
    eye_like,
    from_matrix,
    inverse,
    newton_schulz5,
    orthonormalize_columns,
    spectral_norm,
    to_matrix,
    trace,
)

__all__ = ["OrthogonalOptimizer"]

Array = Any


class OrthogonalOptimizer:
    """Muon-family optimizer: each parameter follows one route, ``ns``, ``dion`` or ``adamw``.

    ``ns`` (Muon, Jordan 2024), on the ``(fan_out, fan_in)`` view ``G`` of the gradient::

        B <- mu B + G;  U = NS5(G + mu B) (Nesterov) or NS5(B);
        W <- (1 - lr wd) W - lr max(1, fan_out/fan_in)^(1/2) U

    ``dion`` (Ahn et al. 2025, arXiv 2504.05295, Algorithm 1; error feedback inside the
    momentum, rank ``r``)::

        B = M + G;  P = QR(B Q);  R = B^T P;  M <- B - (1 - mu) P R^T;  Q <- colnorm(R);
        W <- (1 - lr wd) W - lr (fan_out/fan_in)^(1/2) P Q^T

    ``adamw``: Adam with decoupled weight decay (biases, and the weights Muon leaves out).
    Optional stages: ``kfac`` (before the momentum, dense couplings) replaces ``G`` by the
    damped Kronecker-factored natural gradient ``(Gam + g_G I)^-1 G (A + g_A I)^-1`` with
    ``A = E[a a^T]`` (pre-synaptic node voltages at the free equilibrium) and
    ``Gam = E[d d^T]``, ``d = (s^(b2) - s^(b1)) / (b2 - b1)`` (post-synaptic EP error
    signals), both running averages (``kfac_decay``), damping relative to the factor's mean
    eigenvalue: ``g_A = damping tr(A)/n``; ``spectral_cap`` (after the step) rescales a
    weight ``W <- (cap / sigma) W`` when its power-iteration ``sigma_max`` exceeds ``cap``.

    Parameters
    ----------
    lrs : dict
        Per-parameter base learning rates (routes ``ns``/``dion``: the orthogonal step;
        ``adamw``: Adam's rate).
    routes : dict
        ``name -> "ns" | "dion" | "adamw"``.
    capped : set of str
        Weights under the spectral cap.
    kfac : set of str
        Dense weights preconditioned by K-FAC (needs :meth:`observe` each step).
    rng : numpy.random.Generator
        Draws Dion's initial right factors ``Q``.
    """

    def __init__(
        self,
        name: str,
        lrs: dict[str, float],
        routes: dict[str, str],
        *,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        weight_decay: float = 0.0,
        spectral_cap: float = 0.0,
        capped: set[str] | frozenset = frozenset(),
        rank_frac: float = 0.25,
        kfac: set[str] | frozenset = frozenset(),
        kfac_decay: float = 0.95,
        damping: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        cap_iterations: int = 3,
        rng: np.random.Generator | None = None,
    ):
        bad = {k: r for k, r in routes.items() if r not in ("ns", "dion", "adamw")}
        if bad:
            raise ConfigError(f"unknown optimizer route(s) {bad}", key="optimizer.name")
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(
                f"momentum must be in [0, 1), got {momentum}", key="optimizer.momentum"
            )
        if not 0.0 < rank_frac <= 1.0:
            raise ConfigError(
                f"rank_frac must be in (0, 1], got {rank_frac}", key="optimizer.rank_frac"
            )
        self.name = name
        self.base_lrs = dict(lrs)
        self.lrs = dict(lrs)
        self.routes = dict(routes)
        self.momentum, self.nesterov, self.ns_steps = momentum, nesterov, ns_steps
        self.weight_decay = weight_decay
        self.spectral_cap, self.capped = spectral_cap, set(capped) if spectral_cap else set()
        self.cap_iterations = cap_iterations
        self.rank_frac = rank_frac
        self.kfac, self.kfac_decay, self.damping = set(kfac), kfac_decay, damping
        self.b1, self.b2 = betas
        self.eps = eps
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.t = 0
        self.buf: dict[str, dict[str, Any]] = {k: {} for k in ("mom", "q", "v", "m", "s", "A", "G")}
        self.last_sigma: dict[str, float] = {}

    def lr(self, name: str) -> float:
        return self.lrs[name]

    # ------------------------------------------------------------------ K-FAC statistics
    def observe(
        self,
        backend,
        free_state: list[Array],
        state1: list[Array],
        state2: list[Array],
        beta1: float,
        beta2: float,
    ) -> None:
        """Update the Kronecker factors from one step's equilibria (batch means).

        ``A <- rho A + (1 - rho) a^T a / N`` with ``a`` the pre layer at the free
        equilibrium; ``Gam <- rho Gam + (1 - rho) d^T d / N`` with
        ``d = (s2_post - s1_post) / (beta2 - beta1)``. Each factor reads only the two
        layers its crossbar joins.
        """
        if not self.kfac:
            return
        rho = self.kfac_decay
        for c in backend.plan.couplings:
            if c.name not in self.kfac:
                continue
            a = free_state[c.pre].reshape(free_state[c.pre].shape[0], -1)
            d = (state2[c.post] - state1[c.post]) * (1.0 / (beta2 - beta1))
            d = d.reshape(d.shape[0], -1)
            n = a.shape[0]
            # a^T a through the backend: float32 under a 16-bit relaxation (the inverses need it)
            new = {
                "A": backend.op_outer_sum(a, a) * (1.0 / n),
                "G": backend.op_outer_sum(d, d) * (1.0 / n),
            }
            for key, f in new.items():
                old = self.buf[key].get(c.name)
                self.buf[key][c.name] = f if old is None else old * rho + f * (1 - rho)

    def _precondition(self, name: str, g: Array) -> Array:
        a, gam = self.buf["A"].get(name), self.buf["G"].get(name)
        if a is None or gam is None:
            raise RuntimeError(f"K-FAC factors of {name} missing: call observe() before step()")
        na, ng = a.shape[0], gam.shape[0]
        a_inv = inverse(a + eye_like(a, na) * (self.damping * max(trace(a) / na, 1e-12)))
        g_inv = inverse(gam + eye_like(gam, ng) * (self.damping * max(trace(gam) / ng, 1e-12)))
        return g_inv @ g @ a_inv

    # ------------------------------------------------------------------ the step
    def step(self, params: dict[str, Array], grads: dict[str, Array]) -> None:
        self.t += 1
        for name, g in grads.items():
            if self.routes[name] == "adamw":
                params[name] = self._adamw(name, params[name], g)
            else:
                params[name] = self._orthogonal(name, params[name], g)

    def _adamw(self, name: str, p: Array, g: Array) -> Array:
        m, s = self.buf["m"].get(name), self.buf["s"].get(name)
        m = g * (1 - self.b1) if m is None else m * self.b1 + g * (1 - self.b1)
        s = g * g * (1 - self.b2) if s is None else s * self.b2 + (g * g) * (1 - self.b2)
        self.buf["m"][name], self.buf["s"][name] = m, s
        upd = (m / (1.0 - self.b1**self.t)) / ((s / (1.0 - self.b2**self.t)) ** 0.5 + self.eps)
        lr = self.lrs[name]
        return p * (1.0 - lr * self.weight_decay) - upd * lr

    def _orthogonal(self, name: str, p: Array, g: Array) -> Array:
        gm = to_matrix(g)
        if name in self.kfac:
            gm = self._precondition(name, gm)
        rows, cols = gm.shape
        mu = self.momentum
        if self.routes[name] == "ns":
            b = self.buf["mom"].get(name)
            b = gm if b is None else b * mu + gm
            self.buf["mom"][name] = b
            u = newton_schulz5(gm + b * mu if self.nesterov else b, self.ns_steps)
            scale = max(1.0, rows / cols) ** 0.5
        else:
            q = self.buf["q"].get(name)
            if q is None:
                r = max(1, int(self.rank_frac * min(rows, cols)))
                q = asarray_like(column_normalize(self.rng.standard_normal((cols, r))), gm)
            m = self.buf["mom"].get(name)
            b = gm if m is None else m + gm
            pf = orthonormalize_columns(b @ q)
            rf = b.T @ pf
            self.buf["mom"][name] = b - (pf @ rf.T) * (1.0 - mu)
            q = column_normalize(rf)
            self.buf["q"][name] = q
            u = pf @ q.T
            scale = (rows / cols) ** 0.5
        lr = self.lrs[name]
        w = to_matrix(p) * (1.0 - lr * self.weight_decay) - u * (lr * scale)
        if name in self.capped:
            v = self.buf["v"].get(name)
            if v is None:
                v = asarray_like(np.full(cols, cols**-0.5), w)
            sigma, v = spectral_norm(w, v, self.cap_iterations)
            self.buf["v"][name] = v
            self.last_sigma[name] = sigma
            if sigma > self.spectral_cap:
                w = w * (self.spectral_cap / sigma)
        return from_matrix(w, p)

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Array]:
        """Optimizer state as ``kind/param -> array`` (checkpoints)."""
        return {f"{kind}/{k}": v for kind, d in self.buf.items() for k, v in d.items()}

    def load_state(self, state: dict[str, Array], scalars: dict[str, float]) -> None:
        """Inverse of :meth:`state` (plus :meth:`scalars`)."""
        self.buf = {k: {} for k in self.buf}
        for key, v in state.items():
            kind, name = key.split("/", 1)
            if kind in self.buf:
                self.buf[kind][name] = v
        self.t = int(scalars.get("t", 0))

    def scalars(self) -> dict[str, float]:
        return {"t": self.t}
