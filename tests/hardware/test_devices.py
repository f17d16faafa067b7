"""Device models reproduce their formulas statistically; pulses, faults, drift, mapping.

Tolerances follow aihwkit's practice: a sample mean over N devices must lie within a few
standard errors (here 4 sigma/sqrt(N)) of the formula, a sample std within 4/sqrt(2N)
relative."""

from __future__ import annotations

import numpy as np
import pytest

from analogebl.hardware import Crossbars, DeviceArray, DeviceParams, load_profile
from analogebl.hardware.devices import exp_saturating_k_gamma
from analogebl.hardware.pulses import pulse_counts, split_pair

N = 20_000


def _params(model, **kw):
    base = dict(model=model, g_min_S=1e-6, g_max_S=1e-5, n_states=100)
    if model == "linear_step":
        base.update(gamma_up=0.3, gamma_down=0.6)
    if model == "soft_bounds":
        base.update(gamma_up=1.0, gamma_down=1.0)
    if model == "exp_saturating":
        k, g = exp_saturating_k_gamma(2.0, 100)
        base.update(k_up=k, k_down=k, gamma_up=g, gamma_down=g)
    base.update(kw)
    return DeviceParams(**base)


def _fresh(p, seed=0, level=0.3):
    d = DeviceArray(p, (N,), np.random.default_rng(seed))
    d.program(np.full(N, p.g_min_S + level * p.range_S))
    return d


@pytest.mark.parametrize("model", ["constant_step", "linear_step", "soft_bounds", "exp_saturating"])
@pytest.mark.parametrize("up", [True, False])
def test_noise_free_n_pulses_follow_the_affine_formula(model, up):
    p = _params(model)
    d = _fresh(p)
    g0 = d.G.copy()
    d.pulse(np.full(N, 7), up, np.random.default_rng(1))
    q, b = _fresh(p)._affine(up)
    expect = g0.copy()
    for _ in range(7):
        expect = np.clip(q * expect + b, p.g_min_S, p.g_max_S)
    np.testing.assert_allclose(d.G, expect, rtol=1e-12, atol=1e-18)


def test_exp_saturating_pmax_pulses_span_the_range():
    """NeuroSim's check: n_states pulses take G_min exactly to G_max."""
    p = _params("exp_saturating")
    d = _fresh(p, level=0.0)
    d.pulse(np.full(N, p.n_states), True, np.random.default_rng(0))
    np.testing.assert_allclose(d.G, p.g_max_S, rtol=1e-9)


@pytest.mark.parametrize("mode,std", [("multiplicative", 0.3), ("additive", 2.0)])
@pytest.mark.parametrize("model", ["constant_step", "soft_bounds"])
def test_n_pulses_in_one_call_equal_n_single_pulses_in_distribution(model, mode, std):
    p = _params(model, c2c_std=std, c2c_mode=mode)
    a, b = _fresh(p), _fresh(p)
    n = 10
    a.pulse(np.full(N, n), True, np.random.default_rng(2))
    for _ in range(n):
        b.pulse(
            np.ones(N, int),
            True,
            np.random.default_rng(np.random.default_rng(3).integers(1 << 30) + _),
        )
    # the per-pulse reference loop inside one call as well
    c = _fresh(p)
    c.pulse(np.full(N, n), True, np.random.default_rng(4), per_pulse=True)
    for ref in (b.G, c.G):
        sd = ref.std()
        assert abs(a.G.mean() - ref.mean()) < 4 * sd / np.sqrt(N) * np.sqrt(2)
        assert abs(a.G.std() / sd - 1) < 4 / np.sqrt(2 * N) * 2 + 0.03


def test_multiplicative_c2c_spread_matches_its_formula():
    """constant step: G_n = G_0 + n Delta (1 + s xi) summed -> std = s Delta sqrt(n)."""
    p = _params("constant_step", c2c_std=0.4)
    d = _fresh(p)
    d.pulse(np.full(N, 9), True, np.random.default_rng(5))
    dg = d.G - (p.g_min_S + 0.3 * p.range_S)
    assert abs(dg.mean() / (9 * p.step_S) - 1) < 4 * 0.4 * 3 / 9 / np.sqrt(N)
    assert abs(dg.std() / (0.4 * p.step_S * 3) - 1) < 4 / np.sqrt(2 * N)


@pytest.mark.parametrize("model", ["constant_step", "linear_step", "exp_saturating", "exp_step"])
def test_bounds_are_never_exceeded_and_seeds_reproduce(model):
    p = _params(
        model,
        c2c_std=3.0,
        c2c_mode="additive",
        dtod_bounds_std=0.1,
        dtod_step_std=0.3,
        exp=(-1.0, 0.0, 2.5, 2.5, -5.0, -2.0),
    )
    runs = []
    for _ in range(2):
        d = _fresh(p, seed=7)
        rng = np.random.default_rng(8)
        for i in range(6):
            d.pulse(rng.integers(0, 40, N), i % 2 == 0, rng)
            assert np.all(d.G >= d.g_lo - 1e-18) and np.all(d.G <= d.g_hi + 1e-18)
        runs.append(d.G.copy())
    np.testing.assert_array_equal(*runs)


def test_stochastic_rounding_is_unbiased_and_deterministic_roundings_have_a_dead_zone():
    rng = np.random.default_rng(0)
    dg = np.full(200_000, 0.3e-9)
    n = pulse_counts(dg, 1e-9, "stochastic", None, rng)
    assert abs(n.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / len(n))
    assert set(np.unique(n)) == {0, 1}
    assert pulse_counts(dg, 1e-9, "nearest", None, rng).sum() == 0
    assert pulse_counts(dg * 10, 1e-9, "truncate", 2, rng).max() == 2  # capped


def test_stuck_devices_never_change():
    p = _params("constant_step", stuck_prob=0.2, c2c_std=0.5)
    d = _fresh(p)
    before = d.visible[d.stuck].copy()
    assert 0.17 < d.stuck.mean() < 0.23
    rng = np.random.default_rng(1)
    for up in (True, False, True):
        d.pulse(np.full(N, 5), up, rng)
    np.testing.assert_array_equal(d.visible[d.stuck], before)


def test_power_law_drift():
    p = _params("constant_step", drift_model="power_law", drift_nu=0.05, drift_t0_sec=20.0)
    d = _fresh(p)
    g0 = d.visible.copy()
    d.advance(100.0)
    d.advance(380.0)  # compounding equals one step of 480 s
    np.testing.assert_allclose(d.visible, g0 * (500.0 / 20.0) ** -0.05, rtol=1e-12)
    d.pulse(np.full(N, 1), True, np.random.default_rng(0))  # re-programmed: fresh clock
    assert np.all(d.age_sec == 0) and np.all(d.drift == 1)


def test_differential_split_and_mapping_round_trip():
    dg = np.array([2.0, -4.0, 0.0])
    np.testing.assert_array_equal(split_pair(dg, False)[0] - split_pair(dg, False)[1], dg)
    plus, minus = split_pair(dg, True)
    assert np.all(plus >= 0) and np.all(minus >= 0) and np.array_equal(plus - minus, dg)
    prof = load_profile("ideal_16bit")
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(30, 20)) * 0.1, "b1": np.zeros(20)}
    xb = Crossbars(prof, params, np.random.default_rng(1))
    w = xb.weights()
    half_level = xb.p.step_S / xb.g_unit["W1"] / 2
    assert np.max(np.abs(w["W1"] - params["W1"])) <= 2 * half_level * (1 + 1e-9)
    np.testing.assert_allclose(w["b1"], 0.0, atol=1e-12)


def test_update_is_local_to_its_crossbar():
    prof = load_profile("reram_like")
    rng = np.random.default_rng(0)
    params = {
        "W1": rng.normal(size=(8, 6)) * 0.1,
        "b1": np.zeros(6),
        "W2": rng.normal(size=(6, 4)) * 0.1,
        "b2": np.zeros(4),
    }
    xb = Crossbars(prof, params, np.random.default_rng(1))
    before = xb.weights()
    stats = xb.apply({"W2": np.full((6, 4), 0.01)}, np.random.default_rng(2))
    after = xb.weights()
    assert stats.pulses > 0 and stats.energy_J > 0
    for k in ("W1", "b1", "b2"):
        np.testing.assert_array_equal(before[k], after[k])
    assert np.mean(after["W2"] - before["W2"]) > 0


def test_ideal_signed_mapping_adds_exactly():
    prof = load_profile("ideal_fp32")
    params = {"W1": np.random.default_rng(0).normal(size=(5, 3))}
    xb = Crossbars(prof, params, np.random.default_rng(0))
    d = {"W1": np.full((5, 3), 1e-3)}
    xb.apply(d, np.random.default_rng(0))
    np.testing.assert_array_equal(xb.weights()["W1"], params["W1"] + d["W1"])


def test_checkpoint_keeps_the_mutable_state_and_refuses_other_fixed_draws():
    """A device checkpoint holds G, write noise, drift, age and nu plus a fingerprint of the
    per-device draws; a restart from the same seed redraws them and continues exactly; a
    restart whose draws differ (another seed) is refused instead of silently mixing."""
    p = _params("exp_saturating", dtod_step_std=0.3, dtod_bounds_std=0.1, stuck_prob=0.05,
                write_noise_std=0.5, drift_model="power_law", drift_nu=0.05,
                drift_nu_std=0.02)  # fmt: skip
    a = _fresh(p, seed=3)
    a.pulse(np.full(N, 5), True, np.random.default_rng(1))
    a.advance(100.0)
    sd = a.state_dict()
    assert set(sd) == {*DeviceArray._MUTABLE, "fixed_sha256"}
    b = DeviceArray(p, (N,), np.random.default_rng(3))  # the same device seed
    b.load_state_dict(sd)
    for k in (*DeviceArray._MUTABLE, *DeviceArray._FIXED, "drift"):
        np.testing.assert_array_equal(getattr(b, k), getattr(a, k))
    a.pulse(np.full(N, 4), False, np.random.default_rng(2))
    b.pulse(np.full(N, 4), False, np.random.default_rng(2))
    np.testing.assert_array_equal(a.visible, b.visible)
    other = DeviceArray(p, (N,), np.random.default_rng(4))
    with pytest.raises(ValueError, match="fixed per-device draws"):
        other.load_state_dict(sd)
    legacy = {k: np.array(getattr(a, k)) for k in (*DeviceArray._MUTABLE, *DeviceArray._FIXED)}
    other.load_state_dict(legacy)  # an older checkpoint carries the draws themselves
    np.testing.assert_array_equal(other.visible, a.visible)


@pytest.mark.parametrize("model", ["constant_step", "linear_step", "soft_bounds", "exp_saturating"])
@pytest.mark.parametrize("mode", ["additive", "multiplicative"])
@pytest.mark.parametrize("up", [True, False])
def test_numba_pulse_kernel_equals_the_numpy_formula(model, mode, up):
    """The one-pass numba pulse update gives the NumPy closed form's conductances to
    rounding (libm's ``pow`` against NumPy's; device-to-device spread, stuck devices, some
    devices not pulsed, one draw per device) and leaves the generator in the same state."""
    p = _params(
        model, c2c_std=0.3, c2c_mode=mode, dtod_step_std=0.2, dtod_bounds_std=0.1,
        stuck_prob=0.01, write_noise_std=0.5, drift_model="power_law", drift_nu=0.05,
    )  # fmt: skip
    rng = np.random.default_rng(1)
    n = rng.integers(0, 30, N) * (rng.random(N) < 0.7)
    out, states = [], []
    for fast in (False, True):
        d = _fresh(p, seed=2, level=0.4)
        d.advance(100.0)  # the devices have aged and drifted
        g = np.random.default_rng(5)
        d.pulse(n, up, g, fast=fast)
        d.pulse(n[::-1], not up, g, fast=fast)  # the other direction (its own memo)
        out.append((d.G, d.noise, d.age_sec, d.drift))
        states.append(g.bit_generator.state)
    np.testing.assert_allclose(out[1][0], out[0][0], rtol=1e-13, atol=0)
    for a, b in zip(out[0][1:], out[1][1:], strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.any(out[1][1] != 0) and np.any(out[1][2] == 0) and np.any(out[1][2] > 0)
    assert states[0] == states[1]
    assert np.mean(out[1][0] != _fresh(p, seed=2, level=0.4).G) > 0.5  # it did pulse
