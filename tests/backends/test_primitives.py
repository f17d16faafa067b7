"""Fast-backend (torch, numba) primitives against the NumPy reference; adjoint identities."""

import numpy as np
import pytest

from tests.conftest import FAST_BACKENDS, backend_pair, max_diff


@pytest.fixture(scope="module", params=FAST_BACKENDS)
def pair(request):
    return backend_pair("tiny_conv", "float64", fast=request.param)


def test_conv_and_adjoints_match_and_are_adjoint(pair):
    ref, tor = pair
    rng = np.random.default_rng(0)
    s = rng.normal(size=(3, 4, 6, 6))
    w = rng.normal(size=(5, 4, 3, 3))
    z = rng.normal(size=(3, 5, 6, 6))
    zr = ref.op_conv(s, w, 1)
    assert max_diff(zr, tor.to_numpy(tor.op_conv(tor.asarray(s), tor.asarray(w), 1))) < 1e-12
    # direct triple loop for one output element
    sp = np.pad(s, ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert abs(zr[1, 2, 3, 4] - np.sum(w[2] * sp[1, :, 3:6, 4:7])) < 1e-12
    gt = ref.op_conv_t(z, w, 1)
    assert max_diff(gt, tor.to_numpy(tor.op_conv_t(tor.asarray(z), tor.asarray(w), 1))) < 1e-12
    assert abs(np.vdot(zr, z) - np.vdot(s, gt)) < 1e-9  # <conv s, z> = <s, conv_T z>
    dw = ref.op_conv_corr(s, z, 1, 3)
    dwt = tor.op_conv_corr(tor.asarray(s), tor.asarray(z), 1, 3)
    assert max_diff(dw, tor.to_numpy(dwt)) < 1e-12
    # d<z, conv(w, s)>/dw, by linearity in w
    assert abs(np.vdot(dw, w) - np.vdot(z, zr)) < 1e-9


def test_pooling_matches_and_unpool_is_adjoint(pair):
    ref, tor = pair
    rng = np.random.default_rng(1)
    z = rng.normal(size=(2, 3, 4, 6))
    p, idx = ref.op_pool_max(z)
    pt, idxt = tor.op_pool_max(tor.asarray(z))
    assert max_diff(p, tor.to_numpy(pt)) == 0
    assert np.allclose(p, z.reshape(2, 3, 2, 2, 3, 2).max(axis=(3, 5)))
    q = rng.normal(size=p.shape)
    u = ref.op_unpool_max(q, idx)
    assert max_diff(u, tor.to_numpy(tor.op_unpool_max(tor.asarray(q), idxt))) == 0
    assert abs(np.vdot(ref.op_pool_at(z, idx), q) - np.vdot(z, u)) < 1e-12
    assert max_diff(ref.op_pool_at(z, idx), p) == 0
    # ties resolve to the first maximum in row-major order in both backends
    zt = np.zeros((1, 1, 2, 2))
    assert ref.op_pool_max(zt)[1].item() == 0
    assert ref.op_unpool_max(np.ones((1, 1, 1, 1)), ref.op_pool_max(zt)[1])[0, 0, 0, 0] == 1
    assert (
        tor.to_numpy(
            tor.op_unpool_max(
                tor.asarray(np.ones((1, 1, 1, 1))), tor.op_pool_max(tor.asarray(zt))[1]
            )
        )[0, 0, 0, 0]
        == 1
    )
    a = ref.op_pool_avg(z)
    assert max_diff(a, tor.to_numpy(tor.op_pool_avg(tor.asarray(z)))) < 1e-14
    assert abs(np.vdot(a, q) - np.vdot(z, ref.op_unpool_avg(q))) < 1e-12
