"""Soft diode clamps and node amplifiers (``plan.effects.NodeClamp``): the minimiser of the
node co-content, its energy, the fast backends against the reference, and EP theory with
the clamp on (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize

from analogebl.diagnostics.gradcheck import check_gradients
from analogebl.network import Network
from analogebl.plan.effects import NodeClamp
from tests.conftest import FAST_BACKENDS, backend_pair, max_diff, random_batch

SOFT = NodeClamp(gain=1.3, kappa_off=0.05, kappa_on=4.0, v_th=0.1)


def _clamps(plan, clamp):
    return [None] + [clamp] * (plan.num_layers - 2) + [None]


@pytest.mark.parametrize(
    "clamp",
    [SOFT, NodeClamp(gain=0.7, kappa_on=math.inf, v_th=-0.2), NodeClamp(kappa_off=0.3)],
)
def test_the_soft_clip_is_the_minimiser_of_the_node_co_content(clamp):
    """``s(h) = argmin_s e(s) - h s`` (a bounded scalar minimisation per h), and the
    co-content's derivative is ``h`` at the minimiser."""
    a, b = clamp.knees
    for h in np.linspace(-3, 4, 29):
        s = float(clamp(np.array(h)))
        if math.isinf(clamp.kappa_on):
            lo, hi = a, b  # an ideal diode: the state cannot pass the knee
        else:
            lo, hi = -20.0, 20.0
        res = optimize.minimize_scalar(
            lambda v, h=h: float(clamp.co_content(np.array(v))) - h * v,
            bounds=(lo, hi), method="bounded", options={"xatol": 1e-12},
        )  # fmt: skip
        assert abs(res.x - s) < 1e-6, (h, res.x, s)


def test_the_ideal_clamp_is_the_clip_and_costs_nothing():
    ref, _ = backend_pair("tiny_dense", "float64", seed=0)
    x, _ = random_batch(ref.plan, 4, seed=1)
    want = ref.relax(ref.zero_state(x), 20)
    ref.set_node_clamps(_clamps(ref.plan, NodeClamp()))
    assert ref._clamps is None  # an ideal clamp is not installed
    got = ref.relax(ref.zero_state(x), 20)
    for a, b in zip(want, got, strict=True):
        assert np.array_equal(a, b)
    assert NodeClamp()(np.array([-1.0, 0.3, 2.0])).tolist() == [0.0, 0.3, 1.0]


@pytest.mark.parametrize("circuit", ["tiny_dense", "tiny_conv"])
@pytest.mark.parametrize("fast", FAST_BACKENDS)
def test_fast_backends_equal_reference_with_soft_clamps(circuit, fast):
    ref, fb = backend_pair(circuit, "float64", seed=2, fast=fast)
    for b in (ref, fb):
        b.set_node_clamps(_clamps(b.plan, SOFT))
    x, y = random_batch(ref.plan, 3, seed=3)
    sr, sf = ref.relax(ref.zero_state(x), 25), fb.relax(fb.zero_state(x), 25)
    for a, b in zip(sr, sf, strict=True):
        assert max_diff(a, fb.to_numpy(b)) < 1e-10
    er, ef = ref.energy(sr), fb.energy(sf)
    assert max_diff(er, fb.to_numpy(ef)) < 1e-10


@pytest.mark.parametrize("circuit,over", [("tiny_dense", {}), ("tiny_conv", {"pool": "avg"})])
def test_energy_with_the_co_content_decreases_under_asynchronous_updates(circuit, over):
    """(A max-pool's update is a descent step only for non-negative post states, which a
    soft lower knee no longer guarantees; see ``plan.effects``.)"""
    ref, _ = backend_pair(circuit, "float64", seed=4, **over)
    ref.set_node_clamps(_clamps(ref.plan, SOFT))
    x, _ = random_batch(ref.plan, 3, seed=5)
    s = ref.zero_state(x)
    e_prev = ref.energy(s)
    for _ in range(30):
        for g in ref.plan.groups("async"):
            s = ref.half_step(s, g)
            e = ref.energy(s)
            assert np.all(e <= e_prev + 1e-12)
            e_prev = e
    assert ref.residual(s) < 1e-6


def test_implicit_gradient_with_soft_clamps_matches_finite_differences():
    """The node slopes D enter the implicit solve as (I - D^1/2 J D^1/2)."""
    net = Network.from_catalog("tiny_dense", backend="reference", dtype="float64", seed=1)
    net.backend.set_node_clamps(_clamps(net.plan, SOFT))
    x, y = random_batch(net.plan, 2, seed=3)
    g = net.implicit_gradient(x, y, free_iterations=1500)
    p0 = net.parameters()

    def loss(params):
        net.load_parameters(params)
        o = net.relax(x, 1500)["out"]
        return 0.5 * np.mean(np.sum((o - np.eye(10)[y]) ** 2, axis=1))

    rng = np.random.default_rng(0)
    for name in ("W1", "b1", "W2", "b2"):
        d = rng.normal(size=p0[name].shape)
        eps = 1e-5
        fd = loss({**p0, name: p0[name] + eps * d}) - loss({**p0, name: p0[name] - eps * d})
        fd /= 2 * eps
        assert abs(fd - np.vdot(g[name], d)) < 1e-6 * max(1.0, abs(fd)), name
    net.load_parameters(p0)


@pytest.mark.parametrize("circuit,over", [("tiny_dense", {}), ("tiny_conv", {"pool": "avg"})])
def test_ep_slopes_hold_with_soft_diode_clamps(circuit, over):
    """P/N-EP error O(beta), C-EP O(beta^2) with the co-content in the energy (float64)."""
    net = Network.from_catalog(circuit, backend="reference", dtype="float64", seed=1, **over)
    net.backend.set_node_clamps(_clamps(net.plan, SOFT))
    r = check_gradients(net, ["p_ep", "n_ep", "c_ep"], batch_size=1, seed=1, iterations=3000)
    assert r["free_residual"] < 1e-11
    for name, want in (("p_ep", 1.0), ("n_ep", 1.0), ("c_ep", 2.0)):
        e = r["rules"][name]
        assert abs(e["slope"] - want) < 0.15, (name, e["slope"])
        assert e["cosine"][0] > 0.99999
