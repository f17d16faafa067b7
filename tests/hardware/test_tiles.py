"""Tiles (``array.tile_rows/tile_cols``, ``i_col_max_A``): the tile mapping of dense and conv
couplings, converted partial sums against a hand-written NumPy read, the fast backends
against the reference, the converters' counts and the conv crossbars' read power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analogebl.backends import make_backend
from analogebl.circuit import load_circuit
from analogebl.hardware import load_profile
from analogebl.hardware.crossbar import Crossbars
from analogebl.hardware.tiles import conversions_per_example, tile_reads, tile_shape
from analogebl.plan import build_plan
from analogebl.plan.effects import ReadNoise, StateQuantizer, TileReads
from tests.conftest import FAST_BACKENDS, backend_pair, max_diff, random_batch


def _profile(tmp_path, body: str, parent: str = "reram_like"):
    f = tmp_path / "p.toml"
    f.write_text(f'[profile]\nname = "p"\nextends = "{parent}"\n{body}')
    return load_profile(str(f))


def test_dense_tiled_read_is_the_sum_of_converted_partial_sums():
    ref, _ = backend_pair("tiny_dense", "float64", seed=0)
    w = np.asarray(ref.params["W1"])
    q = StateQuantizer.from_bits(4, -1.0, 1.0)
    t = TileReads((0, 300, 600, 784), (0, 32), forward=q, adjoint=None, i_max=0.4)
    ref.set_tile_reads({"W1": t})
    x = np.random.default_rng(0).normal(size=(5, 784))
    got, _ = ref.coupling_forward(ref.plan.couplings[0], x)
    want = sum(
        q(np.clip(x[:, a:b] @ w[a:b], -0.4, 0.4)) for a, b in ((0, 300), (300, 600), (600, 784))
    )
    assert max_diff(got, want) < 1e-12
    # the adjoint reads column blocks into the pre layer
    ref.set_tile_reads({"W2": TileReads((0, 32), (0, 5, 16), None, q, math.inf)})
    w2 = np.asarray(ref.params["W2"])
    post = np.random.default_rng(1).uniform(size=(5, 16))
    got = ref.coupling_adjoint(ref.plan.couplings[1], post, None)
    want = q(post[:, :5] @ w2[:, :5].T) + q(post[:, 5:] @ w2[:, 5:].T)
    assert max_diff(got, want) < 1e-12


def test_tiles_without_converters_or_limits_change_only_the_summation_order():
    ref, _ = backend_pair("tiny_conv", "float64", seed=1)
    x, _ = random_batch(ref.plan, 3, seed=2)
    want = ref.relax(ref.zero_state(x), 20)
    ref.set_tile_reads(
        {"W1": TileReads((0, 1), (0, 2, 4)), "W2": TileReads((0, 1, 3, 4), (0, 3, 8)),
         "W3": TileReads((0, 10, 32), (0, 10))}
    )  # fmt: skip
    got = ref.relax(ref.zero_state(x), 20)
    for a, b in zip(want, got, strict=True):
        assert max_diff(a, b) < 1e-12


def test_a_column_current_limit_bounds_each_tile_output():
    ref, _ = backend_pair("tiny_dense", "float64", seed=0)
    ref.set_tile_reads({"W1": TileReads((0, 392, 784), (0, 32), i_max=0.05)})
    x = 5 * np.random.default_rng(3).normal(size=(8, 784))
    out, _ = ref.coupling_forward(ref.plan.couplings[0], x)
    assert np.max(np.abs(out)) <= 2 * 0.05 + 1e-15  # two row tiles, each clipped
    assert np.isclose(np.max(np.abs(out)), 0.1)


@pytest.mark.parametrize("circuit", ["tiny_dense", "tiny_conv"])
@pytest.mark.parametrize("fast", FAST_BACKENDS)
def test_fast_backends_equal_reference_with_noisy_tiled_reads(circuit, fast, tmp_path):
    prof = _profile(
        tmp_path,
        "[array]\ntile_rows = 18\ntile_cols = 3\nr_wire_ohm = 0.0\n"
        "[adc]\nbits = 6\nnoise_lsb = 0.7\nstochastic_rounding = true\n",
    )
    plan = build_plan(load_circuit(circuit), 4, profile=prof, data_stats=([0.5], [0.25]))
    ref, fb = make_backend("reference", plan, "float64"), make_backend(fast, plan, "float64")
    tiles = tile_reads(prof, plan, None)
    x, _ = random_batch(plan, 3, seed=5)
    states = []
    for b in (ref, fb):
        b.set_tile_reads(tiles)
        b.set_converter_rng(np.random.default_rng(9))
        states.append(b.relax(b.zero_state(x), 8))
    for a, b in zip(*states, strict=True):
        assert max_diff(a, fb.to_numpy(b)) < 1e-10


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("noise,stochastic,i_max", [
    (0.0, False, math.inf), (0.02, False, 0.3), (0.0, True, math.inf), (0.02, True, 0.3),
])  # fmt: skip
def test_numba_fused_tile_reads_draw_and_round_exactly_as_the_generic_path(
    dtype, noise, stochastic, i_max
):
    """The numba kernel that clips, dithers, rounds and sums the tiles in one pass (drawing
    from the converter generator itself) gives the generic path's numbers bit for bit, in
    float32 and float64, and leaves the generator in the same state."""
    ref, nb = backend_pair("tiny_dense", dtype, seed=2, fast="numba")
    q = StateQuantizer(64, -1.0, 1.0, noise, stochastic)
    tiles = {"W1": TileReads((0, 100, 500, 784), (0, 7, 32), q, q, i_max)}
    x = np.random.default_rng(4).normal(size=(5, 784))
    post = np.random.default_rng(6).random((5, 32))
    outs, states = [], []
    for b in (ref, nb):
        b.set_tile_reads(tiles)
        rng = np.random.default_rng(21)
        b.set_converter_rng(rng)
        c = b.plan.couplings[0]
        fwd, _ = b.coupling_forward(c, b.asarray(x))
        adj = b.coupling_adjoint(c, b.asarray(post), None)
        outs.append((b.to_numpy(fwd), b.to_numpy(adj)))
        states.append(rng.bit_generator.state)
    for a, c in zip(*outs, strict=True):
        assert a.dtype == c.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, c)
    assert states[0] == states[1]
    m = (outs[0][0] - 3 * q.lo) / q.step  # the forward read sums three row tiles' codes
    np.testing.assert_allclose(m, np.rint(m), atol=1e-3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numba_tiled_conv_reads_draw_in_the_public_layouts_order(dtype):
    """A tiled conv read on numba (one im2col, a GEMM and a converter kernel per tile in the
    raw layout) draws the converter's numbers in the order of the reference's NCHW tile
    outputs: the same values and the same generator state, forward (max-pooled, argmax
    held) and adjoint."""
    ref, nb = backend_pair("tiny_conv", dtype, seed=3, fast="numba")
    q = StateQuantizer(64, -2.0, 2.0, 0.05, True)
    c = ref.plan.couplings[1]  # 4 -> 8 channels: row tiles of whole input channels
    tiles = {c.name: TileReads((0, 1, 3, 4), (0, 5, 8), q, q, 0.8)}
    rng0 = np.random.default_rng(2)
    pre = rng0.random((3, *ref.plan.layer_shapes[c.pre]))
    post = rng0.random((3, *ref.plan.layer_shapes[c.post]))
    outs, states = [], []
    for b in (ref, nb):
        b.set_tile_reads(tiles)
        rng = np.random.default_rng(21)
        b.set_converter_rng(rng)
        p = b.asarray(pre)
        fwd, idx = b.coupling_forward(c, p)
        at = b.coupling_forward_at(c, p, idx)
        adj = b.coupling_adjoint(c, b.asarray(post), idx)
        outs.append([b.to_numpy(a) for a in (fwd, at, adj)] + [np.asarray(b.to_numpy(idx), float)])
        states.append(rng.bit_generator.state)
    assert states[0] == states[1]
    for a, b in zip(*outs, strict=True):
        if dtype == "float64":
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-10)
        else:  # a float32 GEMM may differ by an ulp, which can flip a code (or an argmax tie)
            assert np.mean(np.abs(a - b) > 1e-5) < 0.01 and np.max(np.abs(a - b)) <= 3 * q.step


def test_read_noise_draws_are_numpys():
    """A backend's read-noise draw (a compiled loop) is NumPy's ``std * xi`` of the same
    generator, parameter after parameter, and leaves the generator where NumPy would."""
    ref = backend_pair("tiny_dense", "float64", seed=2, fast="numba")[0]
    std = {k: 0.01 + np.abs(v) for k, v in ref.plan.parameters.items()}
    ref.set_read_noise(ReadNoise(std), rng := np.random.default_rng(8))
    ref.redraw_read_noise()
    numpy_rng = np.random.default_rng(8)
    for k, s in std.items():
        want = np.asarray(s) * numpy_rng.standard_normal(np.shape(s))
        np.testing.assert_array_equal(ref.to_numpy(ref.read_noise_draw()[k]), want)
    assert rng.bit_generator.state == numpy_rng.bit_generator.state


def test_profile_tiles_map_dense_blocks_and_whole_conv_kernels(tmp_path):
    prof = _profile(tmp_path, "[array]\ntile_rows = 20\ntile_cols = 3\n")
    plan = build_plan(load_circuit("tiny_conv"), 0, profile=prof, data_stats=([0.5], [0.25]))
    t = tile_reads(prof, plan, None)
    # W1: 1 input channel x 9 rows fits; 20 // 9 = 2 channels per tile; cols by 3
    assert t["W1"].row_splits == (0, 1) and t["W1"].col_splits == (0, 3, 4)
    assert t["W2"].row_splits == (0, 2, 4) and t["W2"].col_splits == (0, 3, 6, 8)
    assert t["W3"].row_splits == (0, 20, 32) and t["W3"].col_splits == (0, 3, 6, 9, 10)
    assert t["W1"].forward.lo == -1.0 and t["W3"].forward.hi == 3.0  # into the output
    assert t["W1"].forward.noise_std == pytest.approx(0.5 * t["W1"].forward.step)
    assert tile_shape(plan, plan.couplings[1]) == (36, 8, 16)
    # the nodes are what the DAC writes back (8 bits over [0, 1])
    assert plan.quantizers[1].levels == 2**8 and plan.quantizers[1].hi == 1.0
    small = _profile(tmp_path, "[array]\ntile_rows = 8\n")
    plan8 = build_plan(load_circuit("tiny_conv"), 0, profile=small, data_stats=([0.5], [0.25]))
    with pytest.raises(ValueError, match="tile_rows = 8 cannot hold one 3x3 kernel"):
        tile_reads(small, plan8, None)


def test_column_current_limit_in_field_units(tmp_path):
    prof = _profile(tmp_path, "[array]\ntile_rows = 0\ntile_cols = 0\ni_col_max_A = 2e-6\n")
    plan = build_plan(load_circuit("tiny_dense"), 0, profile=prof, data_stats=([0.5], [0.25]))
    xbar = Crossbars(prof, dict(plan.parameters), np.random.default_rng(0))
    t = tile_reads(prof, plan, xbar.g_unit)
    for c in plan.couplings:
        assert t[c.name].row_splits == (0, math.prod(plan.layer_shapes[c.pre]))
        assert t[c.name].forward is None  # no tiles: the ADC reads the nodes
        assert t[c.name].i_max == pytest.approx(2e-6 / (xbar.g_unit[c.name] * 0.5))


def test_tiled_converter_counts(tmp_path):
    """Per iteration: forward reads = row blocks x cols x positions, adjoint reads = column
    blocks x pre nodes (hidden pre layers), DAC writes = every non-input node."""
    prof = _profile(tmp_path, "[array]\ntile_rows = 18\ntile_cols = 3\n")
    plan = build_plan(load_circuit("tiny_conv"), 0, profile=prof, data_stats=([0.5], [0.25]))
    adc, dac = conversions_per_example(prof, plan)
    # W1: 1 ch (1 block) x 4 cols x 64 positions; W2: 4 ch in 2-ch blocks (2) x 8 x 16
    # + adjoint into h1: ceil(8/3) = 3 blocks x 64 nodes; W3: 32 rows in 18s (2) x 10
    # + adjoint into h2: ceil(10/3) = 4 blocks x 32 nodes
    assert adc == 1 * 4 * 64 + 2 * 8 * 16 + 3 * 64 + 2 * 10 + 4 * 32
    assert dac == 64 + 32 + 10
    untiled = _profile(tmp_path, "[array]\ntile_rows = 0\ntile_cols = 0\n")
    assert conversions_per_example(untiled, plan) == (64 + 32 + 10, 0.0)


def test_conv_crossbar_power_is_the_unrolled_arrays_power_summed_over_positions(tmp_path):
    prof = _profile(tmp_path, "[array]\ntile_rows = 0\ntile_cols = 0\n")
    plan = build_plan(load_circuit("tiny_conv"), 0, profile=prof, data_stats=([0.5], [0.25]))
    xbar = Crossbars(prof, dict(plan.parameters), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    c = plan.couplings[1]  # 4x4x4 -> conv 3x3 pad 1 -> 8x4x4 -> max-pool -> 8x2x2
    pre, post = rng.uniform(size=(3, 4, 4, 4)), rng.uniform(size=(3, 8, 2, 2))
    gp, gm = (d.visible for d in xbar.pairs[c.name])
    v = 0.5
    want = 0.0
    pad = np.pad(pre, ((0, 0), (0, 0), (1, 1), (1, 1))) * v
    for n in range(3):
        for y in range(4):
            for x in range(4):
                vi = pad[n, :, y : y + 3, x : x + 3].reshape(-1)  # (C_in k k)
                vj = post[n, :, y // 2, x // 2] * v  # the pooled node over its window
                a, b = gp.reshape(8, -1).T, gm.reshape(8, -1).T
                want += np.sum(a * (vi[:, None] - vj[None]) ** 2)
                want += np.sum(b * (vi[:, None] + vj[None]) ** 2)
    got = xbar.crossbar_power_W(c.name, pre, post, c)
    assert got == pytest.approx(want / 3, rel=1e-12)


def test_continuous_devices_hold_and_take_exact_weights(tmp_path):
    """``update.model = "ideal"`` on a differential pair: no levels, no pulses."""
    prof = _profile(tmp_path, "", parent="only_read_noise")
    plan = build_plan(load_circuit("tiny_dense"), 0, profile=prof)
    xbar = Crossbars(prof, dict(plan.parameters), np.random.default_rng(0))
    w0 = xbar.weights()
    for k, v in plan.parameters.items():
        assert max_diff(w0[k], v) < 1e-12 * max(1.0, np.abs(v).max())
    d = {k: 1e-3 * np.random.default_rng(1).normal(size=v.shape) for k, v in w0.items()}
    before = {k: (a.G.copy(), b.G.copy()) for k, (a, b) in xbar.pairs.items()}
    stats = xbar.apply(d, np.random.default_rng(2))
    assert stats.pulses == 0 and stats.energy_J == 0.0
    w1 = xbar.weights()
    for k in w0:  # each device moves by +-dG/2 exactly, stopped only by its bounds
        gu, (gp, gm) = xbar.g_unit[k], before[k]
        hi = xbar.p.g_max_S
        want = (np.clip(gp + d[k] * gu / 2, 1e-6, hi) - np.clip(gm - d[k] * gu / 2, 1e-6, hi)) / gu
        assert max_diff(w1[k], want) < 1e-9 * np.abs(want).max()
        inside = np.abs(w0[k] + d[k] - want) < 1e-12
        assert inside.mean() > 0.3  # where no device meets a bound, W + dW exactly


@pytest.mark.parametrize("circuit", ["tiny_dense", "tiny_conv"])
def test_ir_drop_weights_are_the_tiles_nodal_solution(circuit, tmp_path):
    """A read through the lines: for one input vector on one tile, ``v @ W_eff g_unit``
    equals the nodal oracle's net column current of the twin G+ / G- tiles."""
    from analogebl.hardware.parasitics import LineResistance, nodal_column_currents

    prof = _profile(
        tmp_path,
        "[array]\ntile_rows = 20\ntile_cols = 6\nr_wire_ohm = 500.0\nr_access_ohm = 2e4\n"
        "r_col_terminal_ohm = 100.0\n",
        parent="only_ir_drop",
    )
    plan = build_plan(load_circuit(circuit), 0, profile=prof)
    xbar = Crossbars(prof, dict(plan.parameters), np.random.default_rng(0))
    w = xbar.weights()
    lines = LineResistance(500.0, 0.0, 100.0, 2e4)
    rng = np.random.default_rng(3)
    for name in ("W2", "W3"):
        gp, gm = (d.visible for d in xbar.pairs[name])
        if gp.ndim == 4:  # unrolled (C_in k k) x C_out, whole kernels per tile: 18 rows
            gp, gm = gp.reshape(gp.shape[0], -1).T, gm.reshape(gm.shape[0], -1).T
            weff = w[name].reshape(w[name].shape[0], -1).T
            rows = slice(18, 36)
        else:
            weff = w[name]
            rows = slice(20, min(40, gp.shape[0])) if gp.shape[0] > 20 else slice(0, gp.shape[0])
        cols = slice(6, min(12, gp.shape[1]))
        v = rng.uniform(0, 0.5, size=gp[rows, cols].shape[0])
        want = nodal_column_currents(gp[rows, cols], v, lines) - nodal_column_currents(
            gm[rows, cols], v, lines
        )
        got = v @ weff[rows, cols] * xbar.g_unit[name]
        assert max_diff(got, want) < 1e-9 * np.abs(want).max(), name
        ideal = v @ (gp[rows, cols] - gm[rows, cols])
        assert max_diff(got, ideal) > 1e-3 * np.abs(ideal).max()  # the drop is visible
    # biases see no drop
    assert max_diff(w["b1"], (xbar.pairs["b1"][0].visible - xbar.pairs["b1"][1].visible)
                    / xbar.g_unit["b1"]) == 0.0  # fmt: skip


def _tile_errors(xbar, key):
    """Per tile of one side ``key = (name, side)``: the relative Frobenius error of the realised
    ``G_eff`` against the exact solve, the estimate ``kappa drop ||G - G_ref|| / ||G_ref||``,
    and the error of keeping the last solve's attenuation ``G_eff / G`` instead."""
    from analogebl.hardware.crossbar import IR_TRACK_KAPPA

    name, side = key
    tr = xbar._ir[key]
    G = xbar.pairs[name][side].visible
    P = xbar._padded(G)
    exact = xbar._padded(xbar.effective(G))
    got = xbar._padded(tr.eff_last)
    with np.errstate(divide="ignore", invalid="ignore"):
        frozen = np.where(tr.g_ref > 0, tr.eff_ref / tr.g_ref, 1.0) * P

    def norm(x):
        return np.sqrt(np.einsum("aibj,aibj->ab", x, x))

    est = IR_TRACK_KAPPA * tr.drop * norm(P - tr.g_ref) / norm(tr.g_ref)
    return norm(got - exact) / norm(exact), est, norm(frozen - exact) / norm(exact)


def test_ir_drop_between_exact_solves_stays_within_its_tolerance(tmp_path):
    """Between exact solves every tile's ``G_eff`` is tracked (module docstring of
    ``crossbar``): its error, and that of the twin tiles' column currents, stays within
    ``array.ir_refresh_tol``; an update whose estimated error passes the tolerance solves
    tiles again."""
    IR_REFRESH_TOL = 1e-3  # the profile's

    prof = _profile(tmp_path, "[array]\ntile_rows = 16\ntile_cols = 16\nr_wire_ohm = 200.0\n"
                    "ir_refresh_tol = 1e-3\n", parent="only_ir_drop")  # fmt: skip
    plan = build_plan(load_circuit("tiny_dense"), 0, profile=prof)
    xbar = Crossbars(prof, dict(plan.parameters), np.random.default_rng(0))
    xbar.weights()
    n_tiles = xbar.ir_solves  # the first read solves every tile
    assert n_tiles == sum(t.drop.size for t in xbar._ir.values())
    assert max(t.drop.max() for t in xbar._ir.values()) > 0.04  # a real drop
    rng = np.random.default_rng(1)
    for _ in range(5):
        d = {k: 2e-3 * rng.normal(size=v.shape) for k, v in plan.parameters.items()}
        xbar.apply(d, rng)
        w = xbar.weights()
        for k, (a, b) in xbar.pairs.items():
            if a.G.ndim < 2:
                continue
            for side in (0, 1):
                err, est, _ = _tile_errors(xbar, (k, side))
                assert err.max() < IR_REFRESH_TOL, (k, side, err.max())
                assert np.all(err <= np.maximum(est, 1e-12)), (k, side)
            exact = (xbar.effective(a.visible) - xbar.effective(b.visible)) / xbar.g_unit[k]
            v = rng.uniform(0, 1, size=(8, exact.shape[0]))
            scale = np.abs(v) @ ((xbar.effective(a.visible) + xbar.effective(b.visible))
                                 / xbar.g_unit[k])  # fmt: skip
            assert np.max(np.abs(v @ (w[k] - exact)) / scale) < IR_REFRESH_TOL
    # the small steps kept most tiles' last solves (5 reads of every tile)
    assert xbar.ir_solves - n_tiles < 5 * n_tiles // 2
    big = {k: 0.3 * rng.normal(size=v.shape) for k, v in plan.parameters.items()}
    before = xbar.ir_solves
    xbar.apply(big, rng)
    xbar.weights()
    assert xbar.ir_solves > before
    for key in xbar._ir:
        assert _tile_errors(xbar, key)[0].max() < IR_REFRESH_TOL


def test_ir_drop_tracking_stays_within_its_calibrated_bound(tmp_path):
    """A random walk of the conductances (every device, 5 % of the weight range per step, 30
    steps) on 32 x 32 tiles with a 40 % drop, never solved again (``ir_refresh_tol`` near 1):
    on every tile the tracked ``G_eff`` stays within the calibrated estimate
    ``kappa drop ||G - G_ref|| / ||G_ref||`` of the exact solve, and several times closer to
    it than keeping the last solve's attenuation ``G_eff / G``."""
    prof = _profile(tmp_path, "[array]\ntile_rows = 32\ntile_cols = 32\nr_wire_ohm = 500.0\n"
                    "ir_refresh_tol = 0.999\n", parent="only_ir_drop")  # fmt: skip
    plan = build_plan(load_circuit("tiny_dense"), 0, profile=prof)
    params = {k: v for k, v in plan.parameters.items() if k == "W1"}  # 784 x 32: 25 tiles
    xbar = Crossbars(prof, params, np.random.default_rng(0))
    xbar.weights()
    solves = xbar.ir_solves
    assert xbar._ir[("W1", 0)].drop.max() > 0.3
    rng = np.random.default_rng(2)
    w_max = 2 * np.abs(params["W1"]).max()
    worst, worst_frozen = 0.0, 0.0
    for _ in range(30):
        xbar.apply({"W1": 0.05 * w_max * rng.normal(size=params["W1"].shape)}, rng)
        xbar.weights()
        for side in (0, 1):
            err, est, frozen = _tile_errors(xbar, ("W1", side))
            assert np.all(err <= est), (err / est).max()
            worst, worst_frozen = max(worst, err.max()), max(worst_frozen, frozen.max())
    assert xbar.ir_solves == solves  # tracked all along
    assert worst < 0.01 and worst_frozen > 4 * worst, (worst, worst_frozen)


def test_ir_drop_resume_rebuilds_identical_weights(tmp_path):
    """The checkpoint holds each tile's conductances at its last exact solve; a fresh
    ``Crossbars`` loading it realises the same weights, bit for bit, through tracked reads and
    further solves."""
    prof = _profile(tmp_path, "[array]\ntile_rows = 16\ntile_cols = 16\nr_wire_ohm = 200.0\n"
                    "ir_refresh_tol = 1e-3\n", parent="only_ir_drop")  # fmt: skip
    plan = build_plan(load_circuit("tiny_dense"), 0, profile=prof)
    params = dict(plan.parameters)
    xbar = Crossbars(prof, params, np.random.default_rng(0))
    rng = np.random.default_rng(3)
    steps = [{k: 5e-3 * rng.normal(size=v.shape) for k, v in params.items()} for _ in range(6)]
    for d in steps[:3]:
        xbar.apply(d, np.random.default_rng(4))
        xbar.weights()
    state = {k: np.array(v) for k, v in xbar.state_dict().items()}
    refs = {tuple(k.split("/")[1:]): v for k, v in state.items() if k.startswith("ir/")}
    assert len(refs) == 6  # W1, W2, W3 x 2 sides
    tracked = [not np.array_equal(v, xbar.pairs[k][int(s)].visible) for (k, s), v in refs.items()]
    assert any(tracked)  # some tiles carry older solves than the current conductances
    solves = xbar.ir_solves
    want = []
    for d in steps[3:]:
        xbar.apply(d, np.random.default_rng(5))
        want.append(xbar.weights())
    assert xbar.ir_solves > solves  # the continuation solves some tiles again
    other = Crossbars(prof, params, np.random.default_rng(0))  # the same devices
    other.load_state_dict(state)
    for d, w in zip(steps[3:], want, strict=True):
        other.apply(d, np.random.default_rng(5))
        got = other.weights()
        for k in w:
            assert np.array_equal(got[k], w[k]), k
    # without the solves' conductances a resume would realise other weights
    bare = Crossbars(prof, params, np.random.default_rng(0))
    bare.load_state_dict({k: v for k, v in state.items() if not k.startswith("ir/")})
    bare.apply(steps[3], np.random.default_rng(5))
    assert any(not np.array_equal(v, want[0][k]) for k, v in bare.weights().items())
