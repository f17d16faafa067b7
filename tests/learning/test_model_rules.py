"""The recurrent models and their rules: energies, gradient checks against the implicit
gradient (float64), holomorphic EP's exactness, finite-nudge EP's objective, directed EP and
Jacobian homeostasis, spectral caps, and the rejections theory demands."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from analogebl.errors import ConfigError
from analogebl.models import ModelNetwork, ModelSpec, RecurrentModel
from analogebl.models.rules import (
    FiniteNudgeEP,
    bptt_gradient,
    dF_dtheta,
    field,
    gibbs_mean_dF,
    implicit_gradient,
    make_model_rule,
    model_estimate,
)


def _flat(g):
    return torch.cat([v.flatten() for v in g.values()])


def _cos(a, b):
    a, b = _flat(a), _flat(b)
    return float(a @ b / (a.norm() * b.norm()))


def _setup(name, symmetric=True, n_in=12, n_h=10, n_out=4, n=8, seed=1, cost="ce", **kw):
    spec = ModelSpec(name, n_in, n_h, n_out, symmetric=symmetric, cost=cost, **kw)
    m = RecurrentModel(spec, "float64", rng=np.random.default_rng(seed))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_in, dtype=torch.float64, generator=g)
    y = torch.nn.functional.one_hot(torch.arange(n) % n_out, n_out).double()
    free = m.relax(x, 3000, 1e-14)
    assert free.converged == 1.0
    return m, x, y, free.h


@pytest.mark.parametrize("name", ["looped_mlp", "toroidal_mlp"])
def test_fixed_points_are_stationary_points_of_the_energy(name):
    """dE/dh = 0 at the relaxed state (the published energies were not stationary)."""
    m, x, _, h = _setup(name)
    hh = h.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(m.energy(hh, x, m.effective()).sum(), hh)
    assert float(g.abs().max()) < 1e-10
    # and mu = -dE/dh (the vector field EP uses is this energy's gradient flow)
    np.testing.assert_allclose(field(m, hh, x, m.effective()).detach(), -g, atol=1e-10)


@pytest.mark.parametrize("name", ["looped_mlp", "toroidal_mlp", "modern_eqprop"])
def test_implicit_gradient_equals_backprop_through_a_converged_relaxation(name):
    m, x, y, h = _setup(name)
    assert _cos(implicit_gradient(m, x, y, h), bptt_gradient(m, x, y, 600)) > 1 - 1e-10


@pytest.mark.parametrize(
    "rule,name,betas,slope,tol",
    [
        ("c_ep", "looped_mlp", (0.2, 0.1, 0.05), 2.0, 0.2),
        ("c_ep", "toroidal_mlp", (0.2, 0.1, 0.05), 2.0, 0.2),
        ("p_ep", "looped_mlp", (0.1, 0.05, 0.025), 1.0, 0.15),
    ],
)
def test_ep_converges_to_the_implicit_gradient_with_the_theoretical_slope(
    rule, name, betas, slope, tol
):
    """Relative error vs beta: slope 2 for centered EP, 1 for one-sided."""
    m, x, y, h = _setup(name)
    ig = _flat(implicit_gradient(m, x, y, h))
    errs = []
    for beta in betas:
        g, _ = model_estimate(m, make_model_rule(rule, beta, 3000), x, y, h, 3000, 1e-14)
        errs.append(float((_flat(g) - ig).norm() / ig.norm()))
    slopes = np.diff(np.log(errs)) / np.diff(np.log(betas))
    assert np.all(np.abs(slopes - slope) < tol), (errs, slopes)


@pytest.mark.parametrize("cost", ["ce", "mse"])
def test_holomorphic_ep_is_exact_at_finite_beta(cost):
    """Cauchy's formula: the error is the aliasing O(|beta|^N), far below C-EP's O(beta^2)."""
    m, x, y, h = _setup("looped_mlp", cost=cost)
    ig = _flat(implicit_gradient(m, x, y, h))
    g_c, _ = model_estimate(m, make_model_rule("c_ep", 0.2, 3000), x, y, h, 3000, 1e-14)
    e_c = float((_flat(g_c) - ig).norm() / ig.norm())
    for points, bound in ((4, 1e-3), (8, 1e-6)):
        rule = make_model_rule("h_ep", 0.2, 3000, points=points)
        g, _ = model_estimate(m, rule, x, y, h, 3000, 1e-14)
        e = float((_flat(g) - ig).norm() / ig.norm())
        assert e < bound and e < e_c / 10, (points, e, e_c)


def test_vector_field_ep_is_the_gradient_iff_the_jacobian_is_symmetric():
    m, x, y, h = _setup("looped_mlp")
    ig = implicit_gradient(m, x, y, h)
    g, _ = model_estimate(m, make_model_rule("vf_ep", 0.01, 3000), x, y, h, 3000, 1e-14)
    assert _cos(g, ig) > 1 - 1e-6
    for name, sym in (("modern_eqprop", True), ("looped_mlp", False)):
        m2, x2, y2, h2 = _setup(name, symmetric=sym)
        ig2 = implicit_gradient(m2, x2, y2, h2)
        g2, _ = model_estimate(m2, make_model_rule("d_ep", 0.01, 3000), x2, y2, h2, 3000, 1e-14)
        c = _cos(g2, ig2)
        assert 0.3 < c < 0.999, (name, c)  # a descent direction, not the gradient


def test_jacobian_homeostasis_reduces_asymmetry():
    """Descending the homeostasis penalty alone makes dmu/dh more symmetric."""
    m, x, _, h = _setup("looped_mlp", symmetric=False, n_h=8)
    from analogebl.models.rules import _homeostasis_grad

    def asym():
        j = torch.func.jacrev(lambda z: field(m, z, x[:1], m.effective()))(h[:1])[0, :, 0, :]
        return float((j - j.T).norm() / j.norm())

    before = asym()
    for _ in range(30):
        g = _homeostasis_grad(m, h, x)
        m.params = {k: v - 0.05 * g[k] for k, v in m.params.items()}
    assert asym() < 0.5 * before


def test_finite_nudge_ep_is_the_exact_gradient_of_its_finite_beta_objective():
    """T = 0: g = d/dtheta [(min F_beta - min F_0) / beta] for beta = 0.5, checked by
    central finite differences of the objective itself."""
    m, x, y, h = _setup("looped_mlp", n_h=6, n_in=5, n=4)
    beta = 0.5
    g, _ = model_estimate(m, make_model_rule("fn_ep", beta, 3000), x, y, h, 3000, 1e-14)

    def objective():
        e = m.effective()
        h0 = m.relax(x, 3000, 1e-15).h
        hb = m.relax(x, 3000, 1e-15, h0=h0, beta=beta, y1h=y).h
        f0 = m.energy(h0, x, e).mean()
        fb = (m.energy(hb, x, e) + beta * m.cost(hb, y, e)).mean()
        return float((fb - f0) / beta)

    rng = np.random.default_rng(0)
    for k in ("Wx", "W", "b", "Wo"):
        idx = tuple(int(rng.integers(0, s)) for s in m.params[k].shape)
        old = m.params[k][idx].item()
        eps = 1e-5
        m.params[k][idx] = old + eps
        up = objective()
        m.params[k][idx] = old - eps
        down = objective()
        m.params[k][idx] = old
        fd = (up - down) / (2 * eps)
        assert g[k][idx].item() == pytest.approx(fd, rel=1e-5, abs=1e-9), k


def test_finite_nudge_gibbs_average_matches_quadrature():
    """T > 0, one hidden unit: Langevin's <dE/db> equals the quadrature of
    int dE/db exp(-E/T) dh / Z over (-1, 1)."""
    spec = ModelSpec("looped_mlp", 1, 1, 2)
    m = RecurrentModel(spec, "float64", rng=np.random.default_rng(0))
    m.params.update(
        Wx=torch.tensor([[0.8]], dtype=torch.float64),
        W=torch.tensor([[0.3]], dtype=torch.float64),
        b=torch.tensor([0.1], dtype=torch.float64),
    )
    x = torch.ones(4000, 1, dtype=torch.float64)
    y = torch.zeros(4000, 2, dtype=torch.float64)
    y[:, 0] = 1
    temp = 0.2
    rule = FiniteNudgeEP(0.5, temperature=temp, samples=200, burn_in=400, step_size=0.005)
    gen = torch.Generator().manual_seed(0)
    g = gibbs_mean_dF(m, rule, x, y, torch.zeros(4000, 1, dtype=torch.float64), 0.0, gen)
    hs = np.linspace(-1 + 1e-9, 1 - 1e-9, 200001)
    e = hs * np.arctanh(hs) + 0.5 * np.log1p(-hs * hs) - 0.5 * 0.3 * hs**2 - hs * (0.8 + 0.1)
    w = np.exp(-(e - e.min()) / temp)
    mean_h = np.sum(hs * w) / np.sum(w)
    assert float(g["b"][0]) == pytest.approx(-mean_h, abs=0.01)  # dE/db = -h


def test_spectral_cap_bounds_the_effective_coupling():
    spec = ModelSpec("looped_mlp", 6, 20, 3, spectral_cap=0.5, init_gain=3.0)
    m = RecurrentModel(spec, "float64", rng=np.random.default_rng(0))
    raw = float(torch.linalg.matrix_norm(0.5 * (m.params["W"] + m.params["W"].T), ord=2))
    assert raw > 1.0
    for _ in range(50):
        m.power_iteration()
    assert float(torch.linalg.matrix_norm(m.effective()["W"], ord=2)) == pytest.approx(
        0.5, rel=1e-6
    )


def test_toroidal_buffer_is_used_by_every_relaxation():
    """Training and evaluation relax the same buffered map: the buffer gain changes the
    evaluation prediction path (the published code ignored it in training)."""
    net = ModelNetwork(ModelSpec("toroidal_mlp", 6, 8, 3), "float64", seed=0)
    x = np.random.default_rng(0).normal(size=(5, 6))
    h1 = net.model.relax(net._x(x), 500, 1e-13).h
    net.model.params["g"] = net.model.params["g"] * 0 + 0.8
    h2 = net.model.relax(net._x(x), 500, 1e-13).h
    assert float((h1 - h2).abs().max()) > 1e-3
    g, _ = model_estimate(
        net.model,
        make_model_rule("c_ep", 0.1, 500),
        net._x(x),
        net._y1h(np.array([0, 1, 2, 0, 1])),
        h2,
        500,
        1e-13,
    )
    assert float(g["g"].abs()) > 0  # the gain learns


@pytest.mark.parametrize(
    "rule,name,sym",
    [
        ("h_ep", "modern_eqprop", True),
        ("c_ep", "modern_eqprop", True),
        ("h_ep", "looped_mlp", False),
        ("fn_ep", "modern_eqprop", True),
        ("c_ep", "mlp", True),
    ],
)
def test_rules_reject_models_their_theory_does_not_cover(rule, name, sym):
    m = RecurrentModel(ModelSpec(name, 4, 5, 3, symmetric=sym), "float64")
    x = torch.zeros(2, 4, dtype=torch.float64)
    y = torch.eye(3, dtype=torch.float64)[:2]
    with pytest.raises(ConfigError) as e:
        model_estimate(m, make_model_rule(rule, 0.1, 10), x, y, m.relax(x, 10).h, 10)
    assert rule in str(e.value) or name in str(e.value)


def test_complex_dF_dtheta_is_analytic_in_the_state():
    """dF/dtheta at a complex state equals the analytic continuation: for real h it is
    real, and it matches a complex-step derivative of the real function."""
    m, x, y, h = _setup("looped_mlp", n_h=5, n_in=4, n=3)
    eps = 1e-20
    v = torch.randn(h.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    hc = h.to(torch.complex128) + 1j * eps * v * 0.1
    gc = dF_dtheta(m, hc, x, y, 0.0)
    # complex-step: Im f(h + i eps v) / eps = directional derivative of the real dF/dtheta
    hp = h + 1e-6 * v * 0.1
    hm = h - 1e-6 * v * 0.1
    gp, gm = dF_dtheta(m, hp, x, y, 0.0), dF_dtheta(m, hm, x, y, 0.0)
    for k in ("Wx", "W", "b"):
        fd = (gp[k] - gm[k]) / 2e-6
        np.testing.assert_allclose(gc[k].imag / eps, fd, rtol=1e-4, atol=1e-8)
        assert math.isfinite(float(gc[k].real.abs().max()))
