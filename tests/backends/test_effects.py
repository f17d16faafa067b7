"""Hardware-effect hooks in the relaxation: state quantization and read noise."""

import numpy as np
import pytest

from analogebl.plan.effects import ReadNoise, StateQuantizer
from tests.conftest import FAST_BACKENDS, backend_pair, max_diff, random_batch

CIRCUITS = [("tiny_dense", {}), ("tiny_conv", {}), ("tiny_conv", {"pool": "avg"})]


def _quantizers(plan, bits=8, out_range=2.0):
    qs = [StateQuantizer.from_bits(bits, -3.0, 3.0)]  # input DAC
    qs += [StateQuantizer.from_bits(bits) for _ in range(1, plan.output)]
    qs.append(StateQuantizer.from_bits(bits, -out_range, out_range))
    return qs


def _noise(plan, rel=0.05):
    return ReadNoise({k: rel * np.abs(v) + 1e-3 for k, v in plan.parameters.items()})


def test_quantizer_error_is_at_most_half_a_level_and_codes_lie_on_the_grid():
    rng = np.random.default_rng(0)
    s = rng.uniform(-0.2, 1.2, size=100_000)
    for bits in (1, 4, 16):
        q = StateQuantizer.from_bits(bits)
        out = q(s)
        inside = (s >= 0) & (s <= 1)
        assert np.max(np.abs(out - s)[inside]) <= q.step / 2 * (1 + 1e-9)
        codes = (out - q.lo) / q.step
        assert np.allclose(codes, np.rint(codes), atol=1e-6)
        assert len(np.unique(np.rint(codes))) <= q.levels
        assert out.min() >= 0.0 and out.max() <= 1.0
        np.testing.assert_array_equal(q(out), out)  # idempotent
    with pytest.raises(ValueError):
        StateQuantizer(1)
    with pytest.raises(ValueError):
        StateQuantizer(16, 1.0, 0.0)


@pytest.mark.parametrize("circuit,over", CIRCUITS)
@pytest.mark.parametrize("fast", FAST_BACKENDS)
def test_fast_backends_equal_reference_with_quantization_and_read_noise(circuit, over, fast):
    ref, fb = backend_pair(circuit, "float64", seed=3, fast=fast, **over)
    x, y = random_batch(ref.plan, 3, seed=4)
    for b in (ref, fb):
        b.set_quantizers(_quantizers(b.plan))
        b.set_read_noise(_noise(b.plan), np.random.default_rng(11))
    out = []
    for b in (ref, fb):
        t = b.one_hot(y)
        free = b.relax(b.zero_state(x), 20)
        nudged = b.relax(free, 8, beta=0.3, target=t)
        out.append([b.to_numpy(a) for a in free + nudged])
    assert max(max_diff(a, c) for a, c in zip(*out, strict=True)) < 1e-10


@pytest.mark.parametrize("fast", ("reference",) + FAST_BACKENDS)
def test_quantized_states_stay_on_the_grid_and_effects_off_is_exact(fast):
    ref, fb = backend_pair(
        "tiny_conv", "float64", seed=1, fast="torch" if fast == "reference" else fast
    )
    b = ref if fast == "reference" else fb
    x, _ = random_batch(b.plan, 2, seed=0)
    plain = [b.to_numpy(a) for a in b.relax(b.zero_state(x), 10)]
    qs = _quantizers(b.plan, bits=6)
    b.set_quantizers(qs)
    s = b.relax(b.zero_state(x), 10)
    for k in range(b.plan.num_layers):
        v = b.to_numpy(s[k])
        codes = (v - qs[k].lo) / qs[k].step
        np.testing.assert_allclose(codes, np.rint(codes), atol=1e-9)
    b.set_quantizers(None)
    b.set_read_noise(None)
    again = [b.to_numpy(a) for a in b.relax(b.zero_state(x), 10)]
    for a, c in zip(plain, again, strict=True):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("circuit,over", CIRCUITS)
def test_quantized_async_updates_raise_the_energy_by_at_most_the_rounding_bound(circuit, over):
    """A half-step minimises a surrogate ``1/2||s_k - h_k||^2 + c`` (the energy itself for
    dense couplings, an upper bound touching it for max-pool) over the box; rounding the
    minimiser to the grid costs at most ``1/2 sum (q - s*)^2 <= n_k step^2 / 8`` per layer."""
    ref, _ = backend_pair(circuit, "float64", seed=2, **over)
    b = ref
    qs = _quantizers(b.plan, bits=5, out_range=4.0)
    b.set_quantizers(qs)
    x, y = random_batch(b.plan, 4, seed=5)
    state = b.zero_state(x)
    t = b.one_hot(y)
    for beta in (0.0, 0.5):
        s = state
        e_prev = b.energy(s, beta, t)
        for _ in range(30):
            for g in b.plan.groups("async"):
                s = b.half_step(s, g, beta, t)
                e = b.energy(s, beta, t)
                bound = sum(
                    (1 + beta * (k == b.plan.output))
                    * np.prod(b.plan.layer_shapes[k])
                    * qs[k].step ** 2
                    / 8
                    for k in g
                )
                assert np.all(e <= e_prev + bound + 1e-12)
                e_prev = e


def test_read_noise_resampling_modes():
    ref, _ = backend_pair("tiny_dense", "float64", seed=0)
    x, _ = random_batch(ref.plan, 2, seed=1)
    start = ref.zero_state(x)
    clean = ref.relax(start, 5)

    def run(mode, seed=7, calls=2, std_scale=1.0):
        ref.set_read_noise(
            ReadNoise(
                {k: std_scale * v.std() * np.ones_like(v) for k, v in ref.plan.parameters.items()},
                mode,
            ),
            np.random.default_rng(seed),
        )
        if mode == "per_update":
            ref.redraw_read_noise()
        return [ref.to_numpy(ref.relax(start, 5)[-1]) for _ in range(calls)]

    a1, a2 = run("per_phase")
    assert max_diff(a1, a2) > 1e-6  # a fresh draw for each relaxation
    np.testing.assert_array_equal(run("per_phase")[0], a1)  # seeded: reproducible
    u1, u2 = run("per_update")
    np.testing.assert_array_equal(u1, u2)  # one draw shared by the phases of an update
    s1, _ = run("per_step")
    assert max_diff(s1, a1) > 1e-6
    z1, _ = run("per_step", std_scale=0.0)
    np.testing.assert_array_equal(z1, ref.to_numpy(clean[-1]))
    # parameters themselves are never touched by read noise
    for k, v in ref.plan.parameters.items():
        np.testing.assert_array_equal(ref.to_numpy(ref.params[k]), v)
    with pytest.raises(ValueError):
        ReadNoise({}, "sometimes")
    with pytest.raises(ValueError):
        ref.set_read_noise(ReadNoise({"W1": np.ones(1)}), None)


def test_read_noise_has_the_stated_spread():
    """The crossbar read inside a relaxation is ``W + std * xi``: one iteration of a
    one-layer-deep read gives an output whose spread over draws matches ``std``."""
    ref, _ = backend_pair("tiny_dense", "float64", seed=0)
    w = ref.plan.parameters["W1"]
    std = 0.01 * np.ones_like(w)
    ref.set_read_noise(ReadNoise({"W1": std}), np.random.default_rng(3))
    draws = []
    for _ in range(400):
        ref.redraw_read_noise()
        draws.append(ref.to_numpy(ref.read_noise_draw()["W1"]))
    d = np.stack(draws)
    n = d.size
    assert abs(d.mean()) < 4 * 0.01 / np.sqrt(n)
    assert abs(d.std() / 0.01 - 1) < 4 / np.sqrt(2 * n)
