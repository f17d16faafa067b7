"""⑥ Optimizers and learning-rate schedules.

The optimizers only use arithmetic operators, so they work unchanged on NumPy arrays and
torch tensors (CPU or CUDA): the parameters never leave the backend. Parameters are
replaced by new arrays (never modified in place).

The paper's Table-1 recipe is :class:`SGD` with momentum 0.9, weight decay 3e-4 on every
parameter (biases included), one learning rate per layer (shared by ``W_k`` and ``b_k``),
and :class:`CosineSchedule` from the base rates to 2e-6 over the epochs.

:func:`make_optimizer` also builds the orthogonalizing family (``muon``, ``smep``,
``local_ep``, ``natural_ep``, ``sdmep``) from :mod:`analogebl.learning.orthogonal_optimizers`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from analogebl.errors import ConfigError
from analogebl.learning.orthogonal_optimizers import OrthogonalOptimizer
from analogebl.learning.orthogonalize import asarray_like, from_matrix, spectral_norm, to_matrix
from analogebl.spec import OPTIMIZERS, OptimizerSpec, layer_learning_rates

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adam",
    "ConstantSchedule",
    "CosineSchedule",
    "SpectralCap",
    "layer_learning_rates",
    "make_optimizer",
]

Array = Any


class SGD:
    """SGD with classical momentum and L2 weight decay (as ``torch.optim.SGD``).

    ``d = g + wd * theta``; ``v <- mu * v + d``; ``theta <- theta - lr * v``.
    """

    def __init__(self, lrs: dict[str, float], momentum: float = 0.9, weight_decay: float = 0.0):
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(
                f"momentum must be in [0, 1), got {momentum}", key="optimizer.momentum"
            )
        if weight_decay < 0:
            raise ConfigError("weight_decay must be >= 0", key="optimizer.weight_decay")
        self.base_lrs = dict(lrs)
        self.lrs = dict(lrs)  # current rates (a schedule rewrites them each epoch)
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.velocity: dict[str, Array] = {}

    def lr(self, name: str) -> float:
        return self.lrs[name]

    def step(self, params: dict[str, Array], grads: dict[str, Array]) -> None:
        for name, g in grads.items():
            p = params[name]
            d = g + self.weight_decay * p if self.weight_decay else g
            if self.momentum:
                v = self.velocity.get(name)
                d = d if v is None else v * self.momentum + d
                self.velocity[name] = d
            params[name] = p - self.lr(name) * d

    def state(self) -> dict[str, Array]:
        """Optimizer state as ``kind/param -> array`` (checkpoints)."""
        return {f"velocity/{k}": v for k, v in self.velocity.items()}

    def load_state(self, state: dict[str, Array], scalars: dict[str, float]) -> None:
        """Inverse of :meth:`state` (plus :meth:`scalars`)."""
        self.velocity = {
            k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("velocity/")
        }

    def scalars(self) -> dict[str, float]:
        return {}


class Adam:
    """Adam (Kingma & Ba 2015) with optional L2 (``decoupled=False``) or AdamW decay.

    ``m <- b1 m + (1-b1) g``; ``v <- b2 v + (1-b2) g^2``;
    ``theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)``.
    """

    def __init__(
        self,
        lrs: dict[str, float],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ):
        self.base_lrs = dict(lrs)
        self.lrs = dict(lrs)  # current rates (a schedule rewrites them each epoch)
        self.b1, self.b2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.decoupled = decoupled
        self.t = 0
        self.m: dict[str, Array] = {}
        self.v: dict[str, Array] = {}

    def lr(self, name: str) -> float:
        return self.lrs[name]

    def step(self, params: dict[str, Array], grads: dict[str, Array]) -> None:
        self.t += 1
        c1 = 1.0 - self.b1**self.t
        c2 = 1.0 - self.b2**self.t
        for name, g in grads.items():
            p = params[name]
            if self.weight_decay and not self.decoupled:
                g = g + self.weight_decay * p
            m = (
                g * (1 - self.b1)
                if name not in self.m
                else self.m[name] * self.b1 + g * (1 - self.b1)
            )
            v = (
                g * g * (1 - self.b2)
                if name not in self.v
                else self.v[name] * self.b2 + (g * g) * (1 - self.b2)
            )
            self.m[name], self.v[name] = m, v
            upd = (m / c1) / ((v / c2) ** 0.5 + self.eps)
            if self.weight_decay and self.decoupled:
                upd = upd + self.weight_decay * p
            params[name] = p - self.lr(name) * upd

    def state(self) -> dict[str, Array]:
        """Optimizer state as ``kind/param -> array`` (checkpoints)."""
        return {
            **{f"m/{k}": v for k, v in self.m.items()},
            **{f"v/{k}": v for k, v in self.v.items()},
        }

    def load_state(self, state: dict[str, Array], scalars: dict[str, float]) -> None:
        """Inverse of :meth:`state` (plus :meth:`scalars`)."""
        self.m = {k[2:]: v for k, v in state.items() if k.startswith("m/")}
        self.v = {k[2:]: v for k, v in state.items() if k.startswith("v/")}
        self.t = int(scalars.get("t", 0))

    def scalars(self) -> dict[str, float]:
        return {"t": self.t}


class SpectralCap:
    """Any optimizer followed by the spectral cap ``W <- W min(1, cap / sigma(W))`` on every
    weight's matrix view (power iteration, 3 steps per update from a persistent vector):
    spectral normalization as a projection, for SGD and Adam (the orthogonalizing family
    has it built in). Power iteration approaches sigma from below and tightens over steps:
    a weight that changes fast can exceed the cap by the estimate's error for a few steps."""

    def __init__(self, inner, cap: float, names: set[str], iterations: int = 3):
        if cap <= 0:
            raise ConfigError(f"spectral_cap must be > 0, got {cap}", key="optimizer.spectral_cap")
        self.inner, self.cap, self.names, self.iterations = inner, cap, set(names), iterations
        self.vectors: dict[str, Array] = {}
        self.name = getattr(inner, "name", type(inner).__name__.lower())

    @property
    def base_lrs(self):
        return self.inner.base_lrs

    @property
    def lrs(self):
        return self.inner.lrs

    @lrs.setter
    def lrs(self, value):
        self.inner.lrs = value

    def lr(self, name: str) -> float:
        return self.inner.lr(name)

    def step(self, params: dict[str, Array], grads: dict[str, Array]) -> None:
        self.inner.step(params, grads)
        for name in self.names & set(grads):
            w = to_matrix(params[name])
            v = self.vectors.get(name)
            if v is None:
                v = asarray_like(np.full(w.shape[1], w.shape[1] ** -0.5), w)
            sigma, self.vectors[name] = spectral_norm(w, v, self.iterations)
            if sigma > self.cap:
                params[name] = from_matrix(w * (self.cap / sigma), params[name])

    def state(self) -> dict[str, Array]:
        return {**self.inner.state(), **{f"capv/{k}": v for k, v in self.vectors.items()}}

    def load_state(self, state: dict[str, Array], scalars: dict[str, float]) -> None:
        self.inner.load_state(
            {k: v for k, v in state.items() if not k.startswith("capv/")}, scalars
        )
        self.vectors = {k[5:]: v for k, v in state.items() if k.startswith("capv/")}

    def scalars(self) -> dict[str, float]:
        return self.inner.scalars()


#: Optimizer names a study may use (``optimizer.name``).


def make_optimizer(
    spec: OptimizerSpec,
    shapes: dict[str, tuple[int, ...]],
    hidden: set[str],
    dense: set[str],
    *,
    rng: np.random.Generator | None = None,
):
    """Build the optimizer ``spec`` describes over parameters of ``shapes``.

    Rates: ``spec.lr`` (one, or one per layer; times ``spec.lr_scale``) and ``spec.adam_lr``
    for the AdamW routes. ``hidden``: couplings between two hidden layers; ``dense``: dense
    couplings (K-FAC); ``rng``: Dion's power-iteration stream.

    ``sgd``, ``adam`` (L2 decay), ``adamw`` (with ``spectral_cap``: wrapped in
    :class:`SpectralCap`, spectral normalization of every coupling); and the orthogonalizing family
    (:class:`OrthogonalOptimizer`, weights = parameters with a matrix view, i.e. 2-D or 4-D):

    * ``muon``: NS on the ``hidden`` weights (couplings between two hidden layers), AdamW
      (rates ``adam_lrs``) on the input and output couplings and the biases; no cap.
    * ``smep``: NS on every weight, AdamW on biases, spectral cap (default 0.95).
    * ``local_ep``: identical to ``smep`` here: every contrastive rule of this simulator is
      already layer-local (each coupling's update reads only its two layers' voltages), so
      the "local" contrast and the "global" one are the same numbers.
    * ``natural_ep``: ``smep`` with K-FAC preconditioning on the dense couplings (conv
      kernels keep plain NS).
    * ``sdmep``: Dion (rank ``rank_frac * min(shape)``) on weights with more than
      ``dion_threshold`` entries, NS on the smaller ones, spectral cap (default 0.95).
    """
    name = spec.name
    lrs = spec.rates(list(shapes))
    adam_lrs = spec.rates(list(shapes), adam=True)
    momentum, weight_decay, spectral_cap = spec.momentum, spec.weight_decay, spec.spectral_cap
    ns_steps, nesterov, rank_frac = spec.ns_steps, spec.nesterov, spec.rank_frac
    dion_threshold, damping, kfac_decay = spec.dion_threshold, spec.damping, spec.kfac_decay
    weights = {k for k, s in shapes.items() if len(s) in (2, 4)}
    if name in ("sgd", "adam", "adamw"):
        opt = (
            SGD(lrs, momentum, weight_decay)
            if name == "sgd"
            else Adam(lrs, weight_decay=weight_decay, decoupled=name == "adamw")
        )
        return SpectralCap(opt, spectral_cap, weights) if spectral_cap else opt
    ortho = hidden & weights if name == "muon" else weights
    routes = {k: "adamw" for k in shapes}
    for k in ortho:
        big = int(np.prod(shapes[k])) > dion_threshold
        routes[k] = "dion" if name == "sdmep" and big else "ns"
    rates = {k: (lrs[k] if routes[k] != "adamw" else adam_lrs[k]) for k in shapes}
    if spectral_cap is None:
        spectral_cap = 0.0 if name == "muon" else 0.95
    return OrthogonalOptimizer(
        name,
        rates,
        routes,
        momentum=momentum,
        nesterov=nesterov,
        ns_steps=ns_steps,
        weight_decay=weight_decay,
        spectral_cap=spectral_cap,
        capped=weights,
        rank_frac=rank_frac,
        kfac=(dense & weights) if name == "natural_ep" else set(),
        kfac_decay=kfac_decay,
        damping=damping,
        rng=rng,
    )


@dataclass(frozen=True)
class CosineSchedule:
    """``lr_e = eta_min + (lr_0 - eta_min)(1 + cos(pi e / T)) / 2``, stepped once per epoch.

    Returned as a multiplier of each parameter's base rate, as torch's
    ``CosineAnnealingLR(T_max=T, eta_min)`` does per parameter group.
    """

    epochs: int
    eta_min: float = 2e-6

    def lr(self, base: float, epoch: int) -> float:
        cos = math.cos(math.pi * epoch / self.epochs)
        return self.eta_min + (base - self.eta_min) * (1 + cos) / 2

    def apply(self, optimizer, epoch: int) -> None:
        """Set each parameter's rate for ``epoch`` (0-based) on ``optimizer``."""
        optimizer.lrs = {k: self.lr(v, epoch) for k, v in optimizer.base_lrs.items()}


@dataclass(frozen=True)
class ConstantSchedule:
    """Keep the base learning rates."""

    def apply(self, optimizer, epoch: int) -> None:
        optimizer.lrs = dict(optimizer.base_lrs)
