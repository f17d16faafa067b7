"""16-bit relaxation on the torch backend (``dtype = "float16" | "bfloat16"``) against float64.

Tolerances are stated from the formats. ``u`` is the unit roundoff of rounding to nearest:
``2^-8`` for bfloat16 (8 significant bits) and ``2^-11`` for float16 (11 bits); float32's is
``2^-24``. A sum of ``K`` products computed in a format of unit roundoff ``v`` errs by at
most ``K v sum|a_i b_i|`` (Higham's bound, any summation order), so every check bounds the
error componentwise by a multiple of the *magnitude* ``|A| |B|`` (the op applied to absolute
values), which cancellation cannot shrink. The 16-bit ops are compared on inputs already
rounded to 16 bit (so the check sees the op's own error, not the input's rounding).

The EP gradient check reports, per parameter, the 16-bit C-EP estimate's relative error and
cosine against the float64 implicit gradient, and the part of the error the 16-bit
relaxation adds (against float64 C-EP at the same beta). Run with ``-s`` to see the table.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analogebl.backends import make_backend
from analogebl.circuit import load_circuit
from analogebl.errors import ConfigError
from analogebl.learning import SGD, estimate, layer_learning_rates, make_rule
from analogebl.network import Network
from analogebl.plan import build_plan
from analogebl.plan.effects import ReadNoise, StateQuantizer
from analogebl.training import IdealUpdater
from tests.conftest import random_batch

HALF = ("bfloat16", "float16")
U = {"bfloat16": 2.0**-8, "float16": 2.0**-11}  #: unit roundoff of the 16-bit formats
U32 = 2.0**-24  #: float32's, where the 16-bit backend accumulates
TORCH_DTYPE = {"bfloat16": torch.bfloat16, "float16": torch.float16}


def _pair(circuit: str, dtype: str, seed: int = 0):
    plan = build_plan(load_circuit(circuit), seed)
    return make_backend("reference", plan, "float64"), make_backend("torch", plan, dtype)


@pytest.fixture(scope="module", params=HALF)
def conv_pair(request):
    return (*_pair("tiny_conv", request.param), request.param)


def _in16(tor, a):
    """``a`` rounded to the 16-bit format: (the backend array, its exact float64 value)."""
    t = tor.asarray(a)
    return t, tor.to_numpy(t).astype(np.float64)


def _within(got, want, mag, tol) -> None:
    err = np.abs(np.asarray(got, dtype=np.float64) - want)
    worst = float(np.max(err - tol * mag))
    assert worst <= 0.0, f"error exceeds {tol:.2e} * magnitude by {worst:.2e}"


# ---------------------------------------------------------------------------------------
# (a) each primitive against the float64 reference
def test_products_are_16_bit_and_rounded_once(conv_pair):
    """Products, pooling, clamps and the bias add run in 16 bit: the result is the exact
    value of the 16-bit operands rounded once (``u |A||B|``; torch's CPU kernels sum in
    float32, ``+ K 2^-24 |A||B|``). ``conv_transpose2d`` may add its ``k*k`` kernel offsets
    in 16 bit (torch's generic col2im does for float16): ``k*k`` roundings allowed there."""
    ref, tor, dt = conv_pair
    u, half = U[dt], TORCH_DTYPE[dt]
    rng = np.random.default_rng(0)
    s, s_ = _in16(tor, rng.normal(size=(3, 4, 6, 6)))
    w, w_ = _in16(tor, rng.normal(size=(5, 4, 3, 3)))
    z, z_ = _in16(tor, rng.normal(size=(3, 5, 6, 6)))
    a, a_ = _in16(tor, rng.normal(size=(7, 40)))
    m, m_ = _in16(tor, rng.normal(size=(40, 9)))
    g, g_ = _in16(tor, rng.normal(size=(7, 9)))
    k_conv = 4 * 9  # reduction length of a conv output: in-channels x kernel
    cases = [
        ("matmul", tor.op_matmul(a, m), ref.op_matmul(a_, m_),
         ref.op_matmul(abs(a_), abs(m_)), u + 40 * U32),
        ("matmul_t", tor.op_matmul_t(g, m), ref.op_matmul_t(g_, m_),
         ref.op_matmul_t(abs(g_), abs(m_)), u + 9 * U32),
        ("conv", tor.op_conv(s, w, 1), ref.op_conv(s_, w_, 1),
         ref.op_conv(abs(s_), abs(w_), 1), u + k_conv * U32),
        ("conv_t", tor.op_conv_t(z, w, 1), ref.op_conv_t(z_, w_, 1),
         ref.op_conv_t(abs(z_), abs(w_), 1), 9 * u + 45 * U32),
        ("pool_avg", tor.op_pool_avg(z), ref.op_pool_avg(z_), ref.op_pool_avg(abs(z_)), u),
        ("add_channel", tor.op_add_channel(z, w[:, 0, 0, 0]),
         ref.op_add_channel(z_, w_[:, 0, 0, 0]), abs(ref.op_add_channel(z_, w_[:, 0, 0, 0])), u),
    ]  # fmt: skip
    for name, got, want, mag, tol in cases:
        assert got.dtype == half, name
        _within(tor.to_numpy(got), want, mag, tol)
    # exact in any format: clamps, masks, max-pool (selection), unpooling, x 1/4
    for name, got, want in [
        ("clip01", tor.op_clip01(z), ref.op_clip01(z_)),
        ("clip", tor.op_clip(z, -0.5, 0.25), ref.op_clip(z_, -0.5, 0.25)),
        ("mask01", tor.op_mask01(z), ref.op_mask01(z_)),
        ("unpool_avg", tor.op_unpool_avg(s), ref.op_unpool_avg(s_)),
    ]:
        assert got.dtype == half and np.array_equal(tor.to_numpy(got), want), name
    p, idx = tor.op_pool_max(z)
    p_, idx_ = ref.op_pool_max(z_)
    assert p.dtype == half and np.array_equal(tor.to_numpy(p), p_)
    un = tor.op_unpool_max(p, idx)
    assert np.array_equal(tor.to_numpy(un), ref.op_unpool_max(p_, idx_))
    assert np.array_equal(tor.to_numpy(tor.op_pool_at(z, idx)), p_)


def test_correlations_sums_and_dots_are_float32(conv_pair):
    """What EP contrasts and the energy sums: float32 results from the (exactly upcast)
    16-bit states, within float32's ``K 2^-24 |A||B|`` for a reduction of length ``K``. A
    16-bit accumulation would err by ``~u |A||B|``, far above these bounds (``K 2^-24 < u``
    for every ``K`` here)."""
    ref, tor, dt = conv_pair
    rng = np.random.default_rng(1)
    s, s_ = _in16(tor, rng.uniform(size=(3, 4, 6, 6)))
    z, z_ = _in16(tor, rng.normal(size=(3, 5, 6, 6)))
    a, a_ = _in16(tor, rng.uniform(size=(30, 40)))
    b, b_ = _in16(tor, rng.normal(size=(30, 9)))
    n_hw = 3 * 36
    cases = [
        ("outer_sum", tor.op_outer_sum(a, b), ref.op_outer_sum(a_, b_),
         ref.op_outer_sum(abs(a_), abs(b_)), 30),
        ("conv_corr", tor.op_conv_corr(s, z, 1, 3), ref.op_conv_corr(s_, z_, 1, 3),
         ref.op_conv_corr(abs(s_), abs(z_), 1, 3), n_hw),
        ("channel_sum", tor.op_channel_sum(z), ref.op_channel_sum(z_),
         ref.op_channel_sum(abs(z_)), n_hw),
        ("per_example_dot", tor.op_per_example_dot(s, s), ref.op_per_example_dot(s_, s_),
         ref.op_per_example_dot(s_, s_), 4 * 36),
    ]  # fmt: skip
    for name, got, want, mag, k in cases:
        assert got.dtype == torch.float32, name
        assert tor.to_numpy(got).dtype == np.float32, name
        _within(tor.to_numpy(got), want, mag, (k + 1) * U32)
        assert 16 * (k + 1) * U32 < U[dt]  # the bound separates float32 from 16 bit
    got = tor.op_vdot(z, z)
    assert isinstance(got, float)
    assert abs(got - float(np.vdot(z_, z_))) <= (z_.size + 1) * U32 * float(np.vdot(z_, z_))
    assert tor.op_abs_max(z) == float(np.max(np.abs(z_)))


@pytest.mark.parametrize("lo, hi, bits", [(0.0, 1.0, 8), (-1.0, 1.0, 6)])
def test_converters_quantize_in_float32_and_round_back(conv_pair, lo, hi, bits):
    """``op_quantize`` forms ``lo + rint((clip(s) - lo) / step) step`` in float32 and
    rounds it to 16 bit once: exactly the float32 reference quantizer rounded to 16 bit,
    and so within ``u |q(s)|`` of the float64 grid point, except where ``s`` lies within
    float32's error of a code boundary (there the code may differ by one step). The 16-bit
    formats cannot hold the grid itself (``k / 255`` is not a bfloat16)."""
    ref, tor, dt = conv_pair
    q = StateQuantizer.from_bits(bits, lo, hi)
    rng = np.random.default_rng(2)
    s, s_ = _in16(tor, rng.uniform(lo - 0.2, hi + 0.2, size=(4, 300)))
    got = tor.op_quantize(s, q)
    assert got.dtype == TORCH_DTYPE[dt]
    q32 = torch.from_numpy(q(s_.astype(np.float32))).to(got.dtype)
    assert torch.equal(got, q32)
    err = np.abs(tor.to_numpy(got) - q(s_))
    assert np.all(err <= U[dt] * np.abs(q(s_)) + q.step)
    assert np.mean(err <= U[dt] * np.abs(q(s_))) > 0.99


def test_hardware_effects_run_in_16_bit():
    """Converters, read noise (added to the float32 master, then rounded) and a quantized
    relaxation work in 16 bit; the weights the relaxation reads are 16-bit."""
    ref, tor = _pair("tiny_conv", "bfloat16")
    x, _ = random_batch(tor.plan, 4, seed=3)
    q = StateQuantizer.from_bits(8)
    tor.set_quantizers([None] + [q] * (tor.plan.num_layers - 2) + [None])
    std = {k: np.full(v.shape, 0.01) for k, v in tor.get_parameters().items()}
    tor.set_read_noise(ReadNoise(std, "per_phase"), np.random.default_rng(0))
    s = tor.relax(tor.zero_state(x), 20)
    assert all(v.dtype == torch.bfloat16 for v in s) and tor.check_finite(s) is None
    h1 = tor.to_numpy(s[1]).astype(np.float64)
    assert np.max(np.abs(h1 - q(h1))) <= U["bfloat16"] * 1.0  # on the grid, up to rounding
    assert tor.weight("W1").dtype == torch.bfloat16  # no read noise outside a relaxation
    assert tor.params["W1"].dtype == torch.float32


# ---------------------------------------------------------------------------------------
# (b) the free relaxation's fixed point
@pytest.mark.parametrize("circuit", ["tiny_dense", "tiny_conv"])
@pytest.mark.parametrize("dtype", HALF)
def test_free_fixed_point_is_near_the_float64_one(circuit, dtype):
    """The 16-bit relaxation stops at a fixed point of its rounded map (or cycles within
    rounding; here it stops: the 16-bit residual is 0).

    Residual: each update rounds the field three times (``b + T``, ``+ T^*`` and the
    products, ``<= 3u |h|``) and reads rounded weights (``<= u |h|`` more), so the float64
    equations hold at the 16-bit state to ``4u max(1, |h|)``. Distance: the float64 map
    contracts by ``rho`` per iteration (measured from its residual decay), so a state with
    residual ``r`` lies within ``r / (1 - rho)`` of the fixed point: ``4u max(1, |h|) / (1 -
    rho)``. With max-pooling a window whose two largest entries lie within rounding may
    pick either in 16 bit and move the top-down feedback: there 99% of the units must meet
    the bound and every unit four times it.
    """
    ref, tor = _pair(circuit, dtype, seed=1)
    u = U[dtype]
    x, _ = random_batch(ref.plan, 16, seed=11)
    s = ref.relax(ref.zero_state(x), 10)
    r10 = ref.residual(s)
    s = ref.relax(s, 5)
    rho = (ref.residual(s) / r10) ** (1 / 5)
    assert rho < 0.5
    s64 = ref.relax(s, 200)
    assert ref.residual(s64) < 1e-14
    s16 = tor.relax(tor.zero_state(x), 60)
    assert all(v.dtype == TORCH_DTYPE[dtype] for v in s16)
    up = [ref.asarray(tor.to_numpy(v)) for v in s16]
    h_max = max(np.abs(ref.field(s64, k)).max() for k in range(1, ref.plan.num_layers))
    res_bound = 4 * u * max(1.0, h_max)
    assert tor.residual(s16) <= res_bound  # a fixed point (or a cycle of a few ulps)
    assert ref.residual(up) <= res_bound
    bound = res_bound / (1 - rho)
    err = np.concatenate([np.abs(a - b).ravel() for a, b in zip(up[1:], s64[1:], strict=True)])
    if any(c.pool == "max" for c in ref.plan.couplings):
        assert np.quantile(err, 0.99) <= bound and err.max() <= 4 * bound
    else:
        assert err.max() <= bound
    print(f"\n{circuit} {dtype}: max |s16 - s64| = {err.max() / u:.2f} u (bound "
          f"{bound / u:.2f} u), float64 residual {ref.residual(up) / u:.2f} u")  # fmt: skip


# ---------------------------------------------------------------------------------------
# (c) EP gradient from a 16-bit relaxation vs the float64 implicit gradient
BETA = 0.1
#: The error 16-bit adds to C-EP is that of the states' contrast ``(s(b) - s(-b)) / 2b``: a
#: rounding error ``~u`` per state over ``2 beta``, so ``|g16 - g64| / |g| <= K u / beta``.
#: ``K = 25`` (measured <= 15 on seeds 1-3 of both circuits; the first layer, which moves
#: least under the nudge, is the worst): at beta = 0.1 that is <= 0.12 for float16 and
#: <= 0.98 for bfloat16, whose 8 bits leave the first layer's contrast at a few ulps.
K_ADDED = 25.0
#: Per-parameter cosine with the float64 implicit gradient that C-EP(beta = 0.1) from a
#: 16-bit relaxation must reach. float64 C-EP reaches > 0.98 here (the beta bias). float16:
#: from the bound above, relative error <= 0.17 + 0.12, so cosine >= sqrt(1 - 0.29^2) = 0.957;
#: bfloat16: measured >= 0.88 (the first layer of tiny_conv), bound 0.8 (the error bound
#: above gives nothing for bfloat16's first layer; other CPUs' kernels round differently).
MIN_COSINE = {"bfloat16": 0.8, "float16": 0.95}


def _cos(a, b) -> float:
    return float(a.ravel() @ b.ravel() / (np.linalg.norm(a) * np.linalg.norm(b)))


def _rel(a, b, ref) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(ref))


@pytest.mark.parametrize("circuit", ["tiny_dense", "tiny_conv"])
@pytest.mark.parametrize("dtype", HALF)
def test_ep_gradient_per_layer_against_float64(circuit, dtype, record_property):
    ref, tor = _pair(circuit, dtype, seed=1)
    u = U[dtype]
    x, y = random_batch(ref.plan, 16, seed=11)
    s64 = ref.relax(ref.zero_state(x), 200)
    exact_b, cg = ref.implicit_gradient(s64, ref.one_hot(y))
    assert cg < 1e-10
    exact = {k: ref.to_numpy(v) for k, v in exact_b.items()}
    rule = make_rule("c_ep", BETA, 60)
    g64, _ = estimate(ref, rule, s64, ref.one_hot(y))
    s16 = tor.relax(tor.zero_state(x), 60)
    g16_b, _ = estimate(tor, rule, s16, tor.one_hot(y))
    assert all(v.dtype == torch.float32 for v in g16_b.values())  # contrast in float32
    g16 = {k: tor.to_numpy(v) for k, v in g16_b.items()}
    rows = []
    for k, e in exact.items():
        row = {
            "param": k,
            "rel_error": _rel(g16[k], e, e),
            "cosine": _cos(g16[k], e),
            "float64_ep_rel_error": _rel(g64[k], e, e),
            "float64_ep_cosine": _cos(g64[k], e),
            "added_by_16bit": _rel(g16[k], g64[k], e),
        }
        rows.append(row)
        record_property(f"{k}_cosine", row["cosine"])
        record_property(f"{k}_rel_error", row["rel_error"])
    print(f"\n{circuit} {dtype} C-EP beta={BETA} vs float64 implicit gradient")
    for r in rows:
        print("  {param:3s} rel {rel_error:.4f} cos {cosine:.5f} | float64 C-EP rel "
              "{float64_ep_rel_error:.4f} cos {float64_ep_cosine:.5f} | added {added_by_16bit:.4f}"
              .format(**r))  # fmt: skip
    for r in rows:
        assert r["float64_ep_cosine"] > 0.98, r  # the setting where the comparison means
        assert r["cosine"] > MIN_COSINE[dtype], r
        assert r["added_by_16bit"] <= K_ADDED * u / BETA, r


# ---------------------------------------------------------------------------------------
# (d) training through the normal Network / rule / updater path
def test_bfloat16_training_tracks_float64_and_keeps_float32_masters():
    """C-EP + SGD on tiny_dense through Network.train_step: the bfloat16 run lowers the
    cost on a fixed batch as the float64 run does (each step's free-phase cost within 0.01
    of float64's: the output is within ~u of float64's, the cost ~0.5), and the parameters
    stay float32 masters that the optimizer updates in float32."""
    x, y = random_batch(build_plan(load_circuit("tiny_dense"), 0), 32, seed=4)
    rule = make_rule("c_ep", 0.25, 20)
    costs = {}
    for dtype, backend in (("float64", "reference"), ("bfloat16", "torch")):
        net = Network.from_catalog("tiny_dense", backend=backend, dtype=dtype, seed=0)
        up = IdealUpdater(SGD(layer_learning_rates(list(net.parameters()), 0.1), 0.9))
        costs[dtype] = [net.train_step(x, y, rule, up, 40)["cost"] for _ in range(8)]
        if dtype == "bfloat16":
            assert all(v.dtype == torch.float32 for v in net.backend.params.values())
            assert all(v.dtype == np.float32 for v in net.parameters().values())
    c16, c64 = np.array(costs["bfloat16"]), np.array(costs["float64"])
    assert c16[-1] < 0.85 * c16[0]
    assert np.max(np.abs(c16 - c64)) < 0.01, (c16, c64)


def test_updates_below_16_bit_resolution_accumulate_in_the_float32_master():
    """An SGD step far below a bfloat16 ulp of the weights is kept: the float32 masters
    move by ``-lr g`` (to float32 precision) while their 16-bit reads hardly change (a
    16-bit master would round such updates away)."""
    net = Network.from_catalog("tiny_dense", backend="torch", dtype="bfloat16", seed=0)
    b = net.backend
    x, y = random_batch(net.plan, 8, seed=5)
    before = net.parameters()["W2"].astype(np.float64)
    read0 = b.to_numpy(b.weight("W2"))
    g, _ = estimate(b, make_rule("c_ep", 0.25, 20), b.relax(b.zero_state(x), 40), b.one_hot(y))
    g2 = b.to_numpy(g["W2"]).astype(np.float64)
    lr = 0.01 * U["bfloat16"] * np.median(np.abs(before)) / np.abs(g2).max()
    SGD({k: lr for k in g}, 0.0).step(b.params, g)
    after = net.parameters()["W2"].astype(np.float64)
    assert np.all(np.abs((after - before) + lr * g2) <= 2 * U32 * np.abs(before) + 1e-30)
    visible = np.abs(lr * g2) > 4 * U32 * np.abs(before)  # above float32's resolution
    assert visible.sum() > 50 and np.all(after[visible] != before[visible])
    assert np.mean(b.to_numpy(b.weight("W2")) != read0) < 0.05  # the 16-bit reads barely


# ---------------------------------------------------------------------------------------
# (e) refusals
@pytest.mark.parametrize("backend", ["reference", "numba"])
@pytest.mark.parametrize("dtype", HALF)
def test_reference_and_numba_refuse_16_bit(backend, dtype):
    plan = build_plan(load_circuit("tiny_dense"), 0)
    with pytest.raises(ConfigError, match="torch backend only") as info:
        make_backend(backend, plan, dtype)
    assert info.value.key == "dtype" and dtype in str(info.value)


def test_unknown_dtypes_are_refused_naming_the_key():
    plan = build_plan(load_circuit("tiny_dense"), 0)
    for backend in ("torch", "reference"):
        with pytest.raises(ConfigError) as info:
            make_backend(backend, plan, "float8")
        assert info.value.key == "dtype" and "float8" in str(info.value)


def test_run_spec_and_cli_refuse_16_bit_off_torch(capsys):
    from analogebl.cli import main
    from analogebl.spec import RunSpec
    from analogebl.study import load_study

    values = load_study("mnist_dhn_c_ep", tier="smoke").as_dict()
    for backend in ("auto", "numba", "reference"):
        with pytest.raises(ConfigError, match="torch backend only") as info:
            RunSpec.from_flat({**values, "dtype": "bfloat16", "backend": backend})
        assert info.value.key == "dtype"
    assert RunSpec.from_flat({**values, "dtype": "bfloat16", "backend": "torch"}).dtype == (
        "bfloat16"
    )
    rc = main(["check", "gradients", "--dtype", "float16", "--iterations", "10"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "dtype" in err[0] and "float16" in err[0] and "torch backend only" in err[0]


# ---------------------------------------------------------------------------------------
# (f) what leaves the backend is float32
@pytest.mark.parametrize("dtype", HALF)
def test_numpy_and_parameters_come_back_float32(dtype):
    ref, tor = _pair("tiny_conv", dtype)
    p = tor.get_parameters()
    assert all(v.dtype == np.float32 for v in p.values())
    for k, v in ref.get_parameters().items():  # the float32 master of the float64 plan value
        assert np.array_equal(p[k], v.astype(np.float32))
    x, _ = random_batch(tor.plan, 2, seed=0)
    s = tor.relax(tor.zero_state(x), 3)
    assert all(tor.to_numpy(v).dtype == np.float32 for v in s)
    assert tor.to_numpy(tor.energy(s)).dtype == np.float32
    idx = tor.pool_index(tor.plan.couplings[0], s[0])
    assert tor.to_numpy(idx).dtype == np.int64
    new = {k: v.astype(np.float64) * 0.5 for k, v in ref.get_parameters().items()}
    tor.set_parameters(new)
    assert all(
        np.array_equal(v, new[k].astype(np.float32)) for k, v in tor.get_parameters().items()
    )
    assert tor.params["W1"].dtype == torch.float32
    w = tor.weight("W1")
    assert w.dtype == TORCH_DTYPE[dtype] and tor.weight("W1") is w  # cast once, cached
    assert np.array_equal(
        tor.to_numpy(w), tor.to_numpy(torch.tensor(new["W1"], dtype=torch.float32).to(w.dtype))
    )


def test_a_bfloat16_study_run_and_gradient_check_complete(tmp_path, capsys):
    """The user's path: a smoke study and the gradient check on torch in bfloat16 (data
    batches float32 into the backend, the run file's arrays float32)."""
    import h5py

    from analogebl.cli import main

    out = tmp_path / "run"
    argv = ["study", "run", "mnist_dhn_c_ep", "--tier", "smoke", "--backend", "torch"]
    assert main([*argv, "--dtype", "bfloat16", "--out", str(out)]) == 0
    (f,) = out.glob("*.h5")
    with h5py.File(f, "r") as h:
        err = h["metrics/test_error"][-1]
        dtypes = [h["checkpoint/params"][k].dtype for k in h["checkpoint/params"]]
        dtypes += [h["checkpoint/warm"][k].dtype for k in h["checkpoint/warm"]]
    assert 0.0 <= err < 0.6  # well above chance (0.9) after one smoke epoch
    assert dtypes and all(d == np.float32 for d in dtypes)
    check = ["check", "gradients", "--circuit", "tiny_dense", "--backend", "torch"]
    assert main([*check, "--dtype", "bfloat16", "--rules", "c_ep", "--iterations", "200"]) == 0
    assert "bfloat16" in capsys.readouterr().out


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_parameters_stay_float32_masters_and_a_refused_update_changes_none(dtype):
    plan = build_plan(load_circuit("tiny_dense"), 0)
    b = make_backend("torch", plan, dtype)
    assert all(v.dtype == torch.float32 for v in b.params.values())
    before = b.get_parameters()
    new = {k: v + 1.0 for k, v in before.items()}
    with pytest.raises(KeyError):
        b.set_parameters({"W1": new["W1"], "nope": new["W1"]})
    assert b.params["W1"].dtype == torch.float32
    np.testing.assert_array_equal(b.get_parameters()["W1"], before["W1"])
    b.set_parameters(new)
    assert all(v.dtype == torch.float32 for v in b.params.values())
    np.testing.assert_allclose(b.get_parameters()["W1"], new["W1"], rtol=1e-7)
