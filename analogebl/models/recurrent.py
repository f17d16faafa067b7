"""Recurrent fixed-point models of the earlier EqProp projects, built correctly (torch).

Three models, each a map ``h <- Phi(h; x, theta)`` iterated to a fixed point, with a linear
read-out ``o = h Wo + bo`` and a cost ``C(o, y)`` (cross-entropy or squared error), and the
feed-forward baseline:

``mlp``
    ``h = tanh(tanh(x Wx + b) W + b2)`` (two hidden layers, one pass; trained by ``bptt``,
    i.e. plain backprop).
``looped_mlp``
    ``Phi(h) = (1 - a) h + a tanh(x Wx + h Ws + b)`` with ``Ws = (W + W^T)/2``. Its fixed
    points are the stationary points of the Hopfield energy (per example)::

        E(h) = sum_i rho(h_i) - 1/2 h Ws h^T - h.(x Wx + b),
        rho(u) = int_0^u atanh = u atanh(u) + 1/2 ln(1 - u^2),

    because ``dE/dh = atanh(h) - h Ws - x Wx - b = 0  <=>  h = tanh(x Wx + h Ws + b)``.
    (The published code used ``1/2||h||^2 - sum logcosh(.)``, which is not stationary at
    the fixed point.) Nudged phase: ``F = E + beta C`` is stationary at
    ``h = tanh(x Wx + h Ws + b - beta dC/dh)``.
``toroidal_mlp``
    ``looped_mlp`` plus a ring buffer of the last ``k`` states fed back with weights
    ``g lam^(j+1)`` (``j = 0..k-1``; ``lam = 0.9``, learnable ``g``, initially 0.1), used
    by every relaxation, training and evaluation alike. At a fixed point every buffer slot
    equals ``h``, so the fixed point is a stationary point of
    ``E_tor(h) = E(h) - 1/2 g c ||h||^2``, ``c = sum_j lam^(j+1)``: EP applies.
``modern_eqprop``
    ``Phi(h) = (1 - a) h + a [tanh(LN(h) W1) W2 + x Ex]`` (LayerNorm with gain and
    shift, FFN width ``ffn_mult * hidden``). Not a gradient system: trained by vector-field
    EP (Scellier et al. 2018) or BPTT; nudged phase adds ``-a beta dC/dh``.

With ``symmetric = False`` the recurrent matrix of the looped models is ``W`` itself (no
energy; directed EP). ``spectral_cap = gamma`` reparametrizes every recurrent coupling as
``W_eff = W / max(1, sigma(W)/gamma)``, ``sigma`` by power iteration with a persistent
vector (one iteration per training step, as torch's spectral norm; gradients flow through
``sigma``).

Dense weights are stored ``(in, out)`` like the circuits' couplings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from analogebl.errors import ConfigError
from analogebl.tomlio import dumps

__all__ = ["MODELS", "ModelSpec", "RecurrentModel", "RelaxResult"]

MODELS = ("mlp", "looped_mlp", "toroidal_mlp", "modern_eqprop")
Tensor = torch.Tensor


@dataclass(frozen=True)
class ModelSpec:
    """Frozen description of a recurrent model (validated at construction)."""

    name: str
    n_in: int
    n_hidden: int
    n_out: int
    alpha: float = 0.5
    symmetric: bool = True
    spectral_cap: float | None = None
    cost: str = "ce"
    buffer_len: int = 3
    buffer_decay: float = 0.9
    buffer_gain: float = 0.1
    ffn_mult: int = 4
    init_gain: float = 1.0

    def __post_init__(self):
        if self.name not in MODELS:
            raise ConfigError(
                f"unknown model {self.name!r}; known: {', '.join(MODELS)}", key="model.name"
            )
        if min(self.n_in, self.n_hidden, self.n_out) < 1:
            raise ConfigError("model sizes must be >= 1", key="model.hidden")
        if not 0.0 < self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in (0, 1], got {self.alpha}", key="model.alpha")
        if self.cost not in ("ce", "mse"):
            raise ConfigError(f"cost must be 'ce' or 'mse', got {self.cost!r}", key="model.cost")
        if self.spectral_cap is not None and self.spectral_cap <= 0:
            raise ConfigError("spectral_cap must be > 0", key="model.spectral_cap")

    @property
    def has_energy(self) -> bool:
        """Whether the fixed points are stationary points of an energy (EP applies)."""
        return self.name in ("looped_mlp", "toroidal_mlp") and self.symmetric

    @property
    def recurrent(self) -> bool:
        """Whether the state feeds back (``mlp`` is one feed-forward pass)."""
        return self.name != "mlp"

    @property
    def analytic(self) -> bool:
        """Whether map, energy and cost are holomorphic (tanh/atanh; holomorphic EP)."""
        return self.has_energy

    def to_toml(self) -> str:
        """The spec as TOML (``None`` fields left out), headed ``# model NAME``."""
        return dumps(asdict(self), header=f"model {self.name}")


@dataclass
class RelaxResult:
    """A relaxation's end state and how it got there."""

    h: Tensor
    steps: int  # iterations run
    converged: float  # fraction of examples with max |h_t - h_(t-1)| < tol at the end
    residual: float  # max over the batch of max |h_t - h_(t-1)| at the last step


class RecurrentModel:
    """Parameters (torch tensors) and the maths of one recurrent model (see module doc).

    Parameters
    ----------
    spec : ModelSpec
    dtype : {"float32", "float64"}
    device : str, optional
    rng : numpy.random.Generator
        Draws the initial weights (uniform, fan-in scaled, times ``spec.init_gain``).
    """

    def __init__(
        self,
        spec: ModelSpec,
        dtype: str = "float32",
        device: str | None = None,
        rng: np.random.Generator | None = None,
    ):
        self.spec = spec
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
        self.device = torch.device(device or "cpu")
        rng = rng if rng is not None else np.random.default_rng(0)
        s, n_h = spec, spec.n_hidden

        def u(shape, fan_in):
            bound = spec.init_gain / math.sqrt(fan_in)
            return rng.uniform(-bound, bound, size=shape)

        p: dict[str, np.ndarray] = {"Wx": u((s.n_in, n_h), s.n_in), "b": np.zeros(n_h)}
        if s.name == "mlp":
            p.update(W=u((n_h, n_h), n_h), b2=np.zeros(n_h))
        elif s.name == "modern_eqprop":
            n_f = s.ffn_mult * n_h
            p.update(
                W1=u((n_h, n_f), n_h),
                b1=np.zeros(n_f),
                W2=u((n_f, n_h), n_f),
                ln_w=np.ones(n_h),
                ln_b=np.zeros(n_h),
            )
        else:
            p["W"] = u((n_h, n_h), n_h)
        if s.name == "toroidal_mlp":
            p["g"] = np.array([s.buffer_gain])
        p.update(Wo=u((n_h, s.n_out), n_h), bo=np.zeros(s.n_out))
        self.params = {
            k: torch.as_tensor(v, dtype=self.dtype, device=self.device) for k, v in p.items()
        }
        self.sn_vectors: dict[str, Tensor] = {
            k: torch.as_tensor(
                rng.standard_normal(self.params[k].shape[1]), dtype=self.dtype, device=self.device
            )
            for k in self.recurrent_couplings()
        }
        for v in self.sn_vectors.values():
            v /= torch.linalg.vector_norm(v)

    # ------------------------------------------------------------------ structure
    def recurrent_couplings(self) -> tuple[str, ...]:
        """Couplings inside the loop (those spectral normalization caps)."""
        return ("W1", "W2") if self.spec.name == "modern_eqprop" else ("W",)

    def couplings(self) -> tuple[str, ...]:
        """Every 2-D weight, input to read-out."""
        return tuple(k for k, v in self.params.items() if v.ndim == 2)

    # ------------------------------------------------------------------ effective weights
    def power_iteration(self) -> None:
        """One power-iteration step on each capped coupling's persistent vector (no grad)."""
        if self.spec.spectral_cap is None:
            return
        with torch.no_grad():
            for k in self.recurrent_couplings():
                w = self._raw(k, self.params)
                v = self.sn_vectors[k]
                u_ = w @ v
                u_ = u_ / (torch.linalg.vector_norm(u_) + 1e-30)
                v = w.T @ u_
                self.sn_vectors[k] = v / (torch.linalg.vector_norm(v) + 1e-30)

    def _raw(self, k: str, p: dict[str, Tensor]) -> Tensor:
        w = p[k]
        if k == "W" and self.spec.symmetric and self.spec.name in ("looped_mlp", "toroidal_mlp"):
            w = 0.5 * (w + w.T)
        return w

    def effective(self, p: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Weights as the dynamics use them: ``Ws`` symmetrized, spectral cap applied.

        ``sigma = ||W v|| `` with the persistent unit vector ``v`` (differentiable in W).
        """
        p = self.params if p is None else p
        eff = dict(p)
        for k in self.recurrent_couplings():
            w = self._raw(k, p)
            if self.spec.spectral_cap is not None:
                sigma = torch.linalg.vector_norm(w @ self.sn_vectors[k])
                w = w / torch.clamp(sigma / self.spec.spectral_cap, min=1.0)
            eff[k] = w
        return eff

    # ------------------------------------------------------------------ maths
    def readout(self, h: Tensor, eff: dict[str, Tensor]) -> Tensor:
        return h @ eff["Wo"] + eff["bo"]

    def cost(self, h: Tensor, y1h: Tensor, eff: dict[str, Tensor]) -> Tensor:
        """Per-example cost: cross-entropy ``logsumexp(o) - o.y`` or ``1/2 ||o - y||^2``."""
        o = self.readout(h, eff)
        if self.spec.cost == "ce":  # logsumexp written out: analytic, complex-safe
            m = o.real.amax(1, keepdim=True).detach()
            return (m[:, 0] + torch.log(torch.exp(o - m).sum(1))) - (o * y1h).sum(1)
        d = o - y1h
        return 0.5 * (d * d).sum(1)

    def cost_grad_h(self, h: Tensor, y1h: Tensor, eff: dict[str, Tensor]) -> Tensor:
        """``dC/dh = (softmax(o) - y) Wo^T`` (CE) or ``(o - y) Wo^T`` (MSE); analytic."""
        o = self.readout(h, eff)
        if self.spec.cost == "ce":
            e = torch.exp(o - o.real.amax(1, keepdim=True))
            d = e / e.sum(1, keepdim=True) - y1h
        else:
            d = o - y1h
        return d @ eff["Wo"].T.to(d.dtype)

    def drive(self, h: Tensor, x: Tensor, eff: dict[str, Tensor]) -> Tensor:
        """Pre-activation of the looped models, ``x Wx + h Ws + b`` (no buffer term)."""
        return x @ eff["Wx"] + h @ eff["W"] + eff["b"]

    def _ffn(self, h: Tensor, x: Tensor, eff: dict[str, Tensor]) -> Tensor:
        mu = h.mean(1, keepdim=True)
        var = ((h - mu) ** 2).mean(1, keepdim=True)
        ln = (h - mu) / torch.sqrt(var + 1e-5) * eff["ln_w"] + eff["ln_b"]
        return torch.tanh(ln @ eff["W1"] + eff["b1"]) @ eff["W2"] + x @ eff["Wx"] + eff["b"]

    def buffer_constant(self) -> float:
        """``c = sum_j lam^(j+1)``: the buffer's weight on a constant state."""
        s = self.spec
        return sum(s.buffer_decay ** (j + 1) for j in range(s.buffer_len))

    def step(
        self,
        h: Tensor,
        x: Tensor,
        eff: dict[str, Tensor],
        buffer: list[Tensor] | None,
        nudge: Tensor | None,
    ) -> Tensor:
        """One application of ``Phi`` (nudged by ``-beta dC/dh`` when ``nudge`` is given)."""
        a = self.spec.alpha
        if self.spec.name == "mlp":
            return torch.tanh(torch.tanh(x @ eff["Wx"] + eff["b"]) @ eff["W"] + eff["b2"])
        if self.spec.name == "modern_eqprop":
            target = self._ffn(h, x, eff)
            if nudge is not None:
                target = target - nudge
            return (1 - a) * h + a * target
        pre = self.drive(h, x, eff)
        if buffer is not None:
            lam = self.spec.buffer_decay
            pre = pre + eff["g"] * sum(lam ** (j + 1) * bj for j, bj in enumerate(buffer))
        if nudge is not None:
            pre = pre - nudge
        return (1 - a) * h + a * torch.tanh(pre)

    def energy(self, h: Tensor, x: Tensor, eff: dict[str, Tensor]) -> Tensor:
        """Per-example energy (module doc); analytic in ``h`` (complex states allowed)."""
        if not self.spec.has_energy:
            raise ConfigError(
                f"model {self.spec.name}"
                + (" with symmetric = false" if self.spec.name != "modern_eqprop" else "")
                + " has no energy function",
                key="model.name",
            )
        if not h.is_complex():  # tanh saturates to +-1 in float32: keep rho finite
            lim = 1.0 - torch.finfo(h.dtype).eps
            h = torch.clamp(h, -lim, lim)
        rho = h * torch.atanh(h) + 0.5 * torch.log(1 - h * h)
        e = rho.sum(1) - 0.5 * ((h @ eff["W"]) * h).sum(1) - (h * (x @ eff["Wx"] + eff["b"])).sum(1)
        if self.spec.name == "toroidal_mlp":
            e = e - 0.5 * eff["g"][0] * self.buffer_constant() * (h * h).sum(1)
        return e

    def relax(
        self,
        x: Tensor,
        steps: int,
        tol: float = 0.0,
        h0: Tensor | None = None,
        beta: complex = 0.0,
        y1h: Tensor | None = None,
        eff: dict[str, Tensor] | None = None,
    ) -> RelaxResult:
        """Iterate ``Phi`` from ``h0`` (zeros) for up to ``steps``; stop early when every
        example moved less than ``tol`` (max norm). Complex ``beta`` relaxes in complex
        arithmetic (holomorphic EP)."""
        with torch.no_grad():
            eff = self.effective() if eff is None else eff
            if isinstance(beta, complex) and beta.imag == 0.0:
                beta = beta.real
            cplx = isinstance(beta, complex)
            dt = (
                (torch.complex128 if self.dtype == torch.float64 else torch.complex64)
                if cplx
                else self.dtype
            )
            h = (
                torch.zeros(x.shape[0], self.spec.n_hidden, dtype=dt, device=self.device)
                if h0 is None
                else h0.to(dt)
            )
            if cplx:
                x = x.to(dt)
                eff = {k: v.to(dt) for k, v in eff.items()}
            if not self.spec.recurrent:  # one feed-forward pass
                return RelaxResult(self.step(h, x, eff, None, None), 1, 1.0, 0.0)
            buffer = [h] * self.spec.buffer_len if self.spec.name == "toroidal_mlp" else None
            delta = torch.full((x.shape[0],), math.inf, device=self.device)
            t = 0
            while t < steps:
                t += 1
                nudge = None
                if beta != 0.0:
                    g = self.cost_grad_h(h, y1h.to(dt), eff)
                    nudge = beta * g
                new = self.step(h, x, eff, buffer, nudge)
                delta = (new - h).abs().amax(1)
                h = new
                if buffer is not None:
                    buffer = [h, *buffer[:-1]]
                if tol > 0 and bool((delta < tol).all()):
                    break
            conv = float((delta < tol).float().mean()) if tol > 0 else 0.0
            return RelaxResult(h, t, conv, float(delta.max()) if len(delta) else 0.0)

    def jacobian_norm(self, h: Tensor, x: Tensor, iterations: int = 30) -> Tensor:
        """Per-example spectral norm of ``dPhi/dh`` at ``h`` (power iteration with JVP/VJP):
        the fixed-point map's local Lipschitz constant at the equilibrium."""
        eff = {k: v.detach() for k, v in self.effective().items()}
        buffer_gain = None
        if self.spec.name == "toroidal_mlp":  # at a fixed point the buffer holds h: fold it in
            buffer_gain = eff["g"] * self.buffer_constant()

        def phi(z):
            if buffer_gain is not None:
                a = self.spec.alpha
                return (1 - a) * z + a * torch.tanh(self.drive(z, x, eff) + buffer_gain * z)
            return self.step(z, x, eff, None, None)

        v = torch.randn(
            h.shape,
            dtype=h.dtype,
            device=h.device,
            generator=torch.Generator(device=h.device).manual_seed(0),
        )
        v = v / torch.linalg.vector_norm(v, dim=1, keepdim=True)
        sigma = torch.zeros(h.shape[0], dtype=h.dtype, device=h.device)
        for _ in range(iterations):
            _, jv = torch.func.jvp(phi, (h,), (v,))
            _, vjp = torch.func.vjp(phi, h)
            (jtjv,) = vjp(jv)
            sigma = torch.linalg.vector_norm(jv, dim=1)
            n = torch.linalg.vector_norm(jtjv, dim=1, keepdim=True)
            v = jtjv / torch.clamp(n, min=1e-30)
        return sigma
