"""Muon, SMEP/LocalEP, NaturalEP (K-FAC) and SDMEP (Dion): each one's defining property."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analogebl import Network
from analogebl.errors import ConfigError
from analogebl.learning import make_optimizer, make_rule
from analogebl.learning.orthogonal_optimizers import OrthogonalOptimizer
from analogebl.learning.orthogonalize import (
    column_normalize,
    from_matrix,
    newton_schulz5,
    newton_schulz5_spectral,
    orthonormalize_columns,
    spectral_norm,
    to_matrix,
)
from analogebl.spec import OPTIMIZERS, OptimizerSpec
from analogebl.training import IdealUpdater


def _spread(rng, m, n, cond=100.0):
    """A random m x n matrix with singular values spread over ``cond``."""
    u, _ = np.linalg.qr(rng.normal(size=(m, m)))
    v, _ = np.linalg.qr(rng.normal(size=(n, n)))
    k = min(m, n)
    s = np.geomspace(1.0, 1.0 / cond, k)
    return (u[:, :k] * s) @ v[:, :k].T


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (40, 40)])
def test_newton_schulz_equals_polynomial_on_singular_values(shape):
    """NS5 on matrices == the scalar quintic applied to each singular value (SVD oracle)."""
    g = _spread(np.random.default_rng(1), *shape)
    fast = newton_schulz5(g)
    slow = newton_schulz5_spectral(g)
    np.testing.assert_allclose(fast, slow, atol=1e-10)
    t = newton_schulz5(torch.as_tensor(g))
    np.testing.assert_allclose(t.numpy(), slow, atol=1e-10)


def test_newton_schulz_output_is_near_orthogonal():
    """Spread spectrum (condition 100) in, singular values within [0.6, 1.25] out."""
    g = _spread(np.random.default_rng(2), 128, 64, cond=100.0)
    s_in = np.linalg.svd(g, compute_uv=False)
    s_out = np.linalg.svd(newton_schulz5(g), compute_uv=False)
    assert s_in.max() / s_in.min() > 50
    assert 0.6 < s_out.min() and s_out.max() < 1.25
    # and the singular vectors are those of G (it approximates U V^T)
    u, _, vt = np.linalg.svd(g, full_matrices=False)
    core = u.T @ newton_schulz5(g) @ vt.T
    off = core - np.diag(np.diag(core))
    assert np.abs(off).max() < 1e-10 and np.diag(core).min() > 0.6


def _slow_muon(w, grads, lr, mu, wd, nesterov=True):
    """Readable Muon (Jordan 2024) on a (fan_out, fan_in) matrix, float64, one loop step."""
    b = np.zeros_like(w)
    for g in grads:
        b = mu * b + g
        d = g + mu * b if nesterov else b
        x = newton_schulz5_spectral(d)
        w = (1 - lr * wd) * w - lr * max(1.0, w.shape[0] / w.shape[1]) ** 0.5 * x
    return w


@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_matches_slow_reference(nesterov):
    rng = np.random.default_rng(3)
    w0 = rng.normal(size=(30, 50))  # stored (n_in, n_out) = (30, 50): matrix view (50, 30)
    grads = [rng.normal(size=(30, 50)) for _ in range(4)]
    opt = OrthogonalOptimizer(
        "muon", {"W": 0.05}, {"W": "ns"}, momentum=0.9, nesterov=nesterov, weight_decay=0.01
    )
    params = {"W": w0.copy()}
    for g in grads:
        opt.step(params, {"W": g})
    ref = _slow_muon(w0.T, [g.T for g in grads], 0.05, 0.9, 0.01, nesterov).T
    np.testing.assert_allclose(params["W"], ref, atol=1e-9)
    assert params["W"].flags.c_contiguous


def test_conv_kernel_matrix_view_roundtrip():
    k = np.random.default_rng(0).normal(size=(8, 3, 3, 3))
    m = to_matrix(k)
    assert m.shape == (8, 27)
    np.testing.assert_array_equal(from_matrix(m, k), k)
    w = np.random.default_rng(0).normal(size=(5, 7))
    assert to_matrix(w).shape == (7, 5)
    np.testing.assert_array_equal(from_matrix(to_matrix(w), w), w)


def test_spectral_cap_holds_after_every_step():
    rng = np.random.default_rng(4)
    opt = OrthogonalOptimizer(
        "smep", {"W": 0.5}, {"W": "ns"}, spectral_cap=0.95, capped={"W"}, cap_iterations=20
    )
    params = {"W": rng.normal(size=(20, 10))}
    for _ in range(5):
        opt.step(params, {"W": rng.normal(size=(20, 10))})
        # power iteration approaches sigma from below
        assert np.linalg.svd(params["W"], compute_uv=False)[0] <= 0.95 * (1 + 1e-3)
    sigma, _ = spectral_norm(params["W"], np.ones(10) / np.sqrt(10), 200)
    assert sigma == pytest.approx(np.linalg.svd(params["W"], compute_uv=False)[0], rel=1e-6)


def test_dion_rank_error_feedback_and_orthonormal_factors():
    """Dion's update has rank r, P has orthonormal columns, and error feedback keeps
    exactly what was not applied: M_t + (1 - mu) P R^T = M_{t-1} + G_t."""
    rng = np.random.default_rng(5)
    shape = (60, 40)  # stored (n_in, n_out): matrix view (40, 60)
    r = int(0.2 * 40)
    opt = OrthogonalOptimizer(
        "sdmep",
        {"W": 0.01},
        {"W": "dion"},
        momentum=0.9,
        rank_frac=0.2,
        rng=np.random.default_rng(0),
    )
    params = {"W": rng.normal(size=shape)}
    m_prev = np.zeros((40, 60))
    q_prev = column_normalize(np.random.default_rng(0).standard_normal((60, r)))
    for _ in range(4):
        g = rng.normal(size=shape)
        w_before = params["W"].copy()
        opt.step(params, {"W": g})
        b = m_prev + to_matrix(g)
        p = orthonormalize_columns(b @ q_prev)
        np.testing.assert_allclose(p.T @ p, np.eye(r), atol=1e-10)
        rr = b.T @ p
        m_now = opt.buf["mom"]["W"]
        np.testing.assert_allclose(m_now + 0.1 * p @ rr.T, b, atol=1e-10)  # error feedback
        delta = to_matrix(params["W"] - w_before)
        assert np.linalg.matrix_rank(delta, tol=1e-9) == r
        np.testing.assert_allclose(
            delta, -0.01 * np.sqrt(40 / 60) * p @ column_normalize(rr).T, atol=1e-12
        )
        m_prev, q_prev = m_now, opt.buf["q"]["W"]


def test_dion_finds_the_top_subspace_of_a_low_rank_gradient():
    """Repeated rank-3 gradients: Dion's left factor converges to their column space."""
    rng = np.random.default_rng(6)
    u, _ = np.linalg.qr(rng.normal(size=(50, 3)))
    v, _ = np.linalg.qr(rng.normal(size=(30, 3)))
    g = (u * [3.0, 2.0, 1.0]) @ v.T  # matrix view (50, 30): stored transposed
    opt = OrthogonalOptimizer(
        "sdmep",
        {"W": 1e-3},
        {"W": "dion"},
        momentum=0.9,
        rank_frac=0.1,
        rng=np.random.default_rng(1),
    )
    params = {"W": np.zeros((30, 50))}
    for _ in range(20):
        w0 = params["W"].copy()
        opt.step(params, {"W": g.T})
    delta = to_matrix(params["W"] - w0)
    pu, _, _ = np.linalg.svd(delta, full_matrices=False)
    overlap = np.linalg.svd(u.T @ pu[:, :3], compute_uv=False)
    assert overlap.min() > 0.999


def test_kfac_factor_shapes_damping_and_natural_step():
    """Factors are (in x in) and (out x out) batch second moments; the step solves the
    damped Kronecker system: (Gam + gG I) step (A + gA I) = G (in the (out, in) view)."""
    net = Network.from_catalog("tiny_dense", backend="reference", dtype="float64", seed=0)
    b = net.backend
    shapes = {k: tuple(v.shape) for k, v in net.parameters().items()}
    dense = {c.name for c in b.plan.couplings}
    spec = OptimizerSpec("natural_ep", 0.1, kfac_decay=0.0, damping=0.05, spectral_cap=0.0)
    opt = make_optimizer(spec, shapes, set(), dense)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, *b.plan.layer_shapes[0]))
    y = rng.integers(0, b.plan.layer_shapes[-1][0], size=16)
    free = b.relax(b.zero_state(x), 60)
    rule = make_rule("c_ep", 0.2, 20)
    from analogebl.learning import estimate

    seen = {}

    def observer(f, s1, s2, b1, b2):
        seen.update(f=f, s1=s1, s2=s2, b=(b1, b2))
        opt.observe(b, f, s1, s2, b1, b2)

    grads, _ = estimate(b, rule, free, b.one_hot(y), observer=observer)
    for c in b.plan.couplings:
        a = seen["f"][c.pre].reshape(16, -1)
        d = (seen["s2"][c.post] - seen["s1"][c.post]) / (seen["b"][1] - seen["b"][0])
        A, G = opt.buf["A"][c.name], opt.buf["G"][c.name]
        assert A.shape == (a.shape[1],) * 2 and G.shape == (d.shape[1],) * 2
        np.testing.assert_allclose(A, a.T @ a / 16, atol=1e-12)
        np.testing.assert_allclose(G, d.T @ d / 16, atol=1e-12)
        step = opt._precondition(c.name, to_matrix(grads[c.name]))
        gA = 0.05 * np.trace(A) / A.shape[0]
        gG = 0.05 * np.trace(G) / G.shape[0]
        lhs = (G + gG * np.eye(len(G))) @ step @ (A + gA * np.eye(len(A)))
        np.testing.assert_allclose(lhs, to_matrix(grads[c.name]), atol=1e-9)
    opt.step(b.params, grads)  # and the full step runs


def test_natural_ep_rejects_rules_without_two_equilibria():
    net = Network.from_catalog("tiny_dense", backend="reference", dtype="float64", seed=0)
    shapes = {k: tuple(v.shape) for k, v in net.parameters().items()}
    couplings = {c.name for c in net.backend.plan.couplings}
    opt = make_optimizer(OptimizerSpec("natural_ep", 0.1), shapes, set(), couplings)
    x = np.random.default_rng(0).normal(size=(4, *net.backend.plan.layer_shapes[0]))
    with pytest.raises(ConfigError, match="two equilibria"):
        net.train_step(x, np.zeros(4, dtype=int), make_rule("tbp", None, 5), IdealUpdater(opt), 10)


def test_routes_of_each_optimizer():
    shapes = {
        "W1": (784, 128),
        "b1": (128,),
        "W2": (128, 64),
        "b2": (64,),
        "W3": (64, 10),
        "b3": (10,),
    }
    lrs = 0.02
    dense = {"W1", "W2", "W3"}
    muon = make_optimizer(OptimizerSpec("muon", lrs), shapes, {"W2"}, dense)
    assert muon.routes == {
        "W1": "adamw",
        "b1": "adamw",
        "W2": "ns",
        "b2": "adamw",
        "W3": "adamw",
        "b3": "adamw",
    }
    assert muon.lrs["W1"] == 1e-3 and muon.lrs["W2"] == 0.02 and not muon.capped
    smep = make_optimizer(OptimizerSpec("smep", lrs), shapes, {"W2"}, dense)
    assert {k for k, r in smep.routes.items() if r == "ns"} == dense
    assert smep.capped == dense and smep.spectral_cap == 0.95
    sdmep = make_optimizer(OptimizerSpec("sdmep", lrs), shapes, {"W2"}, dense)
    assert sdmep.routes["W1"] == "dion" and sdmep.routes["W2"] == "ns"  # 100k > 50k entries
    nat = make_optimizer(OptimizerSpec("natural_ep", lrs), shapes, {"W2"}, dense)
    assert nat.kfac == dense
    with pytest.raises(ConfigError, match="unknown optimizer"):
        make_optimizer(OptimizerSpec("lion", lrs), shapes, set(), dense)


def test_local_ep_is_smep_step_for_step():
    """Every contrastive rule here is layer-local, so LocalEP and SMEP are the same numbers."""
    out = []
    for name in ("smep", "local_ep"):
        net = Network.from_catalog("tiny_dense", backend="reference", dtype="float64", seed=0)
        shapes = {k: tuple(v.shape) for k, v in net.parameters().items()}
        couplings = {c.name for c in net.backend.plan.couplings}
        opt = make_optimizer(OptimizerSpec(name, 0.05), shapes, set(), couplings)
        rng = np.random.default_rng(0)
        for _ in range(3):
            x = rng.normal(size=(8, *net.backend.plan.layer_shapes[0]))
            y = rng.integers(0, 10, size=8)
            net.train_step(x, y, make_rule("c_ep", 0.2, 10), IdealUpdater(opt), 20)
        out.append(net.parameters())
    for k in out[0]:
        np.testing.assert_array_equal(out[0][k], out[1][k])


def test_optimizer_state_roundtrip_resumes_exactly():
    rng = np.random.default_rng(7)
    shapes = {"W1": (20, 12), "b1": (12,), "W2": (12, 6), "b2": (6,)}

    def mk():
        spec = OptimizerSpec("sdmep", 0.01, dion_threshold=100)
        return make_optimizer(spec, shapes, set(), {"W1", "W2"}, rng=np.random.default_rng(3))

    grads = [{k: rng.normal(size=s) for k, s in shapes.items()} for _ in range(6)]
    p0 = {k: rng.normal(size=s) for k, s in shapes.items()}
    a, pa = mk(), dict(p0)
    for g in grads:
        a.step(pa, g)
    b, pb = mk(), dict(p0)
    for g in grads[:3]:
        b.step(pb, g)
    c = mk()
    c.load_state({k: v.copy() for k, v in b.state().items()}, b.scalars())
    for g in grads[3:]:
        c.step(pb, g)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_spectral_cap_wraps_plain_optimizers(name):
    """Spectral normalization on any coupling: SGD/Adam + cap keep sigma_max <= cap (dense
    and conv matrix views) and checkpoint their power-iteration vectors."""
    rng = np.random.default_rng(8)
    shapes = {"W1": (6, 3, 3, 3), "b1": (6,), "W2": (24, 10), "b2": (10,)}
    opt = make_optimizer(OptimizerSpec(name, 0.01, spectral_cap=0.7), shapes, set(), {"W2"})
    params = {k: rng.normal(size=s) for k, s in shapes.items()}  # sigma ~ 5-7 at first
    for _ in range(30):  # slowly changing weights, as in training: the estimate tightens
        opt.step(params, {k: rng.normal(size=s) for k, s in shapes.items()})
    for k in ("W1", "W2"):
        assert np.linalg.norm(to_matrix(params[k]), 2) <= 0.7 * (1 + 1e-2), k
    assert np.linalg.norm(params["b2"]) > 0.7  # biases are not capped
    st = opt.state()
    assert "capv/W1" in st and "capv/W2" in st
    again = make_optimizer(OptimizerSpec(name, 0.5, spectral_cap=0.7), shapes, set(), {"W2"})
    again.load_state(st, opt.scalars())
    assert set(again.state()) == set(st)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_steps_float32_masters_under_a_bfloat16_relaxation(name):
    """Under a 16-bit relaxation the optimizers see float32 gradients and step float32
    masters; natural_ep's Kronecker factors are float32 (its inverses refuse bfloat16)."""
    net = Network.from_catalog("tiny_dense", backend="torch", dtype="bfloat16", seed=0)
    shapes = {k: tuple(v.shape) for k, v in net.parameters().items()}
    couplings = {c.name for c in net.backend.plan.couplings}
    opt = make_optimizer(
        OptimizerSpec(name, 0.05), shapes, set(), couplings, rng=np.random.default_rng(1)
    )
    before = net.parameters()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, *net.backend.plan.layer_shapes[0]))
    y = rng.integers(0, 10, size=8)
    net.train_step(x, y, make_rule("c_ep", 0.2, 10), IdealUpdater(opt), 20)
    after = net.parameters()
    assert all(v.dtype == np.float32 and np.all(np.isfinite(v)) for v in after.values())
    assert any(not np.array_equal(before[k], after[k]) for k in after)
