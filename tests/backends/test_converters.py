"""Converter noise and stochastic rounding (``plan.effects``): their statistics, the
profile's mapping onto quantizers, and the fast backends against the reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analogebl.hardware import load_profile
from analogebl.hardware.quantize import OUTPUT_RANGE, state_quantizers
from analogebl.plan.effects import StateQuantizer
from tests.conftest import FAST_BACKENDS, backend_pair, max_diff, random_batch

CIRCUITS = [("tiny_dense", {}), ("tiny_conv", {})]


def _convert(q, s, seed):
    """One conversion the way a backend does it: ``q(s + dither)``."""
    return q(s + q.dither(s.shape, np.random.default_rng(seed)))


def test_stochastic_rounding_is_unbiased_and_stays_on_neighbouring_codes():
    q = StateQuantizer.from_bits(4, stochastic=True)
    s = np.repeat(np.random.default_rng(0).uniform(0, 1, 200), 2000)
    out = _convert(q, s, 1)
    lower = q.lo + np.floor((s - q.lo) / q.step) * q.step
    assert np.all((np.abs(out - lower) < 1e-12) | (np.abs(out - lower - q.step) < 1e-12))
    # P(up) = fractional code: the mean of 400k Bernoulli codes is s within 4 standard errors
    frac = (s - lower) / q.step
    se = q.step * np.sqrt(np.sum(frac * (1 - frac))) / s.size
    assert abs(np.mean(out - s)) < 4 * se + 1e-15
    per_value = (out - s).reshape(200, 2000).mean(1)  # and per input value
    assert np.max(np.abs(per_value)) < 5 * q.step / 2 / np.sqrt(2000)


def test_deterministic_rounding_has_the_dead_zone_stochastic_rounding_removes():
    q, qs = StateQuantizer.from_bits(3), StateQuantizer.from_bits(3, stochastic=True)
    s = np.full(100_000, 0.3 * q.step)  # below half a code: rint always returns 0
    assert np.all(q(s) == 0.0)
    assert abs(_convert(qs, s, 2).mean() - 0.3 * q.step) < 4 * q.step * 0.46 / np.sqrt(s.size)


def test_converter_noise_has_its_std():
    """With 16-bit codes the conversion error is the noise plus a uniform rounding error:
    ``(q(s + sigma xi) - s)`` has std ``sqrt(sigma^2 + step^2/12)`` and is normal (KS)."""
    q = StateQuantizer.from_bits(16, noise_std=0.01)
    s = np.random.default_rng(3).uniform(0.2, 0.8, 100_000)
    err = _convert(q, s, 4) - s
    sd = np.sqrt(q.noise_std**2 + q.step**2 / 12)
    assert abs(err.std() / sd - 1) < 0.015
    assert stats.kstest(err / sd, "norm").pvalue > 1e-3


def test_quiet_converters_draw_nothing_and_noisy_ones_need_a_generator():
    q = StateQuantizer.from_bits(8)
    assert not q.random
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    np.testing.assert_array_equal(q.dither((5,), rng), 0.0)
    assert rng.bit_generator.state == before
    ref, _ = backend_pair("tiny_dense", "float64", seed=0, fast="numba")
    x, _ = random_batch(ref.plan, 2, seed=0)
    ref.set_quantizers([StateQuantizer.from_bits(8, -3, 3)] + [
        StateQuantizer.from_bits(8, noise_std=0.01)] * (ref.plan.num_layers - 1))  # fmt: skip
    with pytest.raises(ValueError, match="Generator"):
        ref.relax(ref.zero_state(x), 3)
    with pytest.raises(ValueError, match="noise_std"):
        StateQuantizer.from_bits(8, noise_std=-1.0)


def test_profile_converter_fields_map_onto_the_quantizers(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[profile]\nname = "p"\nextends = "ideal_16bit"\n'
                 "[dac]\nbits = 6\nv_min_V = 0.0\nv_max_V = 0.5\nnoise_V = 0.002\n"
                 "stochastic_rounding = true\n"
                 "[adc]\nbits = 5\nnoise_lsb = 0.7\nstochastic_rounding = true\n")  # fmt: skip
    qs = state_quantizers(load_profile(str(f)), 4, mean=[0.5], std=[0.25])
    dac, hid, out = qs[0], qs[1], qs[-1]
    assert (dac.lo, dac.hi) == (-2.0, 2.0) and dac.levels == 64 and dac.stochastic
    assert dac.noise_std == pytest.approx(0.002 * 4.0 / 0.5)  # volts -> state units
    assert hid.levels == 32 and hid.noise_std == pytest.approx(0.7 * hid.step) and hid.stochastic
    assert (out.lo, out.hi) == OUTPUT_RANGE and out.noise_std == pytest.approx(0.7 * out.step)
    plain = state_quantizers(load_profile("ideal_16bit"), 4, mean=[0.5], std=[0.25])
    assert not any(q is not None and q.random for q in plain)


@pytest.mark.parametrize("circuit,over", CIRCUITS)
@pytest.mark.parametrize("fast", FAST_BACKENDS)
def test_fast_backends_equal_reference_with_noisy_stochastic_converters(circuit, over, fast):
    ref, fb = backend_pair(circuit, "float64", seed=3, fast=fast, **over)
    x, y = random_batch(ref.plan, 3, seed=4)
    out = []
    for b in (ref, fb):
        p = b.plan
        qs = [StateQuantizer.from_bits(6, -3.0, 3.0, noise_std=0.02, stochastic=True)]
        qs += [StateQuantizer.from_bits(6, noise_std=0.01, stochastic=True)] * (p.output - 1)
        qs.append(StateQuantizer.from_bits(6, -2.0, 2.0, stochastic=True))
        b.set_quantizers(qs)
        b.set_converter_rng(np.random.default_rng(11))
        free = b.relax(b.zero_state(x), 12)
        nudged = b.relax(free, 6, beta=0.3, target=b.one_hot(y))
        out.append([b.to_numpy(a) for a in free + nudged])
    assert max(max_diff(a, c) for a, c in zip(*out, strict=True)) < 1e-10


# ---------------------------------------------------------------- the nudging current source
def test_nudge_current_source_saturates_and_rounds_to_its_codes():
    from analogebl.plan.effects import NudgeCurrent

    i = np.linspace(-3, 3, 10_001)
    np.testing.assert_array_equal(NudgeCurrent(1.5)(i), np.clip(i, -1.5, 1.5))
    step = 2 * 1.5 / (8 - 1)  # 8 codes over [-1.5, 1.5]
    c = NudgeCurrent(1.5, 8)(i)
    codes = (c + 1.5) / step
    np.testing.assert_allclose(codes, np.rint(codes), atol=1e-12)
    inside = np.abs(i) <= 1.5
    assert np.max(np.abs(c - i)[inside]) <= step / 2 * (1 + 1e-12)
    assert len(np.unique(np.round(codes))) == 8
    for bad in (dict(i_max=0.0), dict(levels=8), dict(i_max=1.0, levels=1)):
        with pytest.raises(ValueError):
            NudgeCurrent(**bad)


@pytest.mark.parametrize("nudge", ["exact", "step"])
@pytest.mark.parametrize("fast", FAST_BACKENDS)
def test_nudge_current_limits_off_or_loose_change_nothing_and_backends_agree(nudge, fast):
    from analogebl.plan.effects import NudgeCurrent

    ref, fb = backend_pair("tiny_dense", "float64", seed=5, fast=fast)
    x, y = random_batch(ref.plan, 4, seed=6)
    runs = {}
    for name, src in (("ideal", None), ("loose", NudgeCurrent(1e6)),
                      ("tight", NudgeCurrent(0.02, 16))):  # fmt: skip
        for b in (ref, fb):
            b.set_nudge_current(src)
            free = b.relax(b.zero_state(x), 30)
            nudged = b.relax(free, 10, beta=0.5, target=b.one_hot(y), nudge=nudge)
            runs[name, b is ref] = [b.to_numpy(a) for a in nudged]
        b.set_nudge_current(None)
    for name in ("ideal", "loose", "tight"):  # fast == reference
        assert max(max_diff(a, c) for a, c in zip(runs[name, True], runs[name, False],
                                                  strict=True)) < 1e-10  # fmt: skip
    assert max(max_diff(a, c) for a, c in zip(runs["ideal", True], runs["loose", True],
                                              strict=True)) < 1e-12  # fmt: skip
    assert max(max_diff(a, c) for a, c in zip(runs["ideal", True], runs["tight", True],
                                              strict=True)) > 1e-3  # fmt: skip


def test_a_saturated_source_moves_the_output_at_most_i_max_from_its_field():
    from analogebl.plan.effects import NudgeCurrent

    ref, _ = backend_pair("tiny_dense", "float64", seed=5, fast="numba")
    rng = np.random.default_rng(0)
    out = ref.plan.output
    h = rng.normal(size=(50, ref.plan.layer_shapes[out][0]))
    y = ref.one_hot(rng.integers(0, h.shape[1], 50))
    ref.set_nudge_current(NudgeCurrent(0.05, 32))
    for current in (None, rng.normal(size=h.shape)):
        o = ref._activate(out, h, 0.8, y, current)
        assert np.max(np.abs(o - h)) <= 0.05 + 1e-12
        codes = (o - h + 0.05) / (2 * 0.05 / 31)  # 32 codes over [-0.05, 0.05]
        np.testing.assert_allclose(codes, np.rint(codes), atol=1e-9)


def test_profile_nudge_fields_become_state_units_and_bad_ones_are_refused(tmp_path):
    from analogebl.errors import ConfigError
    from analogebl.hardware import Crossbars
    from analogebl.hardware.quantize import nudge_current

    ref, _ = backend_pair("tiny_dense", "float64", seed=5, fast="numba")
    f = tmp_path / "p.toml"
    f.write_text('[profile]\nname = "p"\nextends = "reram_like"\n'
                 "[nudge]\nbits = 6\ni_max_A = 2e-6\n")  # fmt: skip
    prof = load_profile(str(f))
    xb = Crossbars(prof, {k: np.asarray(v) for k, v in ref.plan.parameters.items()},
                   np.random.default_rng(0))  # fmt: skip
    out = ref.plan.couplings[-1].name
    src = nudge_current(prof, xb.g_unit[out])
    assert src.levels == 64
    assert src.i_max == pytest.approx(2e-6 / (xb.g_unit[out] * prof.get("energy", "v_read_V")))
    assert nudge_current(load_profile("reram_like"), xb.g_unit[out]) is None
    f.write_text('[profile]\nname = "p"\nextends = "reram_like"\n[nudge]\nbits = 6\n')
    with pytest.raises(ConfigError) as e:
        load_profile(str(f))
    assert e.value.key == "nudge.bits"


@pytest.mark.parametrize("noise,stochastic", [(0.0, False), (0.3, False), (0.0, True), (0.3, True)])
def test_dither_is_numpys_expression_drawn_in_order(noise, stochastic):
    """The converter dither (drawn by a compiled loop) is exactly NumPy's
    ``0 + sigma N(0,1) + (U[0,1) - 1/2) step`` of the same generator, normals first, and
    leaves the generator where NumPy would."""
    q = StateQuantizer(32, -1.0, 1.0, noise, stochastic)
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    got = q.dither((4, 5, 6), a)
    want = np.zeros((4, 5, 6))
    if noise:
        want += noise * b.standard_normal((4, 5, 6))
    if stochastic:
        want += (b.random((4, 5, 6)) - 0.5) * q.step
    np.testing.assert_array_equal(got, want)
    assert a.bit_generator.state == b.bit_generator.state
