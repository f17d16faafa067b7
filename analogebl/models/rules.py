"""⑥ Learning rules for the recurrent models (:mod:`analogebl.models`): EP on their energy,
vector-field EP, directed EP, holomorphic EP, finite-nudge EP, and BPTT.

All estimates are of ``dL/dtheta`` with ``L = mean_n C(o_n, y_n)`` at the free fixed point
(same sign as the gradient), as torch tensors keyed like ``model.params``.

* ``p_ep`` / ``n_ep`` / ``c_ep`` (energy models):
  ``g = [dF/dtheta(h2, b2) - dF/dtheta(h1, b1)] / (b2 - b1)``, ``F = mean_n (E + beta C)``.
* ``vf_ep`` (Scellier et al. 2018, arXiv 1808.04873) for a field ``mu`` whose nudged fixed
  point solves ``mu(h) = beta dC/dh``: ``g = dC/dtheta - (dmu/dtheta)^T (h2 - h1)/(b2 - b1)``,
  equal to the gradient when ``dmu/dh`` is symmetric. ``mu = x Wx + h W + b + g c h -
  atanh(h)`` for the looped models, ``mu = tanh(LN(h) W1) W2 + x Ex + b - h`` for
  ``modern_eqprop``.
* ``d_ep``: ``vf_ep`` for directed (non-symmetric) couplings, plus optionally
  ``lambda grad E_v ||(J - J^T) v||^2`` (Jacobian homeostasis, Laborieux & Zenke 2024,
  arXiv 2309.02214), ``J = dmu/dh`` at the free fixed point, ``v`` Rademacher.
* ``h_ep`` (Laborieux & Zenke 2022, arXiv 2209.00530): nudges ``beta_k = |b| e^(i 2 pi k/N)``,
  complex relaxations, ``g = Re (1/(N |b|)) sum_k e^(-i 2 pi k/N) dF/dtheta(h_k, beta_k)``:
  Cauchy's formula for ``d/dbeta dF/dtheta`` at 0, exact up to aliasing ``O(|b|^N)``.
* ``fn_ep`` (Litman 2025, arXiv 2511.22024): ``g = (<dF/dtheta>_b - <dF/dtheta>_0) / b``,
  ``<.>_b`` over the Gibbs ensemble ``p_b(h) ~ exp(-F(h, b)/T)``: the exact gradient of
  ``(A_b - A_0)/b`` with free energies ``A_b = -T ln Z_b``, for any finite ``b``. ``T = 0``
  is the deterministic limit (minimizers, ``A_b = min F``); ``T > 0`` samples by Langevin
  dynamics ``h <- h - eta dF/dh + sqrt(2 eta T) xi`` (explicit rng).
* ``bptt``: backprop through the unrolled free relaxation (memory grows with the steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from analogebl.errors import ConfigError
from analogebl.learning.rules import EquilibriumPropagation
from analogebl.models.recurrent import RecurrentModel

__all__ = [
    "MODEL_RULES",
    "BPTT",
    "DirectedEP",
    "FiniteNudgeEP",
    "HolomorphicEP",
    "VectorFieldEP",
    "implicit_gradient",
    "make_model_rule",
    "model_estimate",
]

MODEL_RULES = ("p_ep", "n_ep", "c_ep", "vf_ep", "d_ep", "h_ep", "fn_ep", "bptt")
Tensor = torch.Tensor


@dataclass(frozen=True)
class VectorFieldEP:
    """Vector-field EP; ``variant`` positive (0, b) or centered (-b, b)."""

    beta: float
    variant: str = "centered"
    iterations: int = 25
    name: str = "vf_ep"

    @property
    def betas(self) -> tuple[float, float]:
        return (-self.beta, self.beta) if self.variant == "centered" else (0.0, self.beta)


@dataclass(frozen=True)
class DirectedEP(VectorFieldEP):
    """Vector-field EP for non-symmetric couplings, with Jacobian homeostasis ``lam``."""

    homeostasis: float = 0.0
    name: str = "d_ep"


@dataclass(frozen=True)
class HolomorphicEP:
    """Holomorphic EP with ``points`` complex nudges of modulus ``beta``."""

    beta: float
    points: int = 4
    iterations: int = 25
    name: str = "h_ep"


@dataclass(frozen=True)
class FiniteNudgeEP:
    """Finite-nudge EP at temperature ``temperature`` (0: deterministic minimizers)."""

    beta: float
    temperature: float = 0.0
    samples: int = 50
    burn_in: int = 100
    step_size: float = 0.01
    iterations: int = 25
    name: str = "fn_ep"


@dataclass(frozen=True)
class BPTT:
    """Backprop through the unrolled free relaxation."""

    name: str = "bptt"


def make_model_rule(
    name: str,
    beta: float | None,
    iterations: int,
    *,
    points: int = 4,
    homeostasis: float = 0.0,
    temperature: float = 0.0,
):
    """A rule for a recurrent model by name (see :data:`MODEL_RULES`)."""
    b = 0.22 if beta is None else float(beta)
    if name in ("p_ep", "n_ep", "c_ep"):
        return EquilibriumPropagation(
            {"p": "positive", "n": "negative", "c": "centered"}[name[0]], b, iterations
        )
    if not b > 0:
        raise ConfigError(f"beta must be > 0, got {b}", key="rule.beta")
    if name == "vf_ep":
        return VectorFieldEP(b, iterations=iterations)
    if name == "d_ep":
        return DirectedEP(b, iterations=iterations, homeostasis=homeostasis)
    if name == "h_ep":
        if points < 2:
            raise ConfigError("h_ep needs at least 2 nudge points", key="rule.points")
        return HolomorphicEP(b, points, iterations)
    if name == "fn_ep":
        return FiniteNudgeEP(b, temperature, iterations=iterations)
    if name == "bptt":
        return BPTT()
    raise ConfigError(
        f"rule {name!r} does not train recurrent models; choose from {', '.join(MODEL_RULES)}",
        key="rule.name",
    )


def check_rule_applies(rule, model: RecurrentModel) -> None:
    """Raise ``ConfigError`` when the rule's theory does not cover the model."""
    s = model.spec
    if not s.recurrent and not isinstance(rule, BPTT):
        raise ConfigError(
            f"{s.name} is a feed-forward baseline: train it with bptt (backprop), not {rule.name}",
            key="rule.name",
        )
    if isinstance(rule, EquilibriumPropagation) and not s.has_energy:
        raise ConfigError(
            f"{rule.name} needs an energy; {s.name}"
            + ("" if s.name == "modern_eqprop" else " with symmetric = false")
            + " has none: use vf_ep or d_ep",
            key="rule.name",
        )
    if isinstance(rule, HolomorphicEP) and not s.analytic:
        raise ConfigError(
            f"h_ep needs a holomorphic energy (analytic activations); {s.name}"
            + ("" if s.name == "modern_eqprop" else " with symmetric = false")
            + " has none",
            key="rule.name",
        )
    if isinstance(rule, FiniteNudgeEP) and not s.has_energy:
        raise ConfigError(
            f"fn_ep needs an energy (a Gibbs ensemble); {s.name} has none", key="rule.name"
        )


# ---------------------------------------------------------------------- helpers
def _leaf_params(model: RecurrentModel) -> dict[str, Tensor]:
    return {k: v.detach().clone().requires_grad_(True) for k, v in model.params.items()}


def _grad(
    value: Tensor,
    p: dict[str, Tensor],
    create_graph: bool = False,
    retain_graph: bool | None = None,
) -> dict[str, Tensor]:
    keys = list(p)
    gs = torch.autograd.grad(
        value,
        [p[k] for k in keys],
        allow_unused=True,
        create_graph=create_graph,
        retain_graph=retain_graph,
    )
    return {k: (torch.zeros_like(p[k]) if g is None else g) for k, g in zip(keys, gs, strict=True)}


def dF_dtheta(
    model: RecurrentModel, h: Tensor, x: Tensor, y1h: Tensor, beta: complex
) -> dict[str, Tensor]:
    """``dF/dtheta`` at state ``h`` (held fixed), ``F = mean_n (E + beta C)``; complex for
    complex ``h``/``beta`` (real and imaginary parts differentiated separately)."""
    p = _leaf_params(model)
    eff = model.effective(p)
    h = h.detach()
    if h.is_complex():
        eff = {k: v.to(h.dtype) for k, v in eff.items()}
        x, y1h = x.to(h.dtype), y1h.to(h.dtype)
    f = model.energy(h, x, eff).mean()
    if beta != 0:
        f = f + beta * model.cost(h, y1h, eff).mean()
    if not f.is_complex():
        return _grad(f, p)
    gr = _grad(f.real, p, retain_graph=True)
    gi = _grad(f.imag, p)
    return {k: torch.complex(gr[k], gi[k]) for k in gr}


def field(model: RecurrentModel, h: Tensor, x: Tensor, eff: dict[str, Tensor]) -> Tensor:
    """``mu(h)`` whose zeros are the free fixed points and whose nudged fixed points solve
    ``mu(h) = beta dC/dh`` (module doc). The toroidal buffer holds ``h`` at a fixed point."""
    if model.spec.name == "modern_eqprop":
        return model._ffn(h, x, eff) - h
    pre = model.drive(h, x, eff)
    if model.spec.name == "toroidal_mlp":
        pre = pre + eff["g"] * model.buffer_constant() * h
    return pre - torch.atanh(h)


def _cost_param_grad(model: RecurrentModel, h: Tensor, x: Tensor, y1h: Tensor) -> dict:
    p = _leaf_params(model)
    return _grad(model.cost(h.detach(), y1h, model.effective(p)).mean(), p)


def _vf_estimate(
    model: RecurrentModel,
    rule: VectorFieldEP,
    free: Tensor,
    h1: Tensor,
    h2: Tensor,
    x: Tensor,
    y1h: Tensor,
) -> dict[str, Tensor]:
    b1, b2 = rule.betas
    v = -(h2 - h1).detach() / (b2 - b1)
    p = _leaf_params(model)
    mu = field(model, free.detach(), x, model.effective(p))
    g = _grad((mu * v).sum() / x.shape[0], p)
    c = _cost_param_grad(model, free, x, y1h)
    out = {k: g[k] + c[k] for k in g}
    if isinstance(rule, DirectedEP) and rule.homeostasis > 0:
        pen = _homeostasis_grad(model, free, x)
        out = {k: out[k] + rule.homeostasis * pen[k] for k in out}
    return out


def _homeostasis_grad(
    model: RecurrentModel, h: Tensor, x: Tensor, probes: int = 4
) -> dict[str, Tensor]:
    """Gradient of ``mean_n E_v ||(J - J^T) v||^2``, ``J = dmu/dh`` at ``h`` (Rademacher v)."""
    p = _leaf_params(model)
    eff = model.effective(p)
    gen = torch.Generator(device=h.device).manual_seed(1234)
    total = 0.0
    for _ in range(probes):
        v = (torch.randint(0, 2, h.shape, generator=gen, device=h.device) * 2 - 1).to(h.dtype)
        hh = h.detach().clone().requires_grad_(True)
        mu = field(model, hh, x, eff)
        (jtv,) = torch.autograd.grad((mu * v).sum(), hh, create_graph=True)  # J^T v
        u = torch.zeros_like(mu, requires_grad=True)
        (jtu,) = torch.autograd.grad((mu * u).sum(), hh, create_graph=True)
        (jv,) = torch.autograd.grad((jtu * v).sum(), u, create_graph=True)  # J v
        total = total + ((jv - jtv) ** 2).sum() / h.shape[0]
    return _grad(total / probes, p)


# ---------------------------------------------------------------------- estimates
def model_estimate(
    model: RecurrentModel,
    rule,
    x: Tensor,
    y1h: Tensor,
    free: Tensor,
    steps: int,
    tol: float = 0.0,
    rng: torch.Generator | None = None,
) -> tuple[dict[str, Tensor], Tensor]:
    """The rule's estimate of ``dL/dtheta`` from the free fixed point ``free``.

    Returns the gradient and the state the rule ended in. ``steps``/``tol``: relaxation
    budget of each extra phase (``rule.iterations`` is used when smaller than ``steps``
    is not wanted: the phases run ``rule.iterations``).
    """
    check_rule_applies(rule, model)
    it = getattr(rule, "iterations", steps)
    if isinstance(rule, BPTT):
        return bptt_gradient(model, x, y1h, steps), free
    if isinstance(rule, EquilibriumPropagation | VectorFieldEP):
        states = []
        for b in rule.betas:
            states.append(model.relax(x, it, tol, h0=free, beta=b, y1h=y1h).h)
        h1, h2 = states
        b1, b2 = rule.betas
        if isinstance(rule, VectorFieldEP):
            return _vf_estimate(model, rule, free, h1, h2, x, y1h), h2
        g1 = dF_dtheta(model, h1, x, y1h, b1)
        g2 = dF_dtheta(model, h2, x, y1h, b2)
        return {k: (g2[k] - g1[k]) / (b2 - b1) for k in g1}, h2
    if isinstance(rule, HolomorphicEP):
        acc: dict[str, Tensor] | None = None
        n = rule.points
        for k in range(n):
            th = 2 * math.pi * k / n
            bk = complex(rule.beta * math.cos(th), rule.beta * math.sin(th))
            hk = model.relax(x, it, tol, h0=free, beta=bk, y1h=y1h).h
            f = dF_dtheta(model, hk, x, y1h, bk)
            w = complex(math.cos(th), -math.sin(th)) / (n * rule.beta)
            term = {key: (v * w if v.is_complex() else v * w.real) for key, v in f.items()}
            acc = term if acc is None else {key: acc[key] + term[key] for key in acc}
        return {key: v.real if v.is_complex() else v for key, v in acc.items()}, free
    if isinstance(rule, FiniteNudgeEP):
        if rule.temperature == 0.0:
            h0 = model.relax(x, it, tol, h0=free).h
            hb = model.relax(x, it, tol, h0=free, beta=rule.beta, y1h=y1h).h
            g0 = dF_dtheta(model, h0, x, y1h, 0.0)
            gb = dF_dtheta(model, hb, x, y1h, rule.beta)
            return {k: (gb[k] - g0[k]) / rule.beta for k in g0}, hb
        g0 = gibbs_mean_dF(model, rule, x, y1h, free, 0.0, rng)
        gb = gibbs_mean_dF(model, rule, x, y1h, free, rule.beta, rng)
        return {k: (gb[k] - g0[k]) / rule.beta for k in g0}, free
    raise TypeError(f"not a model rule: {rule!r}")


def gibbs_mean_dF(
    model: RecurrentModel,
    rule: FiniteNudgeEP,
    x: Tensor,
    y1h: Tensor,
    h0: Tensor,
    beta: float,
    rng: torch.Generator | None,
) -> dict[str, Tensor]:
    """``<dF/dtheta>`` over ``p(h) ~ exp(-F(h, beta)/T)`` by unadjusted Langevin dynamics
    (chains start at ``h0``; ``burn_in`` steps, then ``samples`` samples one step apart)."""
    eff = {k: v.detach() for k, v in model.effective().items()}
    eta, temp = rule.step_size, rule.temperature
    h = h0.detach().clone()
    acc: dict[str, Tensor] | None = None
    lim = 1.0 - 1e-6
    for t in range(rule.burn_in + rule.samples):
        hh = h.clone().requires_grad_(True)
        f = model.energy(hh, x, eff).sum() + beta * model.cost(hh, y1h, eff).sum()
        (gh,) = torch.autograd.grad(f, hh)
        noise = torch.randn(h.shape, generator=rng, dtype=h.dtype, device=h.device)
        h = torch.clamp(h - eta * gh + math.sqrt(2 * eta * temp) * noise, -lim, lim)
        if t >= rule.burn_in:
            g = dF_dtheta(model, h, x, y1h, beta)
            acc = g if acc is None else {k: acc[k] + g[k] for k in acc}
    return {k: v / rule.samples for k, v in acc.items()}


def bptt_gradient(model: RecurrentModel, x: Tensor, y1h: Tensor, steps: int) -> dict[str, Tensor]:
    """``dL/dtheta`` by backprop through ``steps`` free iterations from zero."""
    p = _leaf_params(model)
    eff = model.effective(p)
    h = torch.zeros(x.shape[0], model.spec.n_hidden, dtype=model.dtype, device=model.device)
    buffer = [h] * model.spec.buffer_len if model.spec.name == "toroidal_mlp" else None
    for _ in range(steps if model.spec.recurrent else 1):
        h = model.step(h, x, eff, buffer, None)
        if buffer is not None:
            buffer = [h, *buffer[:-1]]
    return _grad(model.cost(h, y1h, eff).mean(), p)


def implicit_gradient(
    model: RecurrentModel,
    x: Tensor,
    y1h: Tensor,
    h_star: Tensor,
    iterations: int = 2000,
    tol: float = 1e-13,
) -> dict[str, Tensor]:
    """Exact ``dL/dtheta`` at the fixed point ``h*`` (implicit function theorem).

    ``mu(h*) = 0`` gives ``dL/dtheta = dC/dtheta - (dmu/dtheta)^T lam`` with
    ``(dmu/dh)^T lam = dC/dh``, solved per example by the preconditioned Richardson
    iteration ``lam <- lam - a D (dC/dh - (dmu/dh)^T lam)``, ``D = 1 - h^2`` (looped) or 1
    (modern), whose iteration matrix ``I + a D (dmu/dh)^T`` is the damped map's Jacobian
    (transposed): it converges wherever the relaxation itself contracts.
    """
    p = _leaf_params(model)
    eff = model.effective(p)
    eff_d = {k: v.detach() for k, v in eff.items()}
    h = h_star.detach().clone().requires_grad_(True)
    c = model.cost(h, y1h, eff_d).sum()
    (dc,) = torch.autograd.grad(c, h)
    mu = field(model, h, x, eff_d)
    d = (1 - h.detach() ** 2) if model.spec.name != "modern_eqprop" else torch.ones_like(dc)
    lam = torch.zeros_like(dc)
    a = model.spec.alpha
    for _ in range(iterations):
        (jt,) = torch.autograd.grad(mu, h, grad_outputs=lam, retain_graph=True)
        r = dc - jt
        lam = lam - a * d * r
        if float(r.abs().max()) < tol:
            break
    mu_p = field(model, h_star.detach(), x, eff)
    g = _grad((mu_p * lam.detach()).sum() / x.shape[0], p)
    cg = _cost_param_grad(model, h_star, x, y1h)
    return {k: cg[k] - g[k] for k in g}
