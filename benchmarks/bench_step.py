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

``--project c_ep_cifar100`` measures the study's full-tier network (circuit, width, gains,
batch, iterations, rule) and projects its run's wall time: per epoch ``ceil(train / batch)``
steps plus a free relaxation of the test set; ``--dtype float32,bfloat16`` gives one row per
dtype, ``--device cuda --backend torch`` the GPU's:

    python benchmarks/bench_step.py --project c_ep_cifar100 --backend torch --device cuda \
        --dtype float32,bfloat16,float16
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


#: official train / test split sizes and classes of the datasets a projection may name
SPLITS = {
    "mnist": (60_000, 10_000, 10),
    "fmnist": (60_000, 10_000, 10),
    "cifar10": (50_000, 10_000, 10),
    "cifar100": (50_000, 10_000, 100),
    "svhn": (73_257, 26_032, 10),
}


def measure(a, dtype: str) -> dict:
    """Seconds per step (or free relaxation) and per free relaxation of ``a.batch`` examples
    on ``a.backend`` in ``dtype``."""
    circuit = load_circuit(a.circuit, width=a.width, **a.circuit_kw)
    if a.in_channels is not None or len(circuit.layers[0].shape) == 3:
        circuit = load_circuit(
            a.circuit, width=a.width, in_channels=a.in_channels or 3, **a.circuit_kw
        )
    plan = build_plan(circuit, seed=0)
    backend = make_backend(a.backend, plan, dtype, a.device)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(a.batch, *plan.layer_shapes[0])).astype(np.float32)
    y = rng.integers(0, plan.layer_shapes[-1][0], size=a.batch)
    rule = make_rule(a.rule, a.beta, a.nudge)
    opt = SGD(layer_learning_rates(list(backend.params), 0.01), momentum=0.9)
    target = backend.one_hot(y)

    warm = backend.relax(backend.zero_state(x), a.free)

    def relax():
        s = backend.relax(backend.zero_state(x), a.free)
        backend.to_numpy(s[-1])

    def step():
        nonlocal warm
        start = [backend.input_array(x), *warm[1:]]
        free = backend.relax(start, a.free)
        grads, last = estimate(backend, rule, free, target, "async")
        opt.step(backend.params, grads)
        warm = last
        backend.to_numpy(last[-1])

    def timed(fn, reps):
        fn()  # JIT / allocator / cuDNN warm-up
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    out = {"seconds": timed(relax if a.phase == "relax" else step, a.steps)}
    if a.project:
        out["relax_seconds"] = out["seconds"] if a.phase == "relax" else timed(relax, 2)
    return out | {"plan": plan}


def project(a, step_s: float, relax_s: float) -> dict:
    """Wall time of the study's ``a.project`` run: every epoch ``ceil(train / batch)``
    training steps and a free relaxation of the test set (at the measured per-example
    relaxation cost)."""
    train, test, _ = SPLITS[a.spec.data.dataset]
    train = a.spec.data.train_subset or train
    test = a.spec.data.test_subset or test
    steps = -(-train // a.batch)
    epoch = steps * step_s + test * relax_s / a.batch
    return {
        "study": a.project,
        "epochs": a.spec.epochs,
        "steps_per_epoch": steps,
        "epoch_seconds": epoch,
        "projected_hours": a.spec.epochs * epoch / 3600.0,
    }


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
    p.add_argument(
        "--dtype", default="float32", help="one dtype or several, comma-separated (one row each)"
    )
    p.add_argument("--device", default=None)
    p.add_argument("--phase", choices=("step", "relax"), default="step")
    p.add_argument("--free", type=int, default=60)
    p.add_argument("--nudge", type=int, default=15)
    p.add_argument("--steps", type=int, default=5, help="timed repetitions")
    p.add_argument(
        "--project",
        metavar="STUDY",
        help="measure the circuit, width, gains, batch and iterations of STUDY's full tier "
        "and project the wall time of its run (e.g. c_ep_cifar100)",
    )
    p.add_argument(
        "--threads",
        default="auto",
        help="thread budget: N, or auto (the cores not busy when it starts)",
    )
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    threads = set_threads(resolve_threads(a.threads))
    a.circuit_kw = {}
    if a.project:
        from analogebl.spec import RunSpec
        from analogebl.study.config import load_study

        run = load_study(a.project, "full").runs()[0]
        a.spec = RunSpec.from_flat(run.as_dict(), study=a.project, tier="full", run_id="run")
        c = a.spec.circuit
        a.circuit, a.width, a.batch = c.name, c.width or 1.0, a.spec.data.batch_size
        a.free, a.nudge = a.spec.relaxation.free_iterations, a.spec.rule.iterations
        a.rule, a.beta, a.phase = a.spec.rule.name, a.spec.rule.beta, "step"
        a.circuit_kw["num_classes"] = SPLITS[a.spec.data.dataset][2]
        if c.gains is not None:
            a.circuit_kw["gains"] = list(c.gains)
    peak = gemm_peak_gflops()
    for dtype in a.dtype.split(","):
        m = measure(a, dtype)
        plan, dt = m["plan"], m["seconds"]
        nudge_phases = 2 if a.rule in ("c_ep", "c_cpl") else 1
        flops = a.batch * step_flops(plan, a.free, nudge_phases, a.nudge, a.phase)
        gflops = flops / dt / 1e9
        res = {
            "circuit": a.circuit,
            "width": a.width,
            "batch": a.batch,
            "backend": a.backend,
            "device": a.device or "cpu",
            "dtype": dtype,
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
        if a.project:
            res["projection"] = project(a, dt, m["relax_seconds"])
        if a.json:
            print(json.dumps(res))
            continue
        print(
            f"{a.circuit} x{a.width} batch {a.batch} {a.phase} on {a.backend} "
            f"({res['device']}, {dtype}): {res['samples_per_s']:.1f} samples/s, "
            f"{gflops:.1f} GFLOP/s counted, GEMM peak {peak:.1f} GFLOP/s -> "
            f"{100 * res['peak_fraction']:.1f} %, peak RSS {res['peak_rss_mb']:.0f} MB"
        )
        if a.project:
            pr = res["projection"]
            print(
                f"  {a.project}: {pr['epochs']} epochs x {pr['steps_per_epoch']} steps "
                f"-> {pr['epoch_seconds'] / 60:.1f} min per epoch, "
                f"{pr['projected_hours']:.1f} h projected"
            )
    return 0


if __name__ == "__main__":
    from analogebl.errors import AnalogeblError

    try:
        sys.exit(main())
    except AnalogeblError as exc:  # e.g. --device cuda where torch has no CUDA
        print(f"bench_step: error: {exc}", file=sys.stderr)
        sys.exit(2)
