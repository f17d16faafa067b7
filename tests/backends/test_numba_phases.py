"""Compiled dense relaxation phases (numba ``phases``) against the reference backend."""

import numpy as np
import pytest

from analogebl.backends.numba import phases as P
from analogebl.plan.effects import NodeClamp, NudgeCurrent, ReadNoise, StateQuantizer, TileReads
from tests.conftest import backend_pair, max_diff, random_batch

CIRCUITS = [
    ("tiny_dense", {}),  # groups (1, 3), (2,): the output in the first group
    ("dhn_deep", {"width": 0.05}),  # 784-51-51-51-10: two layers in each group
    ("dhn_mnist", {"width": 0.05}),  # one hidden layer
]
DTYPES = [("float64", 1e-10), ("float32", 1e-5)]
SCHEDULES = ("async", "async_backward", "sync")


@pytest.fixture
def calls(monkeypatch):
    """Counts the compiled phases run."""
    n = [0]
    inner = P.relax_dense

    def counted(*args):
        n[0] += 1
        return inner(*args)

    monkeypatch.setattr(P, "relax_dense", counted)
    return n


def _pair(circuit, over, dtype, seed=0):
    """Reference and numba backends with the same random weights, strong enough that the
    hidden clips saturate at both ends."""
    ref, fast = backend_pair(circuit, dtype, seed=seed, fast="numba", **over)
    rng = np.random.default_rng(seed + 100)
    params = {}
    for name, v in ref.plan.parameters.items():
        scale = 2.0 / np.sqrt(v.shape[0]) if v.ndim == 2 else 0.3
        params[name] = scale * rng.normal(size=v.shape)
    ref.set_parameters(params)
    fast.set_parameters(params)
    return ref, fast


def _phases(b, s, t, o, schedule):
    return {
        "free": b.relax(s, 12, schedule),
        "exact+": b.relax(s, 8, schedule, beta=0.4, target=t),
        "exact-": b.relax(s, 8, schedule, beta=-0.3, target=t),
        "step": b.relax(s, 8, schedule, beta=0.3, target=t, nudge="step"),
        "clamp": b.relax(s, 8, schedule, clamp=o),
    }


@pytest.mark.parametrize("circuit,over", CIRCUITS)
@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_compiled_phases_equal_the_reference(circuit, over, dtype, tol, calls):
    ref, fast = _pair(circuit, over, dtype, seed=3)
    x, y = random_batch(ref.plan, 5, seed=4)
    o = np.random.default_rng(1).normal(size=(5, ref.plan.layer_shapes[-1][0]))
    sr, sf = ref.relax(ref.zero_state(x), 10), fast.relax(fast.zero_state(x), 10)
    assert calls[0] == 1
    assert max(max_diff(a, b) for a, b in zip(sr, sf, strict=True)) < tol
    hidden = np.concatenate([v.ravel() for v in sf[1:-1]])
    assert (hidden == 0).any() and (hidden == 1).any() and ((hidden > 0) & (hidden < 1)).any()
    before = [v.copy() for v in sf]
    tf, of = fast.one_hot(y), fast.asarray(o)
    for schedule in SCHEDULES:
        pr = _phases(ref, sr, ref.one_hot(y), ref.asarray(o), schedule)
        pf = _phases(fast, sf, tf, of, schedule)
        for name in pr:
            for k, (a, b) in enumerate(zip(pr[name], pf[name], strict=True)):
                assert b.dtype == np.dtype(dtype), (schedule, name, k)
                assert max_diff(a, b) < tol, (schedule, name, k, max_diff(a, b))
            out = pf[name]
            assert out[0] is sf[0]  # the input passes through
            assert all(out[k] is not sf[k] for k in range(1, len(sf)))  # new arrays
        assert pf["clamp"][-1] is of
    assert calls[0] == 1 + 5 * len(SCHEDULES)
    assert all(np.array_equal(a, b) for a, b in zip(before, sf, strict=True))  # not in place


def _effects(plan):
    out = plan.output
    first = plan.couplings[0].name
    n_in, n_1 = plan.layer_shapes[0][0], plan.layer_shapes[1][0]
    quant = [StateQuantizer.from_bits(8, -3.0, 3.0)] + [StateQuantizer.from_bits(8)] * (out - 1)
    noise = ReadNoise({k: 0.05 * np.abs(v) + 1e-3 for k, v in plan.parameters.items()})
    return {
        "quantizers": lambda b: b.set_quantizers(quant + [StateQuantizer.from_bits(8, -2, 2)]),
        "read_noise": lambda b: b.set_read_noise(noise, np.random.default_rng(11)),
        "tiles": lambda b: b.set_tile_reads(
            {first: TileReads((0, n_in // 2, n_in), (0, n_1 // 2, n_1))}
        ),
        "node_clamps": lambda b: b.set_node_clamps(
            [None] + [NodeClamp(gain=1.3, kappa_off=0.05, kappa_on=4.0)] * (out - 1) + [None]
        ),
        "nudge_current": lambda b: b.set_nudge_current(NudgeCurrent(0.05, 16)),
    }


@pytest.mark.parametrize(
    "effect", ["quantizers", "read_noise", "tiles", "node_clamps", "nudge_current"]
)
def test_hardware_effects_take_the_generic_path(effect, calls):
    ref, fast = _pair("tiny_dense", {}, "float64", seed=2)
    x, y = random_batch(ref.plan, 4, seed=6)
    for b in (ref, fast):
        _effects(b.plan)[effect](b)
    res = [
        b.relax(b.relax(b.zero_state(x), 6), 6, beta=0.5, target=b.one_hot(y)) for b in (ref, fast)
    ]
    assert calls[0] == 0
    assert max(max_diff(a, b) for a, b in zip(*res, strict=True)) < 1e-10
    # switched off again: compiled
    off = {"quantizers": "set_quantizers", "read_noise": "set_read_noise",
           "tiles": "set_tile_reads", "node_clamps": "set_node_clamps",
           "nudge_current": "set_nudge_current"}[effect]  # fmt: skip
    getattr(fast, off)(None)
    fast.relax(fast.zero_state(x), 2)
    assert calls[0] == 1


@pytest.mark.parametrize("circuit,over", CIRCUITS[:2])
def test_energy_never_increases_over_compiled_async_sweeps(circuit, over, calls):
    _, b = _pair(circuit, over, "float64", seed=5)
    x, y = random_batch(b.plan, 4, seed=5)
    t = b.one_hot(y)
    start = b.zero_state(x)
    for schedule in ("async", "async_backward"):
        for beta in (0.0, 0.5, -0.3):
            s = b.relax(start, 1, schedule, beta, t)
            e_prev = b.energy(s, beta, t)
            for _ in range(25):
                s = b.relax(s, 1, schedule, beta, t)
                e = b.energy(s, beta, t)
                assert np.all(e <= e_prev + 1e-12), (schedule, beta, e - e_prev)
                e_prev = e
    clamp = b.asarray(np.random.default_rng(0).normal(size=(4, 10)))
    s = b.relax(start, 1, clamp=clamp)
    e_prev = b.energy(s)
    for _ in range(20):
        s = b.relax(s, 1, clamp=clamp)
        e = b.energy(s)
        assert np.all(e <= e_prev + 1e-12)
        e_prev = e
    assert calls[0] == 2 * 3 * 26 + 21
    assert b.residual(b.relax(start, 300)) < 1e-8  # and reaches a fixed point


def test_arguments_are_checked_and_odd_inputs_fall_back(calls):
    ref, fast = _pair("tiny_dense", {}, "float32", seed=1)
    x, y = random_batch(ref.plan, 3, seed=2)
    s = fast.zero_state(x)
    t = fast.one_hot(y)
    with pytest.raises(ValueError, match="beta"):
        fast.relax(s, 1, beta=-1.5, target=t)
    with pytest.raises(ValueError, match="target"):
        fast.relax(s, 1, beta=0.5)
    with pytest.raises(ValueError, match="nudge"):
        fast.relax(s, 1, nudge="sideways")
    with pytest.raises(ValueError, match="schedule"):
        fast.relax(s, 1, "random")
    out = fast.relax(s, 0)
    assert out is not s and all(a is b for a, b in zip(out, s, strict=True))
    assert calls[0] == 0
    # a target in another dtype promotes the generic path's output: left to the engine
    t64 = np.eye(10)[y]
    got = fast.relax(s, 5, beta=0.5, target=t64)
    want = ref.relax(ref.zero_state(x), 5, beta=0.5, target=t64)
    assert calls[0] == 0 and got[-1].dtype == np.float64
    assert max(max_diff(a, b) for a, b in zip(got, want, strict=True)) < 1e-5
    # a batch of one, and an input given as a non-contiguous view
    xs = fast.asarray(np.repeat(x[:1], 2, axis=1))[:, ::2]
    assert not xs.flags.c_contiguous
    s1 = [xs] + [v[:1] for v in s[1:]]
    got = fast.relax(s1, 7, beta=0.2, target=t[:1], nudge="step")
    want = ref.relax(ref.zero_state(x[:1]), 7, beta=0.2, target=ref.one_hot(y[:1]), nudge="step")
    assert calls[0] == 1 and got[0] is xs
    assert max(max_diff(a, b) for a, b in zip(got, want, strict=True)) < 1e-5


def test_large_products_run_on_the_engine(calls):
    """Loop products at or above SMALL_OP_MACS (threaded BLAS) take the engine's path,
    which was faster there; the results are the same relaxation."""
    from analogebl import threads as T

    ref, nb = backend_pair("dhn_deep", "float64", seed=0, fast="numba")
    n = T.SMALL_OP_MACS // (1024 * 1024) + 1  # 1024 x 1024 hidden-to-hidden products
    x, _ = random_batch(ref.plan, n, seed=1)
    a = ref.relax(ref.zero_state(x), 3)
    b = nb.relax(nb.zero_state(x), 3)
    assert calls[0] == 0
    assert max(max_diff(p, q) for p, q in zip(a, b, strict=True)) < 1e-10
