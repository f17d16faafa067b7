"""Retention leak and programming noise: their formulas, exactly or statistically.

* leak: ``G <- G_r + (G - G_r) exp(-t / tau)`` (``analogebl/hardware/devices.py``);
* programming noise: ``G <- G + sigma(G) xi`` with ``sigma(G) = sum_i c_i (G/g_max)^i``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from analogebl.hardware import Crossbars, DeviceArray, DeviceParams, load_profile

N = 20_000


def _params(**kw):
    base = dict(model="constant_step", g_min_S=1e-6, g_max_S=2.5e-5, n_states=1000)
    base.update(kw)
    return DeviceParams(**base)


def _levels(p, rng):
    return p.g_min_S + rng.random(N) * p.range_S


def test_leak_is_exponential_toward_the_reset_level_and_composes():
    p = _params(decay_lifetime_sec=2.0, decay_target_S=3e-6)
    d = DeviceArray(p, (N,), np.random.default_rng(0))
    d.program(_levels(p, np.random.default_rng(1)))
    g0 = d.G.copy()
    d.leak(0.7)
    d.leak(0.8)  # compounding equals one leak of 1.5 s
    np.testing.assert_allclose(d.G, 3e-6 + (g0 - 3e-6) * math.exp(-1.5 / 2.0), rtol=1e-12)
    d.leak(1e6)  # long after: every device at the reset level
    np.testing.assert_allclose(d.G, 3e-6, rtol=1e-9)


def test_leak_spares_stuck_devices_and_drift_clock_runs_with_it():
    p = _params(decay_lifetime_sec=1.0, stuck_prob=0.2, stuck_mode="g_max",
                drift_model="power_law", drift_nu=0.05)  # fmt: skip
    d = DeviceArray(p, (N,), np.random.default_rng(0))
    d.program(_levels(p, np.random.default_rng(1)))
    g0, vis0 = d.G.copy(), d.visible.copy()
    d.advance(0.5)  # leak and drift together
    live = ~d.stuck
    assert d.stuck.any() and np.array_equal(d.visible[d.stuck], vis0[d.stuck])
    want = (p.g_min_S + (g0 - p.g_min_S) * math.exp(-0.5)) * (20.5 / 20.0) ** -0.05
    np.testing.assert_allclose(d.visible[live], want[live], rtol=1e-12)


def test_leak_and_programming_noise_off_cost_nothing():
    p = _params()
    rng = np.random.default_rng(3)
    d = DeviceArray(p, (N,), np.random.default_rng(0))
    before = rng.bit_generator.state
    d.program(_levels(p, np.random.default_rng(1)), rng)
    assert rng.bit_generator.state == before  # no draw without a polynomial
    g = d.G.copy()
    d.leak(10.0)
    d.advance(10.0)
    np.testing.assert_array_equal(d.G, g)


def test_programming_noise_follows_its_polynomial():
    """Residuals of programming divided by sigma(G) are standard normal (KS test), with the
    pcm_like coefficients; levels far from the bounds so clipping never acts."""
    poly = tuple(load_profile("pcm_like").get("retention", "prog_noise_poly_S"))
    p = _params(g_min_S=1e-7, g_max_S=2.5e-5, n_states=4000, prog_noise_poly_S=poly)
    d = DeviceArray(p, (N,), np.random.default_rng(0))
    rng = np.random.default_rng(5)
    target = 5e-6 + rng.random(N) * 1.5e-5
    level = p.g_min_S + np.rint((target - p.g_min_S) / p.step_S) * p.step_S
    d.program(target, np.random.default_rng(7))
    x = level / p.g_max_S
    sigma = poly[0] + poly[1] * x + poly[2] * x * x
    np.testing.assert_allclose(d.prog_noise_std_S(level), sigma, rtol=1e-12)
    z = (d.G - level) / sigma
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.std() - 1.0) < 0.03  # and not, e.g., sigma(G) twice or in the wrong units


def test_programming_noise_without_rng_is_refused():
    p = _params(prog_noise_poly_S=(1e-7,))
    d = DeviceArray(p, (4,), np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng"):
        d.program(np.full(4, 5e-6))


def test_crossbar_leak_shrinks_every_weight_by_the_same_factor(tmp_path):
    """Both devices of a pair leak toward the same level, so W = (G+ - G-)/g_unit decays as
    W exp(-t/tau): the analytic consequence on the weights."""
    f = tmp_path / "leaky.toml"
    f.write_text('[profile]\nname = "leaky"\nextends = "ideal_16bit"\n'
                 "[retention]\ndecay_lifetime_sec = 4.0\nepoch_interval_sec = 60.0\n")  # fmt: skip
    prof = load_profile(str(f))
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(30, 20)) * 0.1, "b1": np.zeros(20)}
    xb = Crossbars(prof, params, np.random.default_rng(1))
    w0 = xb.weights()
    xb.leak(1.0)
    w1 = xb.weights()
    np.testing.assert_allclose(w1["W1"], w0["W1"] * math.exp(-0.25), rtol=1e-9, atol=1e-15)
    xb.advance(3.0)
    np.testing.assert_allclose(xb.weights()["W1"], w0["W1"] * math.exp(-1.0), rtol=1e-9,
                               atol=1e-15)  # fmt: skip


@pytest.mark.parametrize(
    "body, key",
    [
        ("[retention]\ndecay_lifetime_sec = 1.0\n", "retention.decay_lifetime_sec"),  # no clock
        (
            '[conductance]\nmapping = "ideal_signed"\n[update]\nmodel = "ideal"\n'
            "[retention]\nprog_noise_poly_S = [1e-7]\n",
            "retention.prog_noise_poly_S",
        ),
    ],
)
def test_retention_without_a_clock_or_devices_is_refused(tmp_path, body, key):
    from analogebl.errors import ConfigError

    f = tmp_path / "p.toml"
    f.write_text('[profile]\nname = "p"\nextends = "ideal_16bit"\n' + body)
    with pytest.raises(ConfigError) as e:
        load_profile(str(f))
    assert e.value.key == key


def test_converter_energy_counts_one_adc_read_per_node_update_and_one_dac_per_input(tmp_path):
    """Untiled: ``E = N (iterations sum_{k>=1} n_k e_adc + n_0 e_dac)`` per step, on top of
    the crossbars' read energy, and part of ``energy_J``."""
    from analogebl.backends import make_backend
    from analogebl.circuit import load_circuit
    from analogebl.plan import build_plan
    from analogebl.training.updaters import CrossbarUpdater

    f = tmp_path / "p.toml"
    f.write_text('[profile]\nname = "p"\nextends = "reram_like"\n'
                 "[array]\ntile_rows = 0\ntile_cols = 0\nr_wire_ohm = 0.0\n"
                 "[energy]\ne_adc_J = 2e-12\ne_dac_J = 5e-13\n")  # fmt: skip
    prof = load_profile(str(f))
    plan = build_plan(load_circuit("tiny_dense"), 0, profile=prof, data_stats=([0.5], [0.25]))
    b = make_backend("numba", plan, "float64")

    class Keep:  # an optimizer that never moves the weights
        def lr(self, k):
            return 0.0

        def step(self, params, grads):
            pass

    up = CrossbarUpdater(b, Keep(), seed=0)
    x = np.random.default_rng(0).normal(size=(7, *plan.layer_shapes[0]))
    free = b.relax(b.zero_state(x), 20)
    grads = {k: np.zeros_like(np.asarray(v)) for k, v in plan.parameters.items()}
    up.step(b.params, grads, b, free, iterations=50)
    nodes = sum(math.prod(s) for s in plan.layer_shapes[1:])
    want = 7 * (50 * nodes * 2e-12 + math.prod(plan.layer_shapes[0]) * 5e-13)
    m = up.epoch_metrics()
    assert m["convert_energy_J"] == pytest.approx(want, rel=1e-12)
    assert m["relax_energy_J"] > 0
    assert m["energy_J"] == pytest.approx(
        m["update_energy_J"] + m["relax_energy_J"] + m["convert_energy_J"], rel=1e-12
    )


def test_time_passing_on_signed_weights_without_devices_changes_nothing(tmp_path):
    """An ``ideal_signed`` mapping has no devices: leak and drift leave the weights as they
    are (a training step with a read clock calls ``leak`` on it)."""
    f = tmp_path / "p.toml"
    f.write_text('[profile]\nname = "p"\nextends = "ideal_16bit"\n'
                 '[conductance]\nmapping = "ideal_signed"\n[update]\nmodel = "ideal"\n'
                 "[energy]\nt_read_sec = 1e-8\n")  # fmt: skip
    params = {"W1": np.random.default_rng(0).normal(size=(4, 3)), "b1": np.zeros(3)}
    xb = Crossbars(load_profile(str(f)), params, np.random.default_rng(1))
    xb.leak(1.0)
    xb.advance(1.0)
    np.testing.assert_array_equal(xb.weights()["W1"], params["W1"])
