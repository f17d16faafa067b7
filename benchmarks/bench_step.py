"""Throughput of one training step (or a free relaxation) against this machine's GEMM peak.

    python benchmarks/bench_step.py --circuit dchn32 --width 0.25 --batch 32 --rule c_ep \
        --backend numba --json
    python benchmarks/bench_step.py --circuit dhn_deep --batch 256 --phase relax --backend numba

``--phase step``: one C-EP (or other rule) training step = ``--free`` free iterations from the
warm state, the rule's two nudged phases of ``--nudge`` iterations, and the update.
``--phase relax``: ``--free`` free iterations from the zero state.

FLOPs are counted from the equations: per iteration every coupling costs one forward product
``T(s_pre)`` and one adjoint product ``T^*(s_post)`` (2 FLOPs per multiply-add), except that
the product with the clamped input ``T_1(x)`` is computed once per phase; the update costs one
correlation per coupling and state. The GEMM peak is measured in the same run: the best of
NumPy's BLAS and torch's float32 ``A @ B`` at 2048x2048 with the same thread count.
``--threads auto`` (the default) is what a study run gets: the cores not busy when it starts.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analogebl.backends import make_backend  # noqa: E402
from analogebl.circuit import load_circuit  # noqa: E402
from analogebl.learning import SGD, layer_learning_rates, make_rule  # noqa: E402
from analogebl.learning.estimators import estimate  # noqa: E402
from analogebl.plan import build_plan  # noqa: E402
from analogebl.threads import resolve_threads, set_threads  # noqa: E402


def coupling_flops(plan) -> list[float]:
    """Multiply-add FLOPs (x2) of one forward product of each coupling, per example."""
    out = []
    for c in plan.couplings:
        pre = int(np.prod(plan.layer_shapes[c.pre]))
        if c.kind == "dense":
            out.append(2.0 * pre * int(np.prod(plan.layer_shapes[c.post])))
        else:
            o_ch = plan.layer_shapes[c.post][0]
            out.append(2.0 * pre * o_ch * c.kernel_size**2)  # stride 1, 'same' padding
    return out


def step_flops(plan, free: int, nudge_phases: int, nudge: int, phase: str) -> float:
    f = coupling_flops(plan)
    per_iter = 2 * sum(f[1:])  # T_1(x) is fixed within a phase, T_1^* never needed
    phases = 1 if phase == "relax" else 1 + nudge_phases
    iters = free if phase == "relax" else free + nudge_phases * nudge
    total = iters * per_iter + phases * f[0]
    if phase == "step":
        total += 2 * sum(f)  # two correlations per coupling
    return total


def gemm_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GEMM rate of the machine's libraries (NumPy's BLAS, torch's MKL)."""
    import torch

    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    best = np.inf
    for mm in (np.dot, torch.mm):
        x, y = (ta, tb) if mm is torch.mm else (a, b)
        mm(x, y)
        for _ in range(repeats):
            t = time.perf_counter()
            mm(x, y)
            best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--circuit", default="dchn32")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument(
        "--in-channels",
        type=int,
        default=None,
        help="default: 3 for conv circuits (CIFAR), the file's value otherwise",
    )
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rule", default="c_ep")
    p.add_argument("--beta", type=float, default=0.25)
    p.add_argument("--backend", default="numba")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--device", default=None)
    p.add_argument("--phase", choices=("step", "relax"), default="step")
    p.add_argument("--free", type=int, default=60)
    p.add_argument("--nudge", type=int, default=15)
    p.add_argument("--steps", type=int, default=5, help="timed repetitions")
    p.add_argument(
        "--threads",
        default="auto",
        help="thread budget: N, or auto (the cores not busy when it starts)",
    )
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    threads = set_threads(resolve_threads(a.threads))

    circuit = load_circuit(a.circuit, width=a.width)
    if a.in_channels is not None or len(circuit.layers[0].shape) == 3:
        circuit = load_circuit(a.circuit, width=a.width, in_channels=a.in_channels or 3)
    plan = build_plan(circuit, seed=0)
    backend = make_backend(a.backend, plan, a.dtype, a.device)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(a.batch, *plan.layer_shapes[0])).astype(a.dtype)
    y = rng.integers(0, plan.layer_shapes[-1][0], size=a.batch)
    rule = make_rule(a.rule, a.beta, a.nudge)
    opt = SGD(layer_learning_rates(list(backend.params), 0.01), momentum=0.9)
    target = backend.one_hot(y)

    warm = backend.relax(backend.zero_state(x), a.free)

    def once():
        nonlocal warm
        if a.phase == "relax":
            s = backend.relax(backend.zero_state(x), a.free)
            backend.to_numpy(s[-1])
            return
        start = [backend.input_array(x), *warm[1:]]
        free = backend.relax(start, a.free)
        grads, last = estimate(backend, rule, free, target, "async")
        opt.step(backend.params, grads)
        warm = last
        backend.to_numpy(last[-1])

    once()  # JIT / allocator warm-up
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    dt = float(np.median(times))
    nudge_phases = 2 if a.rule in ("c_ep", "c_cpl") else 1
    flops = a.batch * step_flops(plan, a.free, nudge_phases, a.nudge, a.phase)
    gflops = flops / dt / 1e9
    peak = gemm_peak_gflops()
    res = {
        "circuit": a.circuit,
        "width": a.width,
        "batch": a.batch,
        "backend": a.backend,
        "dtype": a.dtype,
        "threads": threads,
        "phase": a.phase,
        "rule": a.rule if a.phase == "step" else None,
        "seconds": dt,
        "samples_per_s": a.batch / dt,
        "gflops": gflops,
        "gemm_peak_gflops": peak,
        "peak_fraction": gflops / peak,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if a.json:
        print(json.dumps(res))
    else:
        print(
            f"{a.circuit} x{a.width} batch {a.batch} {a.phase} on {a.backend} ({a.dtype}): "
            f"{res['samples_per_s']:.1f} samples/s, {gflops:.1f} GFLOP/s counted, "
            f"GEMM peak {peak:.1f} GFLOP/s -> {100 * res['peak_fraction']:.1f} %, "
            f"peak RSS {res['peak_rss_mb']:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
