"""Relaxation physics and backend agreement."""

import numpy as np
import pytest

from tests.conftest import FAST_BACKENDS, backend_pair, max_diff, random_batch

CIRCUITS = [("tiny_dense", {}), ("tiny_conv", {}), ("tiny_conv", {"pool": "avg"})]


@pytest.mark.parametrize("circuit,over", CIRCUITS)
@pytest.mark.parametrize("backend", ("reference",) + FAST_BACKENDS)
def test_energy_never_increases_under_async_updates(circuit, over, backend):
    ref, fast = backend_pair(
        circuit, "float64", seed=2, fast="torch" if backend == "reference" else backend, **over
    )
    b = ref if backend == "reference" else fast
    x, y = random_batch(b.plan, 4, seed=5)
    state = b.zero_state(x)
    target = b.one_hot(y)
    for beta in (0.0, 0.5, -0.3):
        e_prev = b.to_numpy(b.energy(state, beta, target))
        s = state
        for _ in range(40):
            for g in b.plan.groups("async"):
                s = b.half_step(s, g, beta, target)
                e = b.to_numpy(b.energy(s, beta, target))
                assert np.all(e <= e_prev + 1e-12), (beta, e - e_prev)
                e_prev = e
    # and with the output clamped (CL/CpL phases)
    clamp = b.asarray(np.random.default_rng(0).normal(size=(4, 10)))
    s = b.relax(state, 1, clamp=clamp)
    e_prev = b.to_numpy(b.energy(s))
    for _ in range(20):
        s = b.relax(s, 1, clamp=clamp)
        e = b.to_numpy(b.energy(s))
        assert np.all(e <= e_prev + 1e-12)
        e_prev = e


@pytest.mark.parametrize("circuit,over", CIRCUITS)
def test_relaxation_reaches_a_fixed_point(circuit, over):
    ref, _ = backend_pair(circuit, "float64", seed=1, **over)
    x, y = random_batch(ref.plan, 3, seed=1)
    s = ref.relax(ref.zero_state(x), 300)
    assert ref.residual(s) < 1e-8
    # the fixed point is a stationary point of E: hidden states inside [0, 1]
    for k in range(1, ref.plan.output):
        assert s[k].min() >= 0 and s[k].max() <= 1
    # the nudged fixed point solves the exact output equation
    t = ref.one_hot(y)
    sn = ref.relax(s, 300, beta=0.4, target=t)
    assert ref.residual(sn, 0.4, t) < 1e-8


def test_async_and_sync_schedules_share_fixed_points():
    ref, _ = backend_pair("tiny_dense", "float64", seed=4)
    x, _ = random_batch(ref.plan, 3, seed=2)
    sa = ref.relax(ref.zero_state(x), 300, "async")
    ss = ref.relax(ref.zero_state(x), 600, "sync")
    assert max(max_diff(a, b) for a, b in zip(sa, ss, strict=True)) < 1e-8


def _phases(b, s, t, o):
    return {
        "free": b.relax(s, 25),
        "sync": b.relax(s, 25, "sync"),
        "nudge+": b.relax(s, 15, beta=0.25, target=t),
        "nudge-": b.relax(s, 15, beta=-0.25, target=t),
        "clamp": b.relax(s, 15, clamp=o),
    }


@pytest.mark.parametrize("circuit,over", CIRCUITS + [("dchn32", {"width": 0.125})])
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-5)])
@pytest.mark.parametrize("fast", FAST_BACKENDS)
def test_fast_backend_equals_reference_in_every_phase(circuit, over, dtype, tol, fast):
    ref, tor = backend_pair(circuit, dtype, seed=3, fast=fast, **over)
    x, y = random_batch(ref.plan, 3, seed=4)
    o = np.random.default_rng(1).normal(size=(3, 10))
    pr = _phases(ref, ref.relax(ref.zero_state(x), 10), ref.one_hot(y), ref.asarray(o))
    pt = _phases(tor, tor.relax(tor.zero_state(x), 10), tor.one_hot(y), tor.asarray(o))
    for name in pr:
        for k, (a, b) in enumerate(zip(pr[name], pt[name], strict=True)):
            assert max_diff(a, tor.to_numpy(b)) < tol, (name, k)
    er = ref.energy(pr["free"])
    et = tor.to_numpy(tor.energy(pt["free"]))
    assert max_diff(er, et) < tol * max(1.0, np.abs(er).max())


def test_bad_inputs_are_rejected():
    ref, _ = backend_pair("tiny_conv", "float64")
    with pytest.raises(ValueError, match="does not fit"):
        ref.zero_state(np.zeros((2, 3, 8, 8)))
    x, y = random_batch(ref.plan, 2)
    with pytest.raises(ValueError, match="beta"):
        ref.relax(ref.zero_state(x), 1, beta=-1.5, target=ref.one_hot(y))
    with pytest.raises(ValueError, match="labels"):
        ref.one_hot(np.array([0, 10]))
