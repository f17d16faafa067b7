"""Whole relaxation phases of a dense circuit compiled as one numba call.

The engine (:meth:`analogebl.backends.relaxation.RelaxationMixin.relax`) drives a phase
from Python one primitive at a time: every half-step of every iteration is a few GEMMs, a
bias add and a clip, each a Python-level call. On a small circuit or at a small batch that
overhead is most of the time. :func:`relax_dense` runs all ``iterations`` sweeps of the
schedule's groups in one compiled loop over preallocated field buffers (BLAS GEMMs through
numba's ``np.dot``), with the same equations, order of updates and order of additions as the
engine, so it matches the generic path to rounding.

It applies (:func:`relax_phase`) to circuits whose couplings are all dense, on a backend
with no hardware effect in force (quantizers, read noise, tile reads, node clamps, a
nudging-current source), while the loop's products are small (below
:data:`analogebl.threads.SMALL_OP_MACS`, where BLAS runs them on one thread): there the
Python calls are the cost. Larger products run on the engine, whose threaded GEMMs (NumPy's
BLAS, a thread count per product) were 3-8 % faster than the compiled loop's
(``dhn_deep`` at batch 256: 430 vs 400 samples/s); anything else runs on the engine too.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS numba's np.dot calls)

from analogebl import threads as T
from analogebl.backends.numba.kernels import _opts
from analogebl.plan import NUDGES

__all__ = ["OUT_EXACT", "OUT_FREE", "OUT_STEP", "applies", "relax_dense", "relax_phase"]

#: how the output moves (``out_mode`` of :func:`relax_dense`)
OUT_FREE, OUT_EXACT, OUT_STEP = 0, 1, 2

T.refresh_blas()  # scipy's BLAS, loaded just above, follows the thread policy too


@nb.njit(**_opts)
def relax_dense(
    drive, states, weights, biases, target, order, bounds, iterations, out_mode, beta, inv1pb
):
    """Run ``iterations`` iterations of a dense circuit's schedule, updating ``states`` in place.

    Parameters
    ----------
    drive : (N, n_1)
        ``T_1(x) = x W_1``, the input drive (computed once per phase, as the engine does).
    states : tuple of (N, n_k), k = 1..L
        The layers above the input (C-contiguous, one dtype); ``states[k-1]`` is ``s_k``
        and ``s_L = o`` the output. The layers named in ``order`` are overwritten.
    weights, biases : tuples of (n_{k-1}, n_k) and (n_k,)
        ``W_k`` and ``b_k``, k = 1..L.
    target : (N, n_L)
        ``y`` (read only under a nudge).
    order, bounds : int64
        The schedule's groups: group ``g`` is ``order[bounds[g]:bounds[g+1]]`` (layer
        indices 1..L); groups run in order, each from the state the previous one left.
    out_mode : int
        :data:`OUT_FREE`, :data:`OUT_EXACT` or :data:`OUT_STEP`.
    beta, inv1pb : scalars of the states' dtype
        ``beta`` and ``1 / (1 + beta)``.

    Notes
    -----
    Every layer of a group is updated from the state before the group (all fields first,
    then all activations), with

    * field   ``h_k = (s_{k-1} W_k + b_k) + s_{k+1} W_{k+1}^T``  (no second term for ``k = L``;
      ``s_0 W_1`` is ``drive``)
    * hidden  ``s_k <- clip(h_k, 0, 1)``
    * output  free: ``o <- h_L``; exact nudge: ``o <- (h_L + beta*y) * (1/(1 + beta))``;
      step nudge: ``o <- h_L - beta*(o - y)`` (``o`` before the group).

    A clamped output is simply left out of ``order``.
    """
    n = drive.shape[0]
    num = len(states)
    offs = np.zeros(num + 1, np.int64)
    for k in range(num):
        offs[k + 1] = offs[k] + n * states[k].shape[1]
    fbuf = np.empty(offs[num], dtype=drive.dtype)  # s_{k-1} W_k (k >= 2)
    ubuf = np.empty(offs[num], dtype=drive.dtype)  # s_{k+1} W_{k+1}^T (k < L)
    for _ in range(iterations):
        for g in range(bounds.size - 1):
            for p in range(bounds[g], bounds[g + 1]):
                k = order[p]
                width = states[k - 1].shape[1]
                if k > 1:
                    f = fbuf[offs[k - 1] : offs[k]].reshape(n, width)
                    np.dot(states[k - 2], weights[k - 1], f)
                if k < num:
                    u = ubuf[offs[k - 1] : offs[k]].reshape(n, width)
                    np.dot(states[k], weights[k].T, u)
            for p in range(bounds[g], bounds[g + 1]):
                k = order[p]
                s = states[k - 1]
                width = s.shape[1]
                f = drive if k == 1 else fbuf[offs[k - 1] : offs[k]].reshape(n, width)
                b = biases[k - 1]
                if k < num:
                    u = ubuf[offs[k - 1] : offs[k]].reshape(n, width)
                    for i in range(n):
                        for j in range(width):
                            v = (f[i, j] + b[j]) + u[i, j]
                            if v < 0.0:
                                v = 0.0
                            elif v > 1.0:
                                v = 1.0
                            s[i, j] = v
                elif out_mode == OUT_FREE:
                    for i in range(n):
                        for j in range(width):
                            s[i, j] = f[i, j] + b[j]
                elif out_mode == OUT_EXACT:
                    for i in range(n):
                        for j in range(width):
                            s[i, j] = ((f[i, j] + b[j]) + beta * target[i, j]) * inv1pb
                else:
                    for i in range(n):
                        for j in range(width):
                            s[i, j] = (f[i, j] + b[j]) - beta * (s[i, j] - target[i, j])


def applies(backend) -> bool:
    """Whether ``backend``'s circuit and hardware-effect state allow the compiled phase:
    dense couplings only, 1-D layers, no quantizer, read noise, tile reads, node clamp or
    nudging-current source."""
    plan = backend.plan
    return (
        all(c.kind == "dense" for c in plan.couplings)
        and all(len(s) == 1 for s in plan.layer_shapes[1:])
        and backend._quant is None
        and backend._noise is None
        and backend._tiles is None
        and backend._clamps is None
        and backend._nudge_src is None
        and backend._read is None
    )


def _fits(a, dtype, shape) -> bool:
    return isinstance(a, np.ndarray) and a.dtype == dtype and a.shape == shape


def relax_phase(backend, state, iterations, schedule, beta, target, clamp, nudge):
    """:meth:`RelaxationMixin.relax` as one compiled call, or ``None`` where it does not
    apply (the caller then runs the engine, which also raises on bad arguments).

    Returns a new list: the input and a clamp are the objects passed in, every relaxed
    layer a new array (``state`` is not modified). The input drive ``x W_1`` is one product
    on the backend's own GEMM (threads chosen by its size); the loop's GEMMs all run on the
    thread count of the largest of them (:mod:`analogebl.threads`).
    """
    plan = backend.plan
    if iterations < 1 or nudge not in NUDGES or not applies(backend):
        return None
    if beta != 0.0 and (target is None or beta <= -1.0):
        return None
    dt = backend._np_dtype
    num = plan.num_layers - 1
    x = state[0]
    if len(state) != num + 1 or not isinstance(x, np.ndarray) or x.dtype != dt or x.ndim < 1:
        return None
    n = x.shape[0]
    widths = [s[0] for s in plan.layer_shapes]
    if n < 1 or x.size != n * widths[0]:
        return None
    last = state[-1] if clamp is None else clamp
    if not all(_fits(s, dt, (n, widths[k])) for k, s in enumerate(state[1:-1], 1)):
        return None
    if not _fits(last, dt, (n, widths[-1])):
        return None
    mode = OUT_FREE
    if beta != 0.0:
        if not _fits(target, dt, (n, widths[-1])):
            return None
        mode = OUT_STEP if nudge == "step" else OUT_EXACT
    loop_macs = max((n * widths[k - 1] * widths[k] for k in range(2, num + 1)), default=0)
    if loop_macs >= T.SMALL_OP_MACS:
        return None  # threaded GEMMs: the engine's are faster (module docstring)
    groups = plan.groups(schedule, clamp_output=clamp is not None)
    order = np.array([k for g in groups for k in g], dtype=np.int64)
    bounds = np.cumsum([0] + [len(g) for g in groups], dtype=np.int64)

    params = backend.params
    weights = tuple(np.ascontiguousarray(params[c.name]) for c in plan.couplings)
    biases = tuple(np.ascontiguousarray(params[plan.bias_names[k]]) for k in range(1, num + 1))
    if any(w.dtype != dt for w in weights) or any(b.dtype != dt for b in biases):
        return None
    drive = backend.op_matmul(np.ascontiguousarray(x).reshape(n, -1), weights[0])
    new = [np.array(s, dtype=dt, order="C", copy=True) for s in state[1:-1]]
    new.append(np.ascontiguousarray(last) if clamp is not None else np.array(last, order="C"))
    tgt = np.ascontiguousarray(target) if mode != OUT_FREE else np.zeros((0, 0), dt)
    T.for_macs(loop_macs)
    relax_dense(
        drive, tuple(new), weights, biases, tgt, order, bounds, int(iterations), mode,
        dt.type(beta), dt.type(1.0 / (1.0 + beta)),
    )  # fmt: skip
    return [x, *new[:-1], clamp if clamp is not None else new[-1]]
