"""Small-batch throughput of a C-EP training step: compiled numba phases vs the engine vs torch.

    python benchmarks/bench_small_batch.py
    python benchmarks/bench_small_batch.py --circuit dhn_mnist --batches 1,8,128 --json

One step is what ``benchmarks/bench_profiles.py`` times with ``Network.train_step``: a free
phase of 60 iterations from the warm state, the C-EP rule's two nudged phases of 15 and the
update (SGD, momentum 0.9, ``--lr`` 0.01: bench_profiles' 0.05 diverges at batch 1). Per
batch size, samples/s of

* ``numba-compiled``: the numba backend as it runs (a dense circuit's whole relaxation phase
  is one compiled call, :mod:`analogebl.backends.numba.phases`);
* ``numba-generic``: the same backend with the engine's relaxation (one Python-level call per
  primitive), i.e. the numba backend before the compiled phases;
* ``torch-cpu``: the torch backend on the CPU.

Variants are interleaved within each of ``--rounds`` rounds of at least ``--min-time``
seconds each, and the best round is reported, so that load from other processes hits every
variant alike. Real MNIST batches when ``$ANALOGEBL_DATA`` is set, else Gaussian inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analogebl.backends.relaxation import RelaxationMixin  # noqa: E402
from analogebl.learning import SGD, layer_learning_rates, make_rule  # noqa: E402
from analogebl.network import Network  # noqa: E402
from analogebl.threads import resolve_threads, set_threads  # noqa: E402
from analogebl.training import IdealUpdater  # noqa: E402

VARIANTS = ("numba-compiled", "numba-generic", "torch-cpu")


def batches(batch: int, n: int, width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` batches of MNIST (``$ANALOGEBL_DATA``) or of Gaussian inputs."""
    if os.environ.get("ANALOGEBL_DATA"):
        from analogebl.data import iterate_batches, load_dataset

        ds = load_dataset("mnist", train_subset=batch * n, subset_seed=0)
        return list(
            iterate_batches(
                ds.train_x, ds.train_y, batch, rng=None, mean=ds.mean, std=ds.std,
                pad_to=None, augmentation=None, dtype=np.float32,
            )
        )  # fmt: skip
    rng = np.random.default_rng(0)
    return [
        (rng.normal(size=(batch, width)).astype(np.float32), rng.integers(0, 10, batch))
        for _ in range(n)
    ]


def make_step(variant: str, circuit: str, dtype: str, lr: float):
    """A ``step(x, y)`` running one C-EP training step on a fresh network."""
    backend, device = ("torch", "cpu") if variant == "torch-cpu" else ("numba", None)
    net = Network.from_catalog(circuit, backend=backend, dtype=dtype, device=device, seed=0)
    if variant == "numba-generic":  # the engine's relaxation, one primitive at a time
        net.backend.relax = types.MethodType(RelaxationMixin.relax, net.backend)
    opt = SGD(layer_learning_rates(list(net.parameters()), lr), 0.9)
    updater = IdealUpdater(opt)
    rule = make_rule("c_ep", 0.25, 15)

    def step(x, y):
        net.train_step(x, y, rule, updater, 60)

    return step


def measure(args) -> list[dict]:
    rows = []
    for batch in args.batches:
        data = batches(batch, 64, 784)
        steps = {v: make_step(v, args.circuit, args.dtype, args.lr) for v in VARIANTS}
        for step in steps.values():  # warm-up: JIT, buffers, the warm start
            for x, y in data[:2]:
                step(x, y)
        best = dict.fromkeys(VARIANTS, 0.0)
        for _ in range(args.rounds):
            for v, step in steps.items():
                n, t0 = 0, time.perf_counter()
                while True:
                    x, y = data[n % len(data)]
                    step(x, y)
                    n += 1
                    dt = time.perf_counter() - t0
                    if dt >= args.min_time:
                        break
                best[v] = max(best[v], n * batch / dt)
        for v in VARIANTS:
            rows.append({"batch": batch, "variant": v, "samples_per_s": best[v]})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--circuit", default="dhn_mnist")
    ap.add_argument("--batches", default="1,8,128", help="comma-separated batch sizes")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument(
        "--lr", type=float, default=0.01, help="SGD rate (momentum 0.9; 0.05 diverges at batch 1)"
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds per round and variant")
    ap.add_argument("--threads", default="auto", help="N or auto (as --threads of a study)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",") if b]
    threads = set_threads(resolve_threads(args.threads))
    rows = measure(args)
    for r in rows:
        r.update(circuit=args.circuit, dtype=args.dtype, threads=threads)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{args.circuit} C-EP step (60 + 2x15 iterations), {args.dtype}, {threads} thread(s)")
    print(f"{'batch':>5s} " + " ".join(f"{v:>15s}" for v in VARIANTS) + f" {'compiled/torch':>15s}")
    for batch in args.batches:
        rate = {r["variant"]: r["samples_per_s"] for r in rows if r["batch"] == batch}
        cells = " ".join(f"{rate[v]:15.1f}" for v in VARIANTS)
        print(f"{batch:5d} {cells} {rate['numba-compiled'] / rate['torch-cpu']:14.2f}x")
    print("samples/s (best of the rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
