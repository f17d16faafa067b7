"""The engine against an independent oracle (``tests/oracle.py``), in float64.

The oracle is a slow NumPy transcription of the energy, the block-minimising updates and the
EP estimators that shares no code with the engine; every backend's trajectories, energies
and gradient estimates must equal it to rounding.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from analogebl.backends import make_backend
from analogebl.circuit import load_circuit
from analogebl.learning.estimators import estimate
from analogebl.learning.rules import make_rule
from analogebl.plan import build_plan
from tests import oracle as O
from tests.conftest import max_diff, random_batch

# key -> (circuit, overrides, free iterations, nudged iterations); the DCHN runs short
# phases (the oracle is slow), which compare trajectories rather than equilibria
CIRCUITS = {
    "tiny_dense": ("tiny_dense", {}, 30, 15),
    "tiny_conv": ("tiny_conv", {}, 30, 15),
    "tiny_conv_avg": ("tiny_conv", {"pool": "avg"}, 30, 15),
    "dchn32_w0.125": ("dchn32", {"width": 0.125}, 8, 4),
}
BACKENDS = ("reference", "numba", "torch")
EP_RULES = ("c_ep", "p_ep", "n_ep")
N, BETA = 3, 0.25
TOL = 1e-10


def _close(a, b, tol: float = TOL) -> bool:
    """``|a - b| <= tol * max(1, |b|)`` elementwise in the max norm."""
    return max_diff(a, b) <= tol * max(1.0, float(np.max(np.abs(b))))


@functools.cache
def _plan(key: str):
    name, over, *_ = CIRCUITS[key]
    return build_plan(load_circuit(name, **over), seed=7)


@functools.cache
def _oracle(key: str):
    """Inputs, targets and the oracle's states, energies and EP gradients for one circuit."""
    plan = _plan(key)
    *_, free_it, nudge_it = CIRCUITS[key]
    net = O.Network.from_plan(plan)
    x, y = random_batch(plan, N, seed=11)
    t = O.one_hot(y, plan.layer_shapes[-1][0])
    free = O.relax(net, x, free_it)
    nudged = {b: O.relax(net, x, nudge_it, b, t, start=free) for b in (BETA, -BETA)}
    grads = {r: O.ep_gradient(r, BETA, net, free, t, nudge_it) for r in EP_RULES}
    return x, y, t, free, nudged, grads


@functools.cache
def _backend(key: str, backend: str):
    return make_backend(backend, _plan(key), "float64")


@functools.cache
def _engine_phases(key: str, backend: str):
    """The engine's version of :func:`_oracle`'s phases (states are never modified)."""
    b = _backend(key, backend)
    *_, free_it, nudge_it = CIRCUITS[key]
    x, y, *_ = _oracle(key)
    t = b.one_hot(y)
    free = b.relax(b.zero_state(x), free_it)
    nudged = {beta: b.relax(free, nudge_it, beta=beta, target=t) for beta in (BETA, -BETA)}
    return b, t, free, nudged


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("key", CIRCUITS)
def test_relaxed_states_and_energies_equal_the_oracle(key, backend):
    _, _, t_o, free_o, nudged_o, _ = _oracle(key)
    net = O.Network.from_plan(_plan(key))
    b, t, free, nudged = _engine_phases(key, backend)
    for k, (a, o) in enumerate(zip(free, free_o, strict=True)):
        assert max_diff(b.to_numpy(a), o) < TOL, ("free", k)
    for beta in nudged:
        for k, (a, o) in enumerate(zip(nudged[beta], nudged_o[beta], strict=True)):
            assert max_diff(b.to_numpy(a), o) < TOL, (beta, k)
    assert _close(b.to_numpy(b.energy(free)), O.energy(net, free_o))
    for beta in nudged:
        e = b.to_numpy(b.energy(nudged[beta], beta, t))
        assert _close(e, O.energy(net, nudged_o[beta], beta, t_o)), beta


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("key", CIRCUITS)
def test_ep_gradient_estimates_equal_the_oracle(key, backend):
    *_, grads_o = _oracle(key)
    b, t, free, _ = _engine_phases(key, backend)
    for rule in EP_RULES:
        rule_ = make_rule(rule, beta=BETA, iterations=CIRCUITS[key][3])
        g, _ = estimate(b, rule_, free, t)
        assert set(g) == set(grads_o[rule])
        for name, v in g.items():
            assert _close(b.to_numpy(v), grads_o[rule][name]), (rule, name)
        # a non-trivial estimate: the comparison is not between two arrays of zeros
        assert max(np.abs(v).max() for v in grads_o[rule].values()) > 1e-3


def _sparse_state(plan, seed: int):
    """A generic state far from equilibrium: hidden layers in [0, 1] with many exact zeros,
    output unbounded. Hidden layer ``k`` is entirely zero for example ``k % 2``, so every
    max-pool window above it ties at 0 and the top-down routing exercises the tie rule."""
    rng = np.random.default_rng(seed)
    x, y = random_batch(plan, N, seed=seed)
    state = [x.reshape((N, *plan.layer_shapes[0]))]
    for k, shape in enumerate(plan.layer_shapes[1:-1], start=1):
        s = rng.uniform(size=(N, *shape))
        s = np.where(rng.uniform(size=s.shape) < 0.5, 0.0, s)
        s[k % 2] = 0.0
        state.append(s)
    state.append(rng.normal(size=(N, *plan.layer_shapes[-1])))
    return state, y


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("key", CIRCUITS)
def test_half_steps_energy_and_param_grads_at_generic_states(key, backend):
    plan = _plan(key)
    net = O.Network.from_plan(plan)
    b = _backend(key, backend)
    state, y = _sparse_state(plan, seed=3)
    t = O.one_hot(y, plan.layer_shapes[-1][0])
    sb = [b.asarray(s) for s in state]
    tb = b.asarray(t)
    for beta in (0.0, 0.4, -0.3):
        assert _close(b.to_numpy(b.energy(sb, beta, tb)), O.energy(net, state, beta, t))
        for schedule in ("async", "sync"):
            for g_e, g_o in zip(plan.groups(schedule), O.groups(net, schedule), strict=True):
                assert list(g_e) == g_o
                new_e = b.half_step(sb, g_e, beta, tb if beta else None)
                new_o = O.half_step(net, state, g_o, beta, t)
                for k in range(plan.num_layers):
                    assert max_diff(b.to_numpy(new_e[k]), new_o[k]) < TOL, (beta, schedule, k)
    g_e = b.param_grads(sb)
    for name, v in O.dE_dtheta(net, state).items():
        assert _close(b.to_numpy(g_e[name]), v), name


@pytest.mark.parametrize("key", CIRCUITS)
def test_oracle_energy_never_increases_over_async_half_steps(key):
    """Physics, from the oracle alone: each half-step minimises F over a block of
    mutually uncoupled layers (exactly for avg-pool, as a majorise-minimise step for
    max-pool, whose top-down term is concave in the pre layer), so F never increases."""
    plan = _plan(key)
    net = O.Network.from_plan(plan)
    x, y = random_batch(plan, N, seed=5)
    t = O.one_hot(y, plan.layer_shapes[-1][0])
    iterations = CIRCUITS[key][2]
    for beta in (0.0, 0.5, -0.3):
        s = O.relax(net, x, 0)
        e_prev = O.energy(net, s, beta, t)
        drop = 0.0
        for _ in range(iterations):
            for g in O.groups(net, "async"):
                s = O.half_step(net, s, g, beta, t)
                e = O.energy(net, s, beta, t)
                assert np.all(e <= e_prev + 1e-12 * np.maximum(1.0, np.abs(e_prev))), beta
                drop = max(drop, float(np.max(e_prev - e)))
                e_prev = e
        assert drop > 1e-3  # the relaxation did something


@pytest.mark.parametrize("key", ["tiny_dense", "tiny_conv", "tiny_conv_avg"])
def test_oracle_derivatives_match_finite_differences_of_its_energy(key):
    """The oracle's dE/dtheta and dE/ds are the derivatives of its own energy (central
    differences; generic dense states, so no max-pool window is near a tie)."""
    plan = _plan(key)
    net = O.Network.from_plan(plan)
    rng = np.random.default_rng(0)
    x, _ = random_batch(plan, N, seed=9)
    state = [x.reshape((N, *plan.layer_shapes[0]))]
    state += [rng.uniform(0.1, 0.9, size=(N, *s)) for s in plan.layer_shapes[1:]]
    eps = 1e-6

    def mean_energy():
        return float(np.mean(O.energy(net, state)))

    grads = O.dE_dtheta(net, state)
    for name, p in net.parameters().items():
        for flat in rng.choice(p.size, size=min(p.size, 6), replace=False):
            i = np.unravel_index(flat, p.shape)
            p0 = p[i]
            p[i] = p0 + eps
            ep = mean_energy()
            p[i] = p0 - eps
            em = mean_energy()
            p[i] = p0
            assert abs((ep - em) / (2 * eps) - grads[name][i]) < 1e-7, (name, i)
    for k in range(1, plan.num_layers):
        d = rng.normal(size=state[k].shape)
        s0 = state[k]
        state[k] = s0 + eps * d
        ep = O.energy(net, state)
        state[k] = s0 - eps * d
        em = O.energy(net, state)
        state[k] = s0
        fd = (ep - em) / (2 * eps)
        an = np.sum((O.dE_dstate(net, state, k) * d).reshape(N, -1), axis=1)
        assert np.max(np.abs(fd - an)) < 1e-6, k
