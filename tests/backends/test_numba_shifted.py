"""Shifted-GEMM convolutions (numba backend) against the NumPy reference and against im2col."""

import numpy as np
import pytest

from analogebl.backends import make_backend
from analogebl.backends.numba import kernels as K
from analogebl.backends.numba import shifted as S
from analogebl.backends.reference import ReferenceBackend
from analogebl.circuit import load_circuit
from analogebl.plan import build_plan
from tests.conftest import random_batch

pytestmark = pytest.mark.skipif(not S.AVAILABLE, reason="NumPy's OpenBLAS ?gemm not found")

REF = ReferenceBackend.__new__(ReferenceBackend)  # its op_conv* use no state


def _on_grid(a, g):
    buf = np.zeros((a.shape[1], g.padded), dtype=a.dtype)
    K.swap01(np.ascontiguousarray(a), g.padded_images(buf))
    return buf


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize(
    "n, c, o, h, w, k",
    [(3, 5, 4, 6, 7, 3), (2, 16, 8, 4, 4, 3), (2, 3, 2, 5, 5, 5), (1, 2, 3, 1, 1, 3),
     (4, 7, 5, 2, 9, 3)],
)  # fmt: skip
def test_grid_products_match_the_reference(n, c, o, h, w, k, dtype, tol):
    """Forward, adjoint and correlation on the shared-padding grid equal the definitions
    (``op_conv``, ``op_conv_t``, ``op_conv_corr`` of the reference) for 'same' kernels of
    size 3 and 5, non-square images, one image and 1x1 images (every tap in the padding)."""
    rng = np.random.default_rng(n * 100 + c * 10 + k)
    p = (k - 1) // 2
    g = S.Grid(n, h, w, p)
    s, z = rng.normal(size=(n, c, h, w)), rng.normal(size=(n, o, h, w))
    wt = rng.normal(size=(o, c, k, k))
    x, u = _on_grid(s.astype(dtype), g), _on_grid(z.astype(dtype), g)
    wd = wt.astype(dtype)

    fwd = np.empty((o, g.body), dtype=dtype)
    S.conv(x, S.taps(wd), g, fwd)
    adj = np.empty((c, g.body), dtype=dtype)
    S.conv_t(u, S.taps(wd), g, adj)
    corr = S.conv_corr(u, x, g, k)

    want = (REF.op_conv(s, wt, p), REF.op_conv_t(z, wt, p), REF.op_conv_corr(s, z, p, k))
    got = (np.moveaxis(g.images(fwd), 0, 1), np.moveaxis(g.images(adj), 0, 1), corr)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


def test_grid_adjoint_is_the_transpose_of_the_forward_product():
    rng = np.random.default_rng(3)
    g = S.Grid(2, 5, 6, 1)
    s, z = rng.normal(size=(2, 16, 5, 6)), rng.normal(size=(2, 8, 5, 6))
    w = rng.normal(size=(8, 16, 3, 3))
    fwd, adj = np.empty((8, g.body)), np.empty((16, g.body))
    S.conv(_on_grid(s, g), S.taps(w), g, fwd)
    S.conv_t(_on_grid(z, g), S.taps(w), g, adj)
    lhs = np.vdot(np.moveaxis(g.images(fwd), 0, 1), z)
    rhs = np.vdot(s, np.moveaxis(g.images(adj), 0, 1))
    assert abs(lhs - rhs) < 1e-10 * abs(lhs)


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-10), ("float32", 2e-4)])
def test_backend_relaxation_and_gradients_match_im2col(monkeypatch, dtype, tol):
    """A DCHN whose layers 2-4 have >= MIN_CHANNELS inputs takes the shifted path for them;
    relaxation states and parameter gradients equal the im2col path's to rounding."""
    plan = build_plan(load_circuit("dchn32", in_channels=1, width=0.125), 0)
    assert [plan.layer_shapes[c.pre][0] for c in plan.couplings if c.kind == "conv"] == [
        1, 16, 32, 64
    ]  # fmt: skip
    x, _ = random_batch(plan, 3, seed=2)
    runs = []
    for min_channels in (S.MIN_CHANNELS, 10**9):  # the shifted path, then im2col only
        monkeypatch.setattr(S, "MIN_CHANNELS", min_channels)
        b = make_backend("numba", plan, dtype)
        st = b.relax(b.zero_state(x), 12)
        runs.append([b.to_numpy(v) for v in st] + list(b.param_grads(st).values()))
    for a, c in zip(*runs, strict=True):
        np.testing.assert_allclose(a, c, rtol=tol, atol=tol * max(1.0, np.abs(c).max()))


def test_the_first_layer_and_non_same_kernels_keep_im2col():
    """Few input channels or a kernel that is not 'same' (k != 2p + 1): no grid."""
    grid = make_backend("numba", build_plan(load_circuit("tiny_conv"), 0), "float32")._grid
    assert grid((2, 1, 8, 8), 1, 3) is None  # one input channel
    assert grid((2, 32, 8, 8), 0, 3) is None  # 'valid' convolution
    assert grid((2, 32, 8, 8), 1, 3) == S.Grid(2, 8, 8, 1)
