"""The numba backend's two convolution paths: im2col + one GEMM against shifted GEMMs.

    python benchmarks/bench_conv_paths.py
    python benchmarks/bench_conv_paths.py --width 0.25 --batch 32,128 --json

A 'same' convolution with at least ``shifted.MIN_CHANNELS`` input channels runs as one GEMM
per kernel tap on the shared-padding grid (:mod:`analogebl.backends.numba.shifted`), the
others as im2col + one GEMM. For each conv coupling of ``dchn32`` that takes the shifted
path this times the backend's forward, adjoint and correlation products both ways (float32,
interleaved, best of ``--rounds``), then a whole C-EP training step (60 + 2 x 15
iterations) both ways. Both paths are checked against each other in float64 first (1e-10).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analogebl.backends.numba import NumbaBackend  # noqa: E402
from analogebl.backends.numba import shifted as S  # noqa: E402
from analogebl.circuit import load_circuit  # noqa: E402
from analogebl.learning import SGD, layer_learning_rates, make_rule  # noqa: E402
from analogebl.network import Network  # noqa: E402
from analogebl.plan import build_plan  # noqa: E402
from analogebl.threads import resolve_threads, set_threads  # noqa: E402
from analogebl.training import IdealUpdater  # noqa: E402

PATHS = {"im2col": 10**9, "shifted": S.MIN_CHANNELS}  # MIN_CHANNELS that selects each path


def _best(fn, rounds: int, min_time: float) -> float:
    """Best seconds per call over ``rounds`` rounds of at least ``min_time`` seconds."""
    fn()
    best = np.inf
    for _ in range(rounds):
        n, t0 = 0, time.perf_counter()
        while (dt := time.perf_counter() - t0) < min_time or n == 0:
            fn()
            n += 1
        best = min(best, dt / n)
    return best


def _products(be, s, z, w, p):
    return (
        lambda: be._conv_raw(s, w, p),
        lambda: be.op_conv_t(z, w, p),
        lambda: be.op_conv_corr(s, z, p, w.shape[-1]),
    )


def products(width: float, batch: int, rounds: int, min_time: float) -> list[dict]:
    """ms per forward / adjoint / correlation of every coupling the shifted path takes."""
    plan = build_plan(load_circuit("dchn32", in_channels=3, width=width), 0)
    rng = np.random.default_rng(0)
    rows = []
    for c in plan.couplings:
        if c.kind != "conv" or plan.layer_shapes[c.pre][0] < S.MIN_CHANNELS:
            continue
        ci, h, wd = plan.layer_shapes[c.pre]
        w = rng.normal(size=plan.parameters[c.name].shape) / np.sqrt(9 * ci)
        s, z = rng.random((batch, ci, h, wd)), rng.normal(size=(batch, w.shape[0], h, wd))
        got = {}
        for path, m in PATHS.items():  # float64: the two paths agree
            S.MIN_CHANNELS = m
            got[path] = [np.asarray(f()) for f in _products(NumbaBackend(plan, "float64"),
                                                             s, z, w, c.padding)]  # fmt: skip
        for a, b in zip(got["im2col"], got["shifted"], strict=True):
            assert np.abs(a - b).max() <= 1e-10 * max(1.0, np.abs(a).max()), c.name
        row = {"coupling": c.name, "in": [ci, h, wd], "out": int(w.shape[0])}
        be = NumbaBackend(plan, "float32")
        s32, z32, w32 = (a.astype(np.float32) for a in (s, z, w))
        times = {path: [] for path in PATHS}
        for _ in range(rounds):  # interleaved: load from other processes hits both alike
            for path, m in PATHS.items():
                S.MIN_CHANNELS = m
                times[path].append([_best(f, 1, min_time) for f in
                                    _products(be, s32, z32, w32, c.padding)])  # fmt: skip
        for path in PATHS:
            row[path] = [1e3 * min(t[i] for t in times[path]) for i in range(3)]
        rows.append(row)
    S.MIN_CHANNELS = PATHS["shifted"]
    return rows


def step(width: float, batch: int, rounds: int) -> dict:
    """samples/s of a C-EP step (60 + 2 x 15 iterations, SGD) on each path."""
    rng = np.random.default_rng(0)
    x = rng.random((batch, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    net = Network.from_catalog("dchn32", in_channels=1, width=width, backend="numba",
                               gains=[0.7] * 5, seed=0)  # fmt: skip
    opt = SGD(layer_learning_rates(list(net.parameters()), 0.05), 0.9)
    up, rule = IdealUpdater(opt), make_rule("c_ep", 0.25, 15)
    net.train_step(x, y, rule, up, 60)  # compile, allocate
    best = {path: 0.0 for path in PATHS}
    for _ in range(rounds):
        for path, m in PATHS.items():
            S.MIN_CHANNELS = m
            t0 = time.perf_counter()
            net.train_step(x, y, rule, up, 60)
            best[path] = max(best[path], batch / (time.perf_counter() - t0))
    S.MIN_CHANNELS = PATHS["shifted"]
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=float, default=0.25, help="dchn32 channel multiplier")
    ap.add_argument("--batch", default="32", help="batch sizes, comma-separated")
    ap.add_argument("--threads", default="auto")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds per timed round")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if not S.AVAILABLE:
        print("NumPy's OpenBLAS ?gemm was not found: every convolution takes im2col here")
        return 2
    set_threads(resolve_threads(a.threads))
    out = []
    for batch in (int(b) for b in a.batch.split(",")):
        rows = products(a.width, batch, a.rounds, a.min_time)
        out.append({"batch": batch, "products_ms": rows,
                    "step_samples_per_s": step(a.width, batch, a.rounds)})  # fmt: skip
    if a.json:
        print(json.dumps({"width": a.width, "results": out}))
        return 0
    for res in out:
        print(f"dchn32 x{a.width} batch {res['batch']}, float32, ms per forward / adjoint / "
              "correlation (best of rounds):")  # fmt: skip
        for r in res["products_ms"]:
            cells = "   ".join(f"{p} " + "/".join(f"{v:.2f}" for v in r[p]) for p in PATHS)
            print(f"  {r['coupling']:>3} {r['in']} -> {r['out']:>3}:  {cells}")
        st = res["step_samples_per_s"]
        print("  C-EP step: " + ", ".join(f"{p} {v:.1f}" for p, v in st.items())
              + f" samples/s ({st['shifted'] / st['im2col']:.2f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
