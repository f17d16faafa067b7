"""An independent, slow NumPy oracle of the DCHN: relaxation, energy and EP gradients.

Written directly from the equations (docs/concepts/physics.md;
``shared/reference/ebl_algorithms.md`` §1-3), sharing no code with
``analogebl.backends.engine`` or ``analogebl.backends.reference``. It reads a
:class:`~analogebl.plan.Plan` only for the parameter arrays, layer shapes and the kind of
each coupling. Everything is float64, nothing is cached, loops and ``np.einsum`` are
preferred over speed.

Notation (per example; ``s_0 = x`` is the clamped input, ``s_L = o`` the linear output)::

    E(theta; s) = sum_{k>=1} [ 1/2 ||s_k||^2 - <b_k, s_k> - <s_k, T_k(s_{k-1})> ]
    F(theta; s) = E + beta/2 ||o - y||^2                 (EP's nudged function)

``T_k`` is the coupling into layer ``k``:

* dense: ``T(s)[j] = sum_i flat(s)[i] W[i, j]`` (``W`` of shape ``(in, out)``, C order);
* conv: ``T(s) = pool(conv(W, s))`` with ``conv(W, s)[o, i, j] =
  sum_{c, a, b} W[o, c, a, b] s_pad[c, i + a, j + b]`` (cross-correlation, stride 1,
  zero padding) and ``pool`` a 2x2 stride-2 max (true max in ``E``), average or nothing.

For a max-pool the term ``<s_k, maxpool(z)>`` is, at a fixed choice of the maximum of each
window, linear in ``z``; its derivative routes ``s_k`` to the chosen (first maximal, in
row-major window order) position of each window. Derivatives below are taken at the
argmax of the current state.

States are lists ``[x, s_1, ..., s_L]`` of arrays with a leading batch axis ``N``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Coupling",
    "Network",
    "dE_dtheta",
    "dE_dstate",
    "energy",
    "ep_gradient",
    "groups",
    "half_step",
    "one_hot",
    "relax",
    "T",
    "T_adjoint",
    "T_weight_corr",
]

# the 2x2 window positions (p, q) in row-major order: ties go to the first of these
_WINDOW = ((0, 0), (0, 1), (1, 0), (1, 1))


# ---------------------------------------------------------------------------- network
@dataclass
class Coupling:
    """One crossbar ``pre -> post = pre + 1`` with its weight array ``W``."""

    name: str
    pre: int
    kind: str  # "dense" | "conv"
    pool: str  # "max" | "avg" | "none"
    padding: int
    W: np.ndarray


@dataclass
class Network:
    """Parameters and layer shapes of a chain circuit (index 0 = input, no batch axis).

    ``couplings[k - 1]`` joins layers ``k - 1`` and ``k``; ``biases[k]`` is ``b_k``
    (``biases[0]`` is ``None``); ``bias_names[k]`` its parameter name.
    """

    shapes: list[tuple[int, ...]]
    couplings: list[Coupling]
    biases: list[np.ndarray | None]
    bias_names: list[str | None]

    @property
    def L(self) -> int:
        """Index of the output layer."""
        return len(self.shapes) - 1

    @classmethod
    def from_plan(cls, plan, params: dict[str, np.ndarray] | None = None) -> Network:
        """Read shapes and coupling kinds from ``plan``; parameters from ``params`` (default:
        ``plan.parameters``), copied to float64."""
        p = {k: np.array(v, dtype=np.float64) for k, v in (params or plan.parameters).items()}
        couplings = [
            Coupling(c.name, c.pre, c.kind, c.pool, c.padding, p[c.name]) for c in plan.couplings
        ]
        biases = [None] + [p[name] for name in plan.bias_names[1:]]
        return cls(list(plan.layer_shapes), couplings, biases, list(plan.bias_names))

    def parameters(self) -> dict[str, np.ndarray]:
        out = {c.name: c.W for c in self.couplings}
        out.update({n: b for n, b in zip(self.bias_names, self.biases, strict=True) if n})
        return out


def one_hot(y: np.ndarray, k: int) -> np.ndarray:
    """``Y[n, y_n] = 1``, zeros elsewhere (float64)."""
    out = np.zeros((len(y), k))
    for n, label in enumerate(y):
        out[n, int(label)] = 1.0
    return out


# ---------------------------------------------------------------------------- couplings
def _patches(s: np.ndarray, k: int, padding: int) -> np.ndarray:
    """``P[n, c, a, b, i, j] = s_pad[n, c, i + a, j + b]`` (zero padding)."""
    n, c, h, w = s.shape
    sp = np.zeros((n, c, h + 2 * padding, w + 2 * padding))
    sp[:, :, padding : padding + h, padding : padding + w] = s
    ho, wo = sp.shape[2] - k + 1, sp.shape[3] - k + 1
    P = np.zeros((n, c, k, k, ho, wo))
    for a in range(k):
        for b in range(k):
            P[:, :, a, b] = sp[:, :, a : a + ho, b : b + wo]
    return P


def _conv(W: np.ndarray, s: np.ndarray, padding: int) -> np.ndarray:
    """``z[n, o, i, j] = sum_{c,a,b} W[o, c, a, b] s_pad[n, c, i + a, j + b]``."""
    return np.einsum("ocab,ncabij->noij", W, _patches(s, W.shape[-1], padding))


def _conv_adjoint(W: np.ndarray, u: np.ndarray, padding: int, hw: tuple[int, int]) -> np.ndarray:
    """``d<u, conv(W, s)>/ds``: scatter ``W[o, c, a, b] u[n, o, i, j]`` to ``s_pad[c, i+a, j+b]``
    and drop the padding; ``hw`` is the spatial size of ``s``."""
    k = W.shape[-1]
    n, _, ho, wo = u.shape
    g = np.zeros((n, W.shape[1], ho + k - 1, wo + k - 1))
    for a in range(k):
        for b in range(k):
            g[:, :, a : a + ho, b : b + wo] += np.einsum("oc,noij->ncij", W[:, :, a, b], u)
    h, w = hw
    return g[:, :, padding : padding + h, padding : padding + w]


def _conv_weight_corr(s: np.ndarray, u: np.ndarray, k: int, padding: int) -> np.ndarray:
    """``sum_n d<u, conv(W, s)>/dW[o, c, a, b]``
    ``= sum_{n,i,j} u[n, o, i, j] s_pad[n, c, i + a, j + b]``."""
    return np.einsum("noij,ncabij->ocab", u, _patches(s, k, padding))


def _max_pool(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max-pool: ``(max over each window, index in _WINDOW of its first maximum)``."""
    best = z[:, :, 0::2, 0::2].copy()
    choice = np.zeros(best.shape, dtype=np.int64)
    for m, (p, q) in enumerate(_WINDOW[1:], start=1):
        cand = z[:, :, p::2, q::2]
        better = cand > best  # strictly: ties keep the earlier position
        best = np.where(better, cand, best)
        choice[better] = m
    return best, choice


def _route(post: np.ndarray, choice: np.ndarray | None, pool: str) -> np.ndarray:
    """``u = d<post, pool(z)>/dz``: ``post`` at the chosen position of each window (max),
    ``post / 4`` on every position (avg), or ``post`` itself (no pool)."""
    if pool == "none":
        return post
    n, c, h, w = post.shape
    u = np.zeros((n, c, 2 * h, 2 * w))
    for m, (p, q) in enumerate(_WINDOW):
        if pool == "max":
            u[:, :, p::2, q::2] = np.where(choice == m, post, 0.0)
        else:
            u[:, :, p::2, q::2] = post / 4.0
    return u


def _pool(z: np.ndarray, pool: str) -> tuple[np.ndarray, np.ndarray | None]:
    if pool == "max":
        return _max_pool(z)
    if pool == "avg":
        return sum(z[:, :, p::2, q::2] for p, q in _WINDOW) / 4.0, None
    return z, None


def T(c: Coupling, pre: np.ndarray, post_shape: tuple[int, ...]) -> np.ndarray:
    """``T(pre)``: ``flat(pre) @ W`` (dense) or ``pool(conv(W, pre))`` (true max)."""
    n = pre.shape[0]
    if c.kind == "dense":
        return np.einsum("ni,ij->nj", pre.reshape(n, -1), c.W).reshape((n, *post_shape))
    return _pool(_conv(c.W, pre, c.padding), c.pool)[0]


def T_adjoint(c: Coupling, pre: np.ndarray, post: np.ndarray) -> np.ndarray:
    """``d<post, T(pre)>/dpre`` (max-pool argmax at ``pre``)."""
    n = pre.shape[0]
    if c.kind == "dense":
        return np.einsum("nj,ij->ni", post.reshape(n, -1), c.W).reshape(pre.shape)
    _, choice = _pool(_conv(c.W, pre, c.padding), c.pool)
    return _conv_adjoint(c.W, _route(post, choice, c.pool), c.padding, pre.shape[2:])


def T_weight_corr(c: Coupling, pre: np.ndarray, post: np.ndarray) -> np.ndarray:
    """``sum_n d<post, T(pre; W)>/dW`` (max-pool argmax at ``pre``)."""
    n = pre.shape[0]
    if c.kind == "dense":
        return np.einsum("ni,nj->ij", pre.reshape(n, -1), post.reshape(n, -1))
    _, choice = _pool(_conv(c.W, pre, c.padding), c.pool)
    return _conv_weight_corr(pre, _route(post, choice, c.pool), c.W.shape[-1], c.padding)


def _bias_field(b: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``b`` broadcast over the spatial axes of a layer of ``shape`` (batch axis first)."""
    return b.reshape((1, -1) + (1,) * (len(shape) - 2)) * np.ones(shape)


# ---------------------------------------------------------------------------- energy
def energy(
    net: Network, state: list[np.ndarray], beta: float = 0.0, target: np.ndarray | None = None
) -> np.ndarray:
    """Per-example energy, shape ``(N,)``.

    .. math::

        F = \\sum_{k=1}^{L} \\left[\\tfrac12\\lVert s_k\\rVert^2 - \\langle b_k, s_k\\rangle
            - \\langle s_k, T_k(s_{k-1})\\rangle\\right]
            + \\tfrac{\\beta}{2}\\lVert o - y\\rVert^2

    (the last term only when ``beta != 0``; the max-pool is the true maximum).
    """
    n = state[0].shape[0]
    e = np.zeros(n)
    for k in range(1, net.L + 1):
        s = state[k].reshape(n, -1)
        b = _bias_field(net.biases[k], state[k].shape).reshape(n, -1)
        t = T(net.couplings[k - 1], state[k - 1], net.shapes[k]).reshape(n, -1)
        e += 0.5 * np.sum(s * s, axis=1) - np.sum(b * s, axis=1) - np.sum(s * t, axis=1)
    if beta != 0.0:
        d = (state[net.L] - target).reshape(n, -1)
        e += 0.5 * beta * np.sum(d * d, axis=1)
    return e


def dE_dstate(net: Network, state: list[np.ndarray], k: int) -> np.ndarray:
    """``dE/ds_k = s_k - b_k - T_k(s_{k-1}) - T_{k+1}^*(s_{k+1})`` (``1 <= k <= L``).

    ``T_{k+1}^*(s_{k+1}) = d<s_{k+1}, T_{k+1}(s_k)>/ds_k`` at the current max-pool argmax;
    there is no top-down term for the output ``k = L``.
    """
    n = state[0].shape[0]
    g = state[k] - _bias_field(net.biases[k], state[k].shape)
    g = g - T(net.couplings[k - 1], state[k - 1], net.shapes[k])
    if k < net.L:
        g = g - T_adjoint(net.couplings[k], state[k], state[k + 1])
    return g.reshape((n, *net.shapes[k]))


def dE_dtheta(net: Network, state: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Batch-mean parameter gradient of ``E`` at ``state``.

    .. math::

        \\frac{\\partial E}{\\partial W_k} = -\\frac1N\\sum_n
            \\frac{\\partial\\langle s_k, T_k(s_{k-1}; W_k)\\rangle}{\\partial W_k},
        \\qquad
        \\frac{\\partial E}{\\partial b_k[c]} = -\\frac1N\\sum_n\\sum_{\\text{space}} s_k[c]

    i.e. ``-<pre post^T>`` for a dense coupling and ``-<corr(pre, route(post))>`` for a
    conv coupling (max-pool argmax at the pre-synaptic state).
    """
    n = state[0].shape[0]
    out: dict[str, np.ndarray] = {}
    for k in range(1, net.L + 1):
        c = net.couplings[k - 1]
        out[c.name] = -T_weight_corr(c, state[k - 1], state[k]) / n
        s = state[k].reshape(n, state[k].shape[1], -1)
        out[net.bias_names[k]] = -np.sum(s, axis=(0, 2)) / n
    return out


# ---------------------------------------------------------------------------- relaxation
def groups(net: Network, schedule: str = "async") -> list[list[int]]:
    """Layers updated together, in order, in one iteration.

    ``async``: ``[s_1, s_3, ...]`` then ``[s_2, s_4, ...]`` (the output included where its
    index falls); no two layers of a group are coupled, so each half-step is an exact block
    minimisation. ``sync``: every free layer at once (Jacobi).
    """
    free = list(range(1, net.L + 1))
    if schedule == "async":
        return [[k for k in free if k % 2 == 1], [k for k in free if k % 2 == 0]]
    if schedule == "sync":
        return [free]
    raise ValueError(f"unknown schedule {schedule!r}")


def half_step(
    net: Network,
    state: list[np.ndarray],
    group: list[int],
    beta: float = 0.0,
    target: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Replace each ``s_k``, ``k`` in ``group``, by the minimiser of ``F`` over ``s_k`` alone.

    With ``h_k = s_k - dE/ds_k = b_k + T_k(s_{k-1}) + T_{k+1}^*(s_{k+1})`` (every other layer
    held, max-pool argmax of ``T_{k+1}`` at the current ``s_k``):

    * hidden: ``argmin_{s in [0,1]} 1/2 s^2 - h s = clip(h_k, 0, 1)``;
    * output: ``argmin_o 1/2 o^2 - h o + beta/2 (o - y)^2 = (h_L + beta y) / (1 + beta)``.

    All updates of the group read the state before the half-step.
    """
    new = list(state)
    for k in group:
        h = state[k] - dE_dstate(net, state, k)
        if k < net.L:
            new[k] = np.minimum(np.maximum(h, 0.0), 1.0)
        else:
            new[k] = (h + beta * target) / (1.0 + beta) if beta != 0.0 else h
    return new


def relax(
    net: Network,
    x: np.ndarray,
    iterations: int,
    beta: float = 0.0,
    target: np.ndarray | None = None,
    schedule: str = "async",
    start: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """``iterations`` iterations of the schedule (see :func:`groups`, :func:`half_step`).

    Starts from ``start`` (a state; its input is replaced by ``x``) or from
    ``[x, 0, ..., 0]``. ``beta != 0`` minimises ``F = E + beta/2 ||o - y||^2`` with
    ``y = target`` (needs ``beta > -1``).
    """
    if beta != 0.0 and (target is None or beta <= -1.0):
        raise ValueError("a nudged phase needs a target and beta > -1")
    n = x.shape[0]
    x = np.array(x, dtype=np.float64).reshape((n, *net.shapes[0]))
    if start is None:
        state = [x] + [np.zeros((n, *shape)) for shape in net.shapes[1:]]
    else:
        state = [x] + [np.array(s, dtype=np.float64) for s in start[1:]]
    for _ in range(iterations):
        for group in groups(net, schedule):
            state = half_step(net, state, group, beta, target)
    return state


# ---------------------------------------------------------------------------- EP
_EP_BETAS = {
    "p_ep": lambda b: (0.0, b),
    "n_ep": lambda b: (-b, 0.0),
    "c_ep": lambda b: (-b, b),
}


def ep_gradient(
    rule: str,
    beta: float,
    net: Network,
    free_state: list[np.ndarray],
    target: np.ndarray,
    iterations: int,
    schedule: str = "async",
) -> dict[str, np.ndarray]:
    """Equilibrium-propagation estimate of ``dLoss/dtheta`` (batch mean).

    .. math::

        \\hat g = \\frac{\\partial_\\theta E(s^{\\beta_2}) - \\partial_\\theta E(s^{\\beta_1})}
                        {\\beta_2 - \\beta_1}

    with ``(beta1, beta2) = (0, b)`` (``p_ep``), ``(-b, 0)`` (``n_ep``) or ``(-b, b)``
    (``c_ep``); each ``s^{beta_i}`` is ``iterations`` iterations minimising
    ``E + beta_i/2 ||o - y||^2`` started from ``free_state`` (a ``beta_i = 0`` phase is a
    re-relaxation, not ``free_state`` itself).
    """
    b1, b2 = _EP_BETAS[rule](beta)
    s1, s2 = (
        relax(net, free_state[0], iterations, b, target, schedule, start=free_state)
        for b in (b1, b2)
    )
    g1, g2 = dE_dtheta(net, s1), dE_dtheta(net, s2)
    return {k: (g2[k] - g1[k]) / (b2 - b1) for k in g1}
