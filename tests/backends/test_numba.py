"""Numba kernels against slow NumPy definitions; thread-count independence; auto choice."""

import numba
import numpy as np
import pytest

from analogebl.backends import auto_backend, make_backend
from analogebl.backends.numba import kernels as K
from analogebl.circuit import load_circuit
from analogebl.plan import build_plan
from tests.conftest import max_diff, random_batch

SHAPES = [
    ((4, 5, 16, 16), 1, 3),
    ((3, 2, 5, 7), 1, 3),
    ((2, 3, 6, 5), 0, 3),
    ((2, 2, 5, 5), 2, 5),
    ((2, 3, 1, 1), 1, 3),
]


def _im2col_slow(s, pad, k):
    n, c, h, w = s.shape
    ho, wo = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    sp = np.pad(s, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.zeros((c * k * k, n * ho * wo))
    for ci in range(c):
        for di in range(k):
            for dj in range(k):
                cols[(ci * k + di) * k + dj] = sp[:, ci, di : di + ho, dj : dj + wo].ravel()
    return cols


@pytest.mark.parametrize("shape,pad,k", SHAPES)
def test_im2col_and_col2im_match_definitions_and_are_adjoint(shape, pad, k):
    rng = np.random.default_rng(0)
    s = rng.normal(size=shape)
    n, c, h, w = shape
    ho, wo = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    cols = np.full((c * k * k, n * ho * wo), np.nan)
    K.im2col(s, pad, k, cols)
    assert max_diff(cols, _im2col_slow(s, pad, k)) == 0
    g = rng.normal(size=cols.shape)
    out = np.full(shape, np.nan)
    K.col2im(g.copy(), pad, k, ho, wo, out)  # col2im may zero structural entries of g
    assert abs(np.vdot(cols, g) - np.vdot(s, out)) < 1e-10 * np.abs(g).sum()


def test_results_do_not_depend_on_thread_count():
    plan = build_plan(load_circuit("tiny_conv"), 0)
    b = make_backend("numba", plan, "float32")
    x, y = random_batch(plan, 5, seed=1)
    runs = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        s = b.relax(b.zero_state(x), 20)
        runs.append([b.to_numpy(v) for v in s] + list(b.param_grads(s).values()))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert all(np.array_equal(a, c) for a, c in zip(*runs, strict=True))


def test_auto_backend_choice():
    dense = build_plan(load_circuit("tiny_dense"), 0)
    conv = build_plan(load_circuit("tiny_conv"), 0)
    import torch

    if not torch.cuda.is_available():
        assert auto_backend(dense) == ("numba", None)
        assert auto_backend(conv) == ("torch", "cpu")
        assert make_backend("auto", dense).name == "numba"
    assert auto_backend(dense, "cpu")[0] == "numba"
    assert auto_backend(conv, "cuda:0") == ("torch", "cuda:0")
